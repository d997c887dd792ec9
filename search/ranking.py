"""Vectorised ranking of one query against a matrix of stored vectors.

Similarity is the cosine of the angle between query and product, as a percentage clipped at 0:
``similarity = 100 × max(0, q·x / (|q||x|))``. For the unit-length embeddings of the model this equals
``100 × (1 − d²/2)`` where ``d`` is the Euclidean distance, so both metrics report the same similarity
and ``d = 0`` is 100 %, orthogonal vectors (``d = √2``) are 0 %.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ranked:
    """Positions into the searched matrix, best first, with distances and similarities."""

    positions: np.ndarray
    distances: np.ndarray
    similarities: np.ndarray


def rank(query: np.ndarray, matrix: np.ndarray, sq_norms: np.ndarray, k: int, metric: str = "euclidean") -> Ranked:
    """The ``k`` nearest rows of ``matrix`` to ``query``.

    Args:
        query: (d,) float32.
        matrix: (n, d) float32, C-contiguous.
        sq_norms: (n,) squared row norms of ``matrix``, computed once when the matrix is cached.
        k: how many to return (fewer if the matrix has fewer rows).
        metric: ``euclidean`` (distance ``|q − x|``) or ``cosine`` (distance ``1 − cos``).

    Example:
        >>> m = np.eye(3, dtype=np.float32)
        >>> rank(m[1], m, (m * m).sum(1), k=1).positions
        array([1])
    """
    if len(matrix) == 0 or k <= 0:
        empty = np.zeros(0, dtype=np.float32)
        return Ranked(np.zeros(0, dtype=np.int64), empty, empty)
    dots = matrix @ query  # one matrix-vector product serves both metrics
    q_sq = float(query @ query)
    norms = np.sqrt(sq_norms * q_sq)
    cosine = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    if metric == "euclidean":
        distances = np.sqrt(np.maximum(sq_norms + q_sq - 2.0 * dots, 0.0))
    elif metric == "cosine":
        distances = 1.0 - cosine
    else:
        raise ValueError(f"unknown metric {metric!r}; choose euclidean or cosine")
    k = min(k, len(distances))
    top = np.argpartition(distances, k - 1)[:k] if k < len(distances) else np.arange(len(distances))
    top = top[np.lexsort((top, distances[top]))]  # by distance, ties by position: a stable order
    return Ranked(top, distances[top], 100.0 * np.clip(cosine[top], 0.0, 1.0))

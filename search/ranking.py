"""Vectorised ranking of one query against a matrix of stored vectors.

Similarity is the cosine of the angle between query and product, as a percentage clipped at 0:
``similarity = 100 × max(0, q·x / (|q||x|))``. For the unit-length embeddings of the model this equals
``100 × (1 − d²/2)`` where ``d`` is the Euclidean distance, so both metrics report the same similarity
and ``d = 0`` is 100 %, orthogonal vectors (``d = √2``) are 0 %.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from config.choices import Metric


@dataclass(frozen=True)
class Ranked:
    """Positions into the searched matrix, best first, with distances and similarities."""

    positions: np.ndarray
    distances: np.ndarray
    similarities: np.ndarray


def rank(query: np.ndarray, matrix: np.ndarray, sq_norms: np.ndarray, k: int,
         metric: str = Metric.EUCLIDEAN) -> Ranked:
    """The ``k`` nearest rows of ``matrix`` to ``query``.

    One float32 matrix-vector product (BLAS, every core) orders the rows; ``argpartition`` picks the ``k``
    best in linear time; exact distances and similarities are then computed for those ``k`` only.

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
    if metric not in Metric.values():
        raise ValueError(f"unknown metric {metric!r}; choose one of: {', '.join(Metric)}")
    if len(matrix) == 0 or k <= 0:
        empty = np.zeros(0, dtype=np.float32)
        return Ranked(np.zeros(0, dtype=np.int64), empty, empty)
    dots = matrix @ query
    if metric == Metric.EUCLIDEAN:
        keys = sq_norms - 2.0 * dots  # |q − x|² without the constant |q|²: the same order, one pass less
    else:
        norms = np.sqrt(sq_norms)
        keys = -np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)  # −cos × |q|: the same order
    k = min(k, len(keys))
    top = np.argpartition(keys, k - 1)[:k] if k < len(keys) else np.arange(len(keys))
    top = top[np.lexsort((top, keys[top]))]  # by distance, ties by position: a stable order
    q_sq = float(query @ query)
    top_sq, top_dots = sq_norms[top], dots[top]
    top_norms = np.sqrt(top_sq * q_sq)
    cosine = np.divide(top_dots, top_norms, out=np.zeros_like(top_dots), where=top_norms > 0)
    distances = np.sqrt(np.maximum(top_sq + q_sq - 2.0 * top_dots, 0.0)) if metric == Metric.EUCLIDEAN else 1.0 - cosine
    return Ranked(top, distances, 100.0 * np.clip(cosine, 0.0, 1.0))

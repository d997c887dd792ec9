"""Retrieval metrics over ranked result lists, with "relevant" decided by category.

``hits[q, i]`` is True when the i-th result of query q is relevant; ``n_relevant[q]`` is how many
relevant products the catalogue holds for q (the recall denominator).
"""
from __future__ import annotations

import numpy as np


def precision_at_k(hits: np.ndarray, k: int) -> float:
    """Mean share of relevant results among the first k (missing results count as not relevant)."""
    return float(hits[:, :k].sum(axis=1).mean() / k)


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> float:
    """Mean share of each query's relevant products found in the first k."""
    return float(np.mean(hits[:, :k].sum(axis=1) / np.maximum(n_relevant, 1)))


def map_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> float:
    """Mean average precision at k: AP@k = Σ_{i≤k} P@i · rel_i / min(k, R).

    Example:
        >>> map_at_k(np.array([[True, False, True]]), np.array([2]), 3)  # (1/1 + 2/3) / 2
        0.8333333333333333
    """
    top = hits[:, :k].astype(np.float64)
    precision_at_i = np.cumsum(top, axis=1) / np.arange(1, top.shape[1] + 1)
    ap = (precision_at_i * top).sum(axis=1) / np.maximum(np.minimum(k, n_relevant), 1)
    return float(ap.mean())


def pad_hits(rows: list[list[bool]], width: int) -> np.ndarray:
    """Ragged per-query hit lists as one (queries, width) matrix, padded with False."""
    hits = np.zeros((len(rows), width), dtype=bool)
    for q, row in enumerate(rows):
        hits[q, :min(len(row), width)] = row[:width]
    return hits

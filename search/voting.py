"""The neighbours' vote: the catalogue's nearest products speak for their categories beside the classifier.

The classifier's softmax under-uses what the embedding knows (docs/quality.md): the ``k`` stored products nearest
the query vote for their categories, each with weight exp(−d²/T), and the category probabilities a search narrows
and merges by are (1 − λ) · classifier + λ · vote. The vote reads the vectors every search has in memory already;
products ingested after training vote too.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def vote(nearest: Mapping[str, np.ndarray], k: int, temperature: float) -> dict[str, float]:
    """Each category's share of the vote of the ``k`` products nearest the query, over all categories.

    Args:
        nearest: per category, the d² of (at least) its ``k`` nearest products; an empty one is fine.
        temperature: T in exp(−d²/T): the smaller, the more the very nearest products count.

    Returns:
        shares summing to 1 (no entry for a category without a voter); empty when no category has products.

    Example:
        >>> {c: round(s, 3) for c, s in vote({"A": np.array([0.1]), "B": np.array([0.3, 0.5])}, 2, 0.2).items()}
        {'A': 0.731, 'B': 0.269}
    """
    categories = [c for c, d2 in nearest.items() for _ in range(len(d2))]
    if not categories:
        return {}
    squared = np.concatenate([np.asarray(d2, np.float64) for d2 in nearest.values()])
    chosen = np.argsort(squared, kind="stable")[:k]
    # Shifting by the nearest d² leaves the shares as they are and keeps exp() away from underflow.
    weights = np.exp(-(squared[chosen] - squared[chosen[0]]) / temperature)
    shares: dict[str, float] = {}
    for position, weight in zip(chosen, weights / weights.sum()):
        shares[categories[position]] = shares.get(categories[position], 0.0) + float(weight)
    return shares


def blend(probabilities: Sequence[tuple[str, float]], shares: Mapping[str, float],
          weight: float) -> list[tuple[str, float]]:
    """(1 − ``weight``) · the classifier's probability + ``weight`` · the vote's share, for each of the classifier's
    categories, most probable first. Votes for categories the classifier does not know are left out (the shares
    of the others renormalised); without any vote the classifier's probabilities stand.

    Example:
        >>> blend([("A", 0.6), ("B", 0.4)], {"B": 0.9, "X": 0.1}, 0.5)
        [('B', 0.7), ('A', 0.3)]
    """
    known = {c: shares.get(c, 0.0) for c, _ in probabilities}
    total = sum(known.values())
    if weight <= 0 or total <= 0:
        return sorted(probabilities, key=lambda item: -item[1])
    blended = [(c, (1 - weight) * p + weight * known[c] / total) for c, p in probabilities]
    return sorted(blended, key=lambda item: -item[1])

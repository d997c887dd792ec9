"""Merging the results of several categories into one ranking, the classifier's confidence included.

Each candidate's key is ``d² − weight · ln p``: ``d`` its distance to the query (Euclidean between unit
vectors), ``p`` the probability of its category. Within a category that is the distance order; across
categories a less probable one's products must fit clearly better to pass the likely one's.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from config.choices import Metric


def squared_distances(distances: np.ndarray, metric: str) -> np.ndarray:
    """Squared Euclidean distances between unit vectors, from either metric's distances (cosine: d² = 2(1 − cos))."""
    return distances ** 2 if metric == Metric.EUCLIDEAN else 2.0 * distances


def penalty(probability: float, weight: float) -> float:
    """``−weight · ln p``, what a category's candidates add to their d² (a category of probability 0 comes last)."""
    if not weight:
        return 0.0
    return -weight * math.log(probability) if probability > 0 else math.inf


def merge(squared: Mapping[str, np.ndarray], probabilities: Mapping[str, float] | None, weight: float,
          k: int) -> list[tuple[str, int]]:
    """The ``k`` best candidates of several categories, best first.

    Args:
        squared: category → its candidates' squared distances (as ``squared_distances`` gives them).
        probabilities: category → probability (a category without one comes last); None merges by distance alone
            (scope ``all``).
        weight: the weight of ``ln p``; 0 merges by distance alone.

    Returns:
        (category, position in that category's array) pairs; equal keys by distance, then in the order given.

    Example:
        >>> merge({"A": np.array([0.36]), "B": np.array([0.30])}, {"A": 0.6, "B": 0.4}, 0.5, k=2)
        [('A', 0), ('B', 0)]
    """
    keyed: list[tuple[float, float, int, int, str]] = []
    for order, (category, d2) in enumerate(squared.items()):
        keys = d2 + (penalty(probabilities.get(category, 0.0), weight) if probabilities else 0.0)
        keyed += zip(keys.tolist(), d2.tolist(), [order] * len(d2), range(len(d2)), [category] * len(d2))
    keyed.sort()
    return [(category, position) for *_, position, category in keyed[:k]]

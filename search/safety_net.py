"""The exact-product safety net: a near-identical product of a category the search did not cover goes first.

When the classifier picks the wrong category, a catalogue photo of the very product is still found: the
nearest product of the categories not searched is shown first when it lies within the policy's
``exact_distance`` and closer than every searched result.
"""
from __future__ import annotations

from collections.abc import Sequence


def reach(exact_distance: float, best_searched: float | None) -> float:
    """The squared distance a product of a category not searched must be under to go first: the smaller of
    ``exact_distance²`` and the best searched result's ``best_searched`` (d², None without results); 0 when
    ``exact_distance`` is 0 (the net is off), and nothing needs to be probed then."""
    limit = max(exact_distance, 0.0) ** 2
    return limit if best_searched is None else min(limit, best_searched)


def pick(squared: Sequence[float], limit: float) -> int | None:
    """Which candidate goes first: the nearest (the first of equals) whose d² is under ``limit``, or None.

    Args:
        squared: the d² of each category's nearest product, for the categories not searched.

    Example:
        >>> pick([0.2, 0.05, 0.05], reach(0.3, 0.36))
        1
    """
    best = None
    for i, d2 in enumerate(squared):
        if d2 < limit:
            best, limit = i, d2
    return best

"""The exact-product safety net: the whole catalogue's nearest product is never left out.

When the classifier picks the wrong category, the product the shopper photographed is still searched for: the
category of the catalogue's nearest product (by the stored vectors, over every category) is always searched, and
that product goes first when it lies within the policy's ``exact_distance``, whatever its category's probability.
"""
from __future__ import annotations

from config.choices import Metric

# What a category no served model predicts is left with (the vote counts only the classifier's categories).
UNPREDICTED_REACH = ("a search reaches their products only through the safety net (one of them nearest to the photo) "
                     "or with scope 'all'")


def cover(searched: list[str], rule: str, nearest_category: str | None) -> tuple[list[str], str]:
    """The categories narrowing chose, with the nearest product's category added when it is not among them, and the
    rule in words.

    Example:
        >>> cover(["A"], "the most probable category (A, p = 0.900)", "C")[0]
        ['A', 'C']
    """
    if nearest_category is None or nearest_category in searched:
        return searched, rule
    return [*searched, nearest_category], (f"{rule}; and {nearest_category}, the category of the catalogue's nearest "
                                           "product (the exact-product safety net)")


def reach(exact_distance: float, metric: str) -> float:
    """The net's reach in ``metric``'s distances: ``exact_distance`` is Euclidean, a cosine distance is d² / 2.

    Example:
        >>> reach(0.8, "euclidean"), round(reach(0.8, "cosine"), 4)
        (0.8, 0.32)
    """
    return exact_distance if metric == Metric.EUCLIDEAN else exact_distance ** 2 / 2


def goes_first(squared: float, exact_distance: float) -> bool:
    """Whether the catalogue's nearest product, at ``squared`` (d²) from the query, goes first: when it lies within
    ``exact_distance`` (0 turns the net off).

    Example:
        >>> goes_first(0.04, 0.3), goes_first(0.09, 0.3), goes_first(0.0, 0.0)
        (True, False, False)
    """
    return exact_distance > 0 and squared < exact_distance ** 2

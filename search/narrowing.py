"""Narrowing: which categories a search compares, from the classifier's probabilities."""
from __future__ import annotations

from collections.abc import Sequence

from search.policy import SearchPolicy


def narrow(probabilities: Sequence[tuple[str, float]], policy: SearchPolicy) -> tuple[list[str], str]:
    """The fewest most probable categories whose probabilities sum to at least ``policy.tau``, at most
    ``policy.max_categories`` of them (τ = 0: the most probable only), and the rule in words.

    Args:
        probabilities: (category, probability) pairs, in any order.

    Example:
        >>> narrow([("B", 0.3), ("A", 0.6), ("C", 0.1)], SearchPolicy(tau=0.8, max_categories=3))[0]
        ['A', 'B']
    """
    chosen: list[tuple[str, float]] = []
    total = 0.0
    for category, p in sorted(probabilities, key=lambda item: -item[1]):
        chosen.append((category, p))
        total += p
        if total >= policy.tau or len(chosen) >= policy.max_categories:
            break
    if len(chosen) == 1 and policy.tau <= 0:
        return [chosen[0][0]], f"the most probable category ({chosen[0][0]}, p = {chosen[0][1]:.3f})"
    terms = " + ".join(f"{c} {p:.3f}" for c, p in chosen)
    merged = (f"; their results merged by d² − {policy.merge_weight:g} · ln p(category)"
              if len(chosen) > 1 and policy.merge_weight else "")
    return [c for c, _ in chosen], (f"the fewest most probable categories whose probabilities reach "
                                    f"τ = {policy.tau:g} (at most {policy.max_categories}): {terms} = {total:.3f}"
                                    f"{merged}")

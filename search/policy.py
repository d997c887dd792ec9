"""A search policy: how the network's outputs for one query become its results.

The policy holds the rules' thresholds (the neighbours' vote, narrowing, merging, the exact-product safety net, the
weak-match verdict) and is passed per search, so an evaluation can apply several policies to one forward pass.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from config import DEFAULTS, Settings
from search.weak_match import threshold


@dataclass(frozen=True)
class SearchPolicy:
    """The thresholds of one search; the defaults are the settings' defaults (see ``config.Settings``).

    Attributes:
        vote_weight, vote_neighbours, vote_temperature: the category probabilities are (1 − vote_weight) · the
            classifier's + vote_weight · the vote of the vote_neighbours nearest stored products, each weighted by
            exp(−d²/vote_temperature) (``search.voting``); a vote_weight of 0: the classifier's alone.
        tau, max_categories: narrowing (``search.narrowing``): the fewest most probable categories whose
            probabilities reach ``tau``, at most ``max_categories`` of them.
        merge_weight: the results of several categories are merged by ``d² − merge_weight · ln p``
            (``search.merging``).
        exact_distance: the safety net's reach (``search.safety_net``); 0 turns it off.
        min_similarity: a best match under this similarity (percent) is weak: nothing looks much alike
            (``search.weak_match``); None: the served model's own threshold (``applied``).
    """

    tau: float = DEFAULTS.narrow_tau
    max_categories: int = DEFAULTS.narrow_max_categories
    merge_weight: float = DEFAULTS.merge_weight
    exact_distance: float = DEFAULTS.exact_distance
    min_similarity: float | None = DEFAULTS.min_similarity
    vote_weight: float = DEFAULTS.vote_weight
    vote_neighbours: int = DEFAULTS.vote_neighbours
    vote_temperature: float = DEFAULTS.vote_temperature

    @classmethod
    def from_settings(cls, settings: Settings) -> SearchPolicy:
        return cls(settings.narrow_tau, settings.narrow_max_categories, settings.merge_weight,
                   settings.exact_distance, settings.min_similarity, settings.vote_weight,
                   settings.vote_neighbours, settings.vote_temperature)

    def applied(self, calibrated: float | None) -> SearchPolicy:
        """This policy as a search applies it with a model whose card holds ``calibrated`` (None: it has none):
        the weak-match threshold is settled (``search.weak_match.threshold``)."""
        return replace(self, min_similarity=threshold(self.min_similarity, calibrated))

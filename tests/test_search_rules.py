"""The search's rules as functions of plain inputs: the neighbours' vote, narrowing, merging, the safety net and the
weak-match verdict (no model, no store)."""
import math

import numpy as np
import pytest

from config import Settings
from search.merging import merge, penalty, squared_distances
from search.narrowing import narrow
from search.policy import SearchPolicy
from search.safety_net import cover, goes_first
from search.voting import blend, vote
from search.weak_match import is_weak

PROBABILITIES = [("A", 0.7), ("B", 0.2), ("C", 0.1)]


def test_the_k_nearest_products_vote_over_all_categories():
    nearest = {"A": np.array([0.1, 0.9]), "B": np.array([0.3, 0.4]), "C": np.array([]), "D": np.array([2.0])}
    shares = vote(nearest, 3, 0.2)
    expected = np.exp(-np.array([0.1, 0.3, 0.4]) / 0.2)
    assert shares == pytest.approx({"A": expected[0] / expected.sum(), "B": expected[1:].sum() / expected.sum()})
    assert vote(nearest, 3, 1e-6) == pytest.approx({"A": 1.0, "B": 0.0})  # cold: the nearest product decides
    assert vote(nearest, 10, 1e6)["D"] == pytest.approx(1 / 5, abs=1e-5)  # a hot one: every voter alike
    assert vote({"A": np.array([])}, 3, 0.2) == {}


def test_the_blend_weighs_the_classifier_against_the_vote():
    shares = {"B": 0.6, "C": 0.2, "X": 0.2}  # X: a category of the catalogue the classifier does not know
    blended = dict(blend(PROBABILITIES, shares, 0.5))
    assert blended == pytest.approx({"A": 0.35, "B": 0.1 + 0.375, "C": 0.05 + 0.125})
    assert [c for c, _ in blend(PROBABILITIES, shares, 0.5)] == ["B", "A", "C"]
    assert blend(PROBABILITIES, shares, 0.0) == PROBABILITIES
    assert blend(PROBABILITIES, {}, 0.5) == PROBABILITIES


@pytest.mark.parametrize("tau, cap, expected", [
    (0.0, 3, ["A"]), (0.7, 3, ["A"]), (0.85, 3, ["A", "B"]), (0.95, 3, ["A", "B", "C"]), (0.95, 2, ["A", "B"]),
])
def test_narrowing_takes_the_fewest_most_probable_categories_reaching_tau(tau, cap, expected):
    searched, rule = narrow(PROBABILITIES, SearchPolicy(tau=tau, max_categories=cap))
    assert searched == expected
    assert ("τ" in rule) == (tau > 0)


def test_narrowing_does_not_depend_on_the_order_given():
    assert narrow(PROBABILITIES[::-1], SearchPolicy(tau=0.85))[0] == ["A", "B"]


def test_the_rule_says_why_in_words():
    assert narrow(PROBABILITIES, SearchPolicy(tau=0.0))[1] == "the most probable category (A, p = 0.700)"
    rule = narrow(PROBABILITIES, SearchPolicy(tau=0.85, max_categories=3, merge_weight=0.2))[1]
    assert "τ = 0.85 (at most 3): A 0.700 + B 0.200 = 0.900" in rule and "d² − 0.2 · ln p(category)" in rule
    assert "merged" not in narrow(PROBABILITIES, SearchPolicy(tau=0.85, merge_weight=0.0))[1]


def test_a_less_probable_category_must_fit_clearly_better():
    squared = {"A": np.array([0.36, 0.81], np.float32), "B": np.array([0.3025], np.float32)}
    probabilities = {"A": 0.6, "B": 0.4}
    assert merge(squared, probabilities, 0.0, k=3) == [("B", 0), ("A", 0), ("A", 1)]
    # 0.36 − 0.5 ln 0.6 = 0.615 < 0.3025 − 0.5 ln 0.4 = 0.761 < 0.81 − 0.5 ln 0.6 = 1.065
    assert merge(squared, probabilities, 0.5, k=3) == [("A", 0), ("B", 0), ("A", 1)]
    assert merge(squared, None, 0.5, k=2) == [("B", 0), ("A", 0)]  # scope 'all': distance alone


def test_a_category_of_probability_zero_comes_last():
    assert penalty(0.0, 0.2) == math.inf and penalty(0.0, 0.0) == 0.0
    assert penalty(0.5, 0.2) == pytest.approx(0.2 * math.log(2))
    squared = {"A": np.array([0.9], np.float32), "B": np.array([0.0], np.float32)}
    assert merge(squared, {"A": 0.9, "B": 0.0}, 0.2, k=2) == [("A", 0), ("B", 0)]


def test_both_metrics_give_the_same_squared_distances_between_unit_vectors():
    query, other = np.array([1.0, 0.0]), np.array([0.6, 0.8])
    euclidean, cosine = np.linalg.norm(query - other), 1.0 - query @ other
    assert squared_distances(np.array([euclidean]), "euclidean") == pytest.approx(
        squared_distances(np.array([cosine]), "cosine"))


@pytest.mark.parametrize("nearest, expected", [("C", ["A", "B", "C"]), ("B", ["A", "B"]), (None, ["A", "B"])])
def test_the_safety_net_searches_the_nearest_products_category(nearest, expected):
    searched, rule = cover(["A", "B"], "narrowing's rule", nearest)
    assert searched == expected
    assert rule.startswith("narrowing's rule") and ("the catalogue's nearest product" in rule) == (nearest == "C")


@pytest.mark.parametrize("squared, exact_distance, expected", [
    (0.04, 0.3, True), (0.09, 0.3, False), (0.0, 0.0, False), (0.0, -1.0, False)])
def test_the_nearest_product_goes_first_within_the_safety_nets_reach(squared, exact_distance, expected):
    assert goes_first(squared, exact_distance) is expected


@pytest.mark.parametrize("best, expected", [(None, True), (59.9, True), (60.0, False), (99.0, False)])
def test_a_weak_best_match(best, expected):
    assert is_weak(best, 60.0) is expected


def test_the_default_policy_is_the_settings_default():
    assert SearchPolicy() == SearchPolicy.from_settings(Settings())
    tuned = Settings(narrow_tau=0.5, narrow_max_categories=2, merge_weight=0.1, exact_distance=0.4,
                     min_similarity=70.0, vote_weight=0.3, vote_neighbours=5, vote_temperature=1.0)
    assert SearchPolicy.from_settings(tuned) == SearchPolicy(0.5, 2, 0.1, 0.4, 70.0, 0.3, 5, 1.0)

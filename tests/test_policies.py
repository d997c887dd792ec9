"""Policies passed per search: one forward pass answered under several policies (the evaluation's sweeps), and one
weak-match verdict for the page, the API and the command line."""
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from catalogue.folder import CatalogueFile
from cli.main import format_result
from config import Settings
from config.settings import FALLBACK_MIN_SIMILARITY
from evaluation import report, similarity
from search.policy import SearchPolicy
from search.service import SearchService
from tests.test_merging import Scripted, catalogue  # noqa: F401 (fixture)

# The classifier's probabilities alone, so that each policy's results below follow from its rules: the safety net
# alone, merging alone at two weights, and the defaults with the neighbours' vote.
POLICIES = [SearchPolicy(tau=0.0, vote_weight=0.0),
            SearchPolicy(tau=0.9, merge_weight=0.0, vote_weight=0.0, exact_distance=0.0),
            SearchPolicy(tau=0.9, merge_weight=0.5, vote_weight=0.0, exact_distance=0.0), SearchPolicy(tau=0.9)]


class Counted(Scripted):
    """Counts the pictures it runs."""

    seen = 0

    def _forward(self, batch):
        self.seen += len(batch)
        return super()._forward(batch)


@pytest.fixture
def service(catalogue):  # noqa: F811
    store = catalogue({"a1": ("A", 0.60), "b1": ("B", 0.55), "b2": ("B", 0.90)})
    return SearchService(Counted({"A": 0.6, "B": 0.4}), store, top_k=10, policy=SearchPolicy(vote_weight=0.0))


def names(result) -> list[str]:
    return [m.product.external_id for m in result.matches]


def test_one_look_answers_every_policy_as_its_own_search_would(service):
    pictures = [Image.new("RGB", (8, 8)), Image.new("RGB", (8, 8), "white")]
    seen = service.look(pictures)
    assert service.model.seen == 2
    for policy in POLICIES:
        answered = service.answer(seen, policy=policy)
        searched = service.search_images(pictures, policy=policy)
        assert [names(r) for r in answered] == [names(r) for r in searched]
        assert all(r.policy == policy.applied(service.model.min_similarity) for r in answered)
    # The safety net: B, the nearest product's category, is searched beside A, and b1 goes first.
    assert [names(r) for r in service.answer(seen, policy=POLICIES[0])] == [["b1", "a1", "b2"]] * 2
    assert names(service.answer(seen, policy=POLICIES[1])[0]) == ["b1", "a1", "b2"]
    assert names(service.answer(seen, policy=POLICIES[2])[0]) == ["a1", "b1", "b2"]
    assert names(service.answer(seen)[0]) == names(service.search_images(pictures[:1])[0])  # the service's own


def test_a_sweep_runs_the_network_once_per_query(service, tmp_path):
    queries = []
    for i in range(5):
        Image.new("RGB", (8, 8), (i, i, i)).save(tmp_path / f"q{i}.jpg")
        queries.append(CatalogueFile(tmp_path / f"q{i}.jpg", "B", f"q{i}"))
    evaluations = report.sweep(service, queries, POLICIES, k=3, batch_size=2, progress=False)
    assert service.model.seen == 5
    assert [[names(r) for r in e.results] for e in evaluations] == [
        [["b1", "a1", "b2"]] * 5, [["b1", "a1", "b2"]] * 5, [["a1", "b1", "b2"]] * 5, [["b1", "a1", "b2"]] * 5]
    # The service's own policy (τ 0.8, merge weight 0.2, no vote): 0.36 − 0.2 ln 0.6 < 0.3025 − 0.2 ln 0.4 would put
    # a1 first, but b1, the catalogue's nearest product, lies within the safety net's 0.8.
    [result, *_] = report.run(service, queries, k=3, progress=False).results
    assert names(result) == ["b1", "a1", "b2"] and result.exact_match is result.matches[0]
    assert all(latency > 0 for e in evaluations for latency in e.latency_ms)


@pytest.mark.parametrize("min_similarity, weak", [(0.0, False), (100.5, True)])
def test_the_command_line_says_what_the_page_says_about_a_weak_match(service, min_similarity, weak):
    result = service.search_images([Image.new("RGB", (8, 8))], policy=SearchPolicy(min_similarity=min_similarity))[0]
    assert result.weak is weak
    assert ("nothing in the catalogue looks much like this image" in format_result(result)) is weak


def test_a_weak_match_judges_the_most_similar_result_not_the_first(service):
    # Merging puts a1 (82.0 %), of the more probable category, before b1 (84.9 %): b1 is the best match.
    policy = SearchPolicy(tau=0.9, merge_weight=0.5, vote_weight=0.0, exact_distance=0.0, min_similarity=83.0)
    result = service.search_images([Image.new("RGB", (8, 8))], policy=policy)[0]
    assert names(result) == ["a1", "b1", "b2"]
    assert result.best_similarity == pytest.approx(84.875, abs=1e-3) and not result.weak
    weak = service.search_images([Image.new("RGB", (8, 8))], policy=replace(policy, min_similarity=84.9))[0]
    # 84.875 under 84.9: not "84.9 % similar (a match is close from 84.9 %)", but to a decimal more.
    assert "the best match is only 84.88 % similar (a match is close from 84.90 %)" in format_result(weak)
    assert "the best match is only 84.9 % similar (a match is close from 85.0 %)" in format_result(
        service.search_images([Image.new("RGB", (8, 8))], policy=replace(policy, min_similarity=85.0))[0])


@pytest.mark.parametrize("setting, calibrated, applied", [(None, 90.0, 90.0), (None, 80.0, 80.0), (80.0, 90.0, 80.0),
                                                          (90.0, None, 90.0), (None, None, FALLBACK_MIN_SIMILARITY)])
def test_a_search_applies_the_setting_else_the_models_own_threshold_and_says_which(catalogue, setting,  # noqa: F811
                                                                                   calibrated, applied):
    store = catalogue({"b1": ("B", 0.55)})  # similarity 100 × (1 − 0.55²/2) = 84.9 %
    policy = SearchPolicy.from_settings(Settings(min_similarity=setting))
    service = SearchService(Scripted({"B": 1.0}, min_similarity=calibrated), store, policy=policy)
    result = service.search_images([Image.new("RGB", (8, 8))])[0]
    assert result.matches[0].similarity == pytest.approx(84.875, abs=1e-3)
    assert result.policy.min_similarity == applied
    assert result.weak is (applied > 84.875)
    assert service.policy.min_similarity == setting  # settled per search, from the network that answered


def test_the_similarity_table_reports_each_photos_best_match(service, tmp_path):
    files = []
    for i in range(5):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / f"q{i}.jpg")
        files.append(CatalogueFile(tmp_path / f"q{i}.jpg", "B", f"q{i}"))
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    files.append(CatalogueFile(tmp_path / "broken.jpg", "B", "broken"))
    found = similarity.best_matches(service, "shop", files, count=10, batch_size=2)
    expected = [r.matches[0].similarity for r in service.search_images([Image.open(f.path) for f in files[:5]], k=1)]
    assert sorted(found.similarities) == pytest.approx(sorted(expected))  # the broken file skipped, the rest searched
    table = similarity.markdown([found], [0, 101])
    assert table.splitlines()[-1].endswith("| 5 | " + " – ".join(
        f"{p:.1f}" for p in np.percentile(expected, [5, 50, 95])) + " | 0% | 100% | 0% |")
    assert "| weak as searched (under 40.0 %) |" in table.splitlines()[0]  # the model has no threshold: the fallback
    with pytest.raises(ValueError, match="no readable photos in broken"):  # a clear line, not numpy's IndexError
        similarity.best_matches(service, "broken", files[5:])


def test_the_similarity_table_counts_weak_as_the_search_called_it(catalogue, tmp_path):  # noqa: F811
    store = catalogue({"b1": ("B", 0.55)})  # 84.9 %
    service = SearchService(Scripted({"B": 1.0}, min_similarity=90.0), store)
    Image.new("RGB", (8, 8)).save(tmp_path / "q.jpg")
    found = similarity.best_matches(service, "shop", [CatalogueFile(tmp_path / "q.jpg", "B", "q")])
    table = similarity.markdown([found], [80])
    assert "| weak under 80 % | weak as searched (under 90.0 %) |" in table
    assert table.splitlines()[-1].endswith("| 0% | 100% |")

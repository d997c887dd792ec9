"""The neighbours' vote, merging several categories' results, and the exact-product safety net, on vectors placed
by hand."""
import hashlib

import numpy as np
import pytest
from PIL import Image

from db.migrate import upgrade
from db.store import NewProduct, Store
from model.card import ModelCard
from model.inference import Network
from search.policy import SearchPolicy
from search.service import SearchService

DIM = 512


class Scripted(Network):
    """A network that answers every picture with the same probabilities and the embedding e₀ (its card: the
    weak-match threshold ``min_similarity``)."""

    def __init__(self, probabilities: dict[str, float], min_similarity: float | None = None):
        super().__init__(ModelCard("fake", "none", 8, "unit", list(probabilities), version="fake-1",
                                   min_similarity=min_similarity))
        self.probabilities = np.array(list(probabilities.values()), np.float32)

    def _forward(self, batch):
        embedding = np.zeros(DIM, np.float32)
        embedding[0] = 1.0
        return np.tile(self.probabilities, (len(batch), 1)), np.tile(embedding, (len(batch), 1)), None


def at_distance(d: float, axis: int) -> np.ndarray:
    """A unit vector at Euclidean distance ``d`` from e₀."""
    vector = np.zeros(DIM, np.float32)
    vector[0] = 1.0 - d * d / 2.0
    vector[axis] = np.sqrt(1.0 - vector[0] ** 2)
    return vector


@pytest.fixture
def catalogue(sqlite_url):
    """Products at known distances from the query: name → (category, distance[, its photo vector's distance])."""
    def build(products: dict[str, tuple]) -> Store:
        upgrade(sqlite_url)
        store = Store.from_url(sqlite_url)
        store.add_products([NewProduct(category, name, name.encode(), hashlib.sha256(name.encode()).hexdigest(),
                                       "image/jpeg", 8, 8, {"fake-1": at_distance(d, axis + 1)},
                                       photo_vectors={"fake-1": at_distance(photo[0], axis + 1)} if photo else {})
                            for axis, (name, (category, d, *photo)) in enumerate(products.items())])
        return store
    return build


def search(store: Store, probabilities: dict[str, float], scope: str = "category", **policy):
    """One search under ``policy``; the classifier's probabilities alone and no safety net unless ``vote_weight``
    and ``exact_distance`` say otherwise, so each rule is seen on its own."""
    service = SearchService(Scripted(probabilities), store, top_k=10)
    policy = SearchPolicy(**{"vote_weight": 0.0, "exact_distance": 0.0, **policy})
    return service.search_images([Image.new("RGB", (8, 8))], scope=scope, policy=policy)[0]


def test_the_nearest_products_vote_for_their_category(catalogue):
    """The classifier leans to A, but the stored products nearest the query are B's: under the default vote B is
    predicted and searched first, and the result keeps the classifier's own probabilities and the vote."""
    store = catalogue({"a1": ("A", 0.9), "a2": ("A", 1.0), "b1": ("B", 0.1), "b2": ("B", 0.2)})
    result = search(store, {"A": 0.6, "B": 0.4}, vote_weight=SearchPolicy().vote_weight)
    assert result.classifier == [("A", pytest.approx(0.6)), ("B", pytest.approx(0.4))]
    assert result.votes["B"] > 0.9 and result.votes["B"] + result.votes["A"] == pytest.approx(1.0)
    assert result.predicted[0] == "B" and result.searched[0] == "B"
    assert [p for _, p in result.probabilities] == pytest.approx([0.2 + 0.5 * result.votes["B"],
                                                                  0.3 + 0.5 * result.votes["A"]])
    assert [m.product.external_id for m in result.matches][:2] == ["b1", "b2"]
    unvoted = search(store, {"A": 0.6, "B": 0.4})
    assert unvoted.predicted[0] == "A" and unvoted.probabilities == unvoted.classifier and unvoted.votes == {}


def test_the_vote_reads_the_photos_own_vectors_and_the_ranking_the_stored_ones(catalogue):
    """The stored vectors put A's product nearest the query, the photos' own embeddings B's: B wins the vote while
    the results keep the stored vectors' order."""
    store = catalogue({"a1": ("A", 0.1, 1.0), "b1": ("B", 0.9, 0.1)})
    result = search(store, {"A": 0.5, "B": 0.5}, scope="all", vote_weight=SearchPolicy().vote_weight)
    assert result.votes["B"] > 0.9 and result.predicted[0] == "B"
    assert [(m.product.external_id, round(m.distance, 3)) for m in result.matches] == [("a1", 0.1), ("b1", 0.9)]


@pytest.mark.parametrize("weight, order", [(0.0, ["b1", "a1", "b2"]), (0.5, ["a1", "b1", "b2"])])
def test_a_less_probable_category_must_fit_clearly_better(catalogue, weight, order):
    store = catalogue({"a1": ("A", 0.60), "b1": ("B", 0.55), "b2": ("B", 0.90)})
    result = search(store, {"A": 0.6, "B": 0.4}, tau=0.9, merge_weight=weight)
    assert result.searched == ["A", "B"]
    assert [m.product.external_id for m in result.matches] == order
    assert [m.distance for m in result.matches] == pytest.approx([{"a1": 0.6, "b1": 0.55, "b2": 0.9}[x]
                                                                   for x in order], abs=1e-5)
    assert ("merged by d² − 0.5 · ln p(category)" in result.rule) == (weight > 0)


def test_scope_all_ranks_by_distance_alone(catalogue):
    store = catalogue({"a1": ("A", 0.60), "b1": ("B", 0.55), "b2": ("B", 0.90)})
    store.add_products([NewProduct("C", "c1", b"c1", hashlib.sha256(b"c1").hexdigest(), "image/jpeg", 8, 8,
                                   {"fake-1": at_distance(0.1, 9)})])
    store.delete_category("C")
    result = search(store, {"A": 0.6, "B": 0.4}, scope="all", merge_weight=0.5)
    assert [m.product.external_id for m in result.matches] == ["b1", "a1", "b2"]
    assert result.searched == ["A", "B"]  # not C, emptied


def test_the_safety_net_puts_a_near_identical_product_of_another_category_first(catalogue):
    """Narrowing chose A alone; C holds the catalogue's nearest product: C is searched too, and its product goes
    first although the merge would rank C's products after A's."""
    store = catalogue({"a1": ("A", 0.8), "a2": ("A", 0.9), "c1": ("C", 0.05), "c2": ("C", 0.2)})
    result = search(store, {"A": 0.95, "C": 0.05}, tau=0.9, exact_distance=0.3, merge_weight=0.5)
    assert result.searched == ["A", "C"] and "C, the category of the catalogue's nearest product" in result.rule
    assert [m.product.external_id for m in result.matches] == ["c1", "a1", "a2", "c2"]
    assert result.exact_match is result.matches[0] and result.exact_match.distance == pytest.approx(0.05, abs=1e-5)
    assert "safety_net" in result.timings_ms


def test_the_safety_nets_reach_is_given_in_the_searchs_metric(catalogue):
    store = catalogue({"a1": ("A", 0.8), "c1": ("C", 0.05)})
    service = SearchService(Scripted({"A": 0.95, "C": 0.05}), store, top_k=10)
    policy = SearchPolicy(tau=0.9, vote_weight=0.0, exact_distance=0.3, merge_weight=0.5)  # C's product ranks second
    euclidean, cosine = (service.search_images([Image.new("RGB", (8, 8))], metric=metric, policy=policy)[0]
                         for metric in ("euclidean", "cosine"))
    assert euclidean.exact_reach == pytest.approx(0.3) and cosine.exact_reach == pytest.approx(0.3 ** 2 / 2)
    assert euclidean.exact_match is not None and cosine.exact_match is not None
    assert cosine.exact_match.distance == pytest.approx(0.05 ** 2 / 2, abs=1e-5)


@pytest.mark.parametrize("c1_distance, reach, order", [
    (0.5, 0.3, ["a1", "c1"]),  # too far to go first, but its category is searched and merged
    (0.05, 0.0, ["a1"]),  # switched off: narrowing alone
])
def test_the_safety_net_holds_back_when_nothing_is_near_enough(catalogue, c1_distance, reach, order):
    store = catalogue({"a1": ("A", 0.6), "c1": ("C", c1_distance)})
    result = search(store, {"A": 0.95, "C": 0.05}, tau=0.9, exact_distance=reach, merge_weight=0.5)
    assert result.exact_match is None
    assert [m.product.external_id for m in result.matches] == order


def test_the_safety_net_does_not_fire_when_the_nearest_product_is_first_already(catalogue):
    store = catalogue({"a1": ("A", 0.1), "c1": ("C", 0.3)})
    result = search(store, {"A": 0.95, "C": 0.05}, tau=0.9, exact_distance=0.8)
    assert result.exact_match is None and result.searched == ["A"]
    assert [m.product.external_id for m in result.matches] == ["a1"]

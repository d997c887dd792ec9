"""The approximate index of large categories: recall against exact ranking, and its place in a search."""
import threading

import numpy as np

from bench.ranking_bench import clustered_unit_vectors, queries_near
from db.store import CategoryVectors
from search.ann import AnnPolicy, IvfIndex, list_count
from search.index import VectorIndex
from search.ranking import rank


def test_ivf_finds_nearly_every_exact_neighbour():
    vectors = clustered_unit_vectors(8_000, seed=3)
    sq_norms = (vectors * vectors).sum(1)
    index = IvfIndex(vectors, nprobe=8)
    assert index.index.nlist == list_count(8_000) == 200  # limited by the points k-means needs per cluster
    recalls = []
    for query in queries_near(vectors, 20, noise=0.02):
        exact = rank(query, vectors, sq_norms, 30)
        found = index.nearest(query, 30)
        recalls.append(len(set(found.positions.tolist()) & set(exact.positions.tolist())) / 30)
        # whatever it returns is ranked exactly: the same distances as exact ranking gives those rows
        np.testing.assert_allclose(found.distances, np.linalg.norm(vectors[found.positions] - query, axis=1),
                                   atol=1e-5)
        assert (np.diff(found.distances) >= 0).all()
    assert np.mean(recalls) >= 0.95


def test_the_index_is_built_only_for_large_categories():
    policy = AnnPolicy(min_vectors=100, nprobe=4)
    assert not AnnPolicy(min_vectors=0).applies(10**9)  # 0 turns it off
    assert [policy.applies(n) for n in (99, 100)] == [False, True]


class _Store:
    """Two categories of stored vectors, one small and one large; ``revision`` is what a read finds (None: the
    revision the search asked for)."""

    def __init__(self, revision=None):
        self.vectors = {"small": clustered_unit_vectors(50, seed=1), "large": clustered_unit_vectors(3_000, seed=2)}
        self.revision = revision
        self.reads = 0

    def category_vectors(self, category, model_version):
        self.reads += 1
        vectors = self.vectors[category]
        ids = np.arange(len(vectors), dtype=np.int64) + (10_000 if category == "large" else 0)
        # The large category's vote reads other vectors than its searches rank by, the small one's the same.
        voters = vectors.copy() if category == "small" else -vectors
        return CategoryVectors(self.revision, ids, vectors, voters, {int(i): f"product {i}" for i in ids})


def test_large_categories_are_searched_through_the_index_with_the_same_best_match():
    store = _Store()
    index = VectorIndex(store, "v1", AnnPolicy(min_vectors=1_000, nprobe=8))
    small, exact = index.matrix("small", 1), index.matrix("large", 1)
    assert small.ranked.ann is None and exact.ranked.ann is None  # ranked exactly while the index is built
    index.wait_for_indexes()
    large = index.matrix("large", 1)
    assert small.ranked.ann is None and small.ranked.matrix is not None
    assert small.voters is small.ranked  # the same vectors are cached once
    for vectors in (large.ranked, large.voters):
        assert vectors.ann is not None and vectors.matrix is None  # the index holds the only copy
    assert (large.product_ids == exact.product_ids).all()
    for position in (0, 1234, 2999):
        query = store.vectors["large"][position]
        assert large.product_ids[large.ranked.nearest(query, 5, "euclidean").positions[0]] == 10_000 + position
        assert large.product_ids[large.voters.nearest(-query, 5, "euclidean").positions[0]] == 10_000 + position
    assert index.matrix("large", 1) is large
    index.matrix("large", 2)  # a new revision: exact again until its own index is built
    index.wait_for_indexes()
    assert index.matrix("large", 2).ranked.ann is not None and index.matrix("large", 2) is not large


def test_a_search_that_read_an_older_revision_is_served_what_a_later_one_loaded():
    store = _Store(revision=7)  # committed after the search read revision 5
    index = VectorIndex(store, "v1")
    loaded = index.matrix("small", 5)
    assert loaded.revision == 7 and index.matrix("small", 6) is loaded and index.matrix("small", 5) is loaded
    assert store.reads == 1
    index.matrix("small", 8)
    assert store.reads == 2


def test_an_index_build_overtaken_by_a_newer_load_is_skipped(monkeypatch):
    started, release, built = threading.Event(), threading.Event(), []

    def slow_index(matrix, nprobe):
        built.append(len(matrix))
        started.set()
        release.wait(10)
        return IvfIndex(matrix, nprobe)

    monkeypatch.setattr("search.index.IvfIndex", slow_index)
    index = VectorIndex(_Store(), "v1", AnnPolicy(min_vectors=1_000, nprobe=8))
    index.matrix("large", 1)
    assert started.wait(10)  # revision 1's build is running
    index.matrix("large", 2)  # queued, then overtaken by revision 3 before it starts
    index.matrix("large", 3)
    release.set()
    index.wait_for_indexes()
    assert len(built) == 4  # revisions 1 and 3, each its two sets of vectors; revision 2 never built
    assert index.matrix("large", 3).ranked.ann is not None

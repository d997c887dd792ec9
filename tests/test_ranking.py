"""Ranking against a hand-computed example and against brute force."""
import numpy as np
import pytest

from search.ranking import rank


def test_hand_computed_example():
    matrix = np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    query = np.array([0.8, 0.6], dtype=np.float32)
    ranked = rank(query, matrix, (matrix ** 2).sum(1), k=3)
    # distances: |q-x| = sqrt(2 - 2 q·x) with q·x = 0.8, 0.6, 0.96
    assert ranked.positions.tolist() == [2, 0, 1]
    np.testing.assert_allclose(ranked.distances, np.sqrt([0.08, 0.4, 0.8]), rtol=1e-5)
    np.testing.assert_allclose(ranked.similarities, [96.0, 80.0, 60.0], rtol=1e-5)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_matches_brute_force(metric):
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(1000, 64)).astype(np.float32)
    query = rng.normal(size=64).astype(np.float32)
    ranked = rank(query, matrix, (matrix ** 2).sum(1), k=10, metric=metric)
    if metric == "euclidean":
        expected = np.linalg.norm(matrix - query, axis=1)
    else:
        expected = 1 - matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
    assert ranked.positions.tolist() == np.argsort(expected)[:10].tolist()
    np.testing.assert_allclose(ranked.distances, np.sort(expected)[:10], rtol=1e-4, atol=1e-4)


def test_k_larger_than_matrix_and_empty_matrix():
    matrix = np.eye(3, dtype=np.float32)
    assert len(rank(matrix[0], matrix, np.ones(3, np.float32), k=10).positions) == 3
    assert len(rank(matrix[0], np.zeros((0, 3), np.float32), np.zeros(0, np.float32), k=10).positions) == 0


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="choose one of: euclidean, cosine"):
        rank(np.ones(2, np.float32), np.eye(2, dtype=np.float32), np.ones(2, np.float32), 1, "manhattan")

"""Retrieval metrics against a hand-computed example."""
import numpy as np
import pytest

from evaluation.metrics import map_at_k, pad_hits, precision_at_k, recall_at_k

# Query 1: relevant at ranks 1, 3 (3 relevant in the catalogue). Query 2: relevant at rank 2 only (1 relevant).
HITS = pad_hits([[True, False, True, False], [False, True]], 4)
N_RELEVANT = np.array([3, 1])


def test_precision_at_k():
    assert precision_at_k(HITS, 1) == pytest.approx((1 + 0) / 2)
    assert precision_at_k(HITS, 4) == pytest.approx((2 / 4 + 1 / 4) / 2)


def test_recall_at_k():
    assert recall_at_k(HITS, N_RELEVANT, 1) == pytest.approx((1 / 3 + 0) / 2)
    assert recall_at_k(HITS, N_RELEVANT, 4) == pytest.approx((2 / 3 + 1) / 2)


def test_map_at_k():
    # q1: AP@4 = (1/1 + 2/3) / min(4, 3) = 0.5556; q2: AP@4 = (1/2) / 1 = 0.5
    assert map_at_k(HITS, N_RELEVANT, 4) == pytest.approx(((1 + 2 / 3) / 3 + 0.5) / 2)
    # q1: AP@1 = 1/1; q2: AP@1 = 0
    assert map_at_k(HITS, N_RELEVANT, 1) == pytest.approx(0.5)


def test_padding_counts_missing_results_as_misses():
    assert HITS.shape == (2, 4) and HITS[1].tolist() == [False, True, False, False]

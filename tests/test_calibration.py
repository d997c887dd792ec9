"""The weak-match threshold calibrated at training (``model.calibration``) and kept in the model card."""
import json
from dataclasses import asdict

import numpy as np
import pytest

from model import calibration
from model.calibration import min_similarity
from model.card import ModelCard, card_path


def pairs(cosines: list[float], dim: int = 64) -> np.ndarray:
    """Unit vectors in pairs, each pair at its cosine and orthogonal to every other pair: each vector's most
    similar other vector is its partner."""
    vectors = []
    for i, cosine in enumerate(cosines):
        u, v = np.zeros(dim), np.zeros(dim)
        u[2 * i] = 1.0
        v[2 * i], v[2 * i + 1] = cosine, np.sqrt(1.0 - cosine ** 2)
        vectors += [u, v]
    return np.array(vectors, np.float32)


def test_the_threshold_is_the_5th_percentile_of_each_pictures_nearest_other_picture():
    # 40 pictures: 4 of them (5th percentile's neighbours, 10 %) have their nearest at 0.3, the rest at 0.9.
    embeddings = pairs([0.3, 0.3] + [0.9] * 18)
    assert min_similarity(embeddings, np.zeros(40, int)) == pytest.approx(30.0, abs=1e-4)


def test_only_pictures_of_the_same_category_count_and_lone_pictures_are_skipped():
    embeddings = pairs([0.3, 0.3] + [0.9] * 18)
    labels = np.zeros(40, int)
    twin = embeddings[0]  # identical to a picture of category 0, but in category 1
    lone = embeddings[2]  # the only picture of category 2
    threshold = min_similarity(np.vstack([embeddings, twin, twin, lone]), np.concatenate([labels, [1, 1, 2]]))
    # Category 1's twins are each other's nearest at 100 %: 42 similarities, the lowest four still 30 %.
    assert threshold == pytest.approx(30.0, abs=1e-4)


def test_opposite_pictures_count_as_zero_similarity_as_the_search_reports_it():
    assert min_similarity(pairs([-0.5] * 4), np.zeros(8, int)) == 0.0


def test_no_threshold_without_a_category_of_two_pictures():
    assert min_similarity(pairs([0.9])[:1], np.array([0])) is None


def test_a_category_compared_in_blocks_gives_the_same_threshold(monkeypatch):
    embeddings = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    labels = np.arange(50) % 3
    whole = min_similarity(embeddings, labels)
    monkeypatch.setattr(calibration, "_ROWS", 4)
    assert min_similarity(embeddings, labels) == pytest.approx(whole, abs=1e-4)


def test_a_card_written_before_calibration_loads_without_a_threshold(tmp_path):
    card = ModelCard("mobilenet_v2", "imagenet", 224, "mobilenet_v2", ["a", "b"], version="old-1")
    written = asdict(card)
    del written["min_similarity"]
    card_path(tmp_path / "model.keras").write_text(json.dumps(written))
    assert ModelCard.read(tmp_path / "model.keras").min_similarity is None


def test_the_card_keeps_its_threshold(tmp_path):
    ModelCard("mobilenet_v2", "imagenet", 224, "mobilenet_v2", ["a", "b"], min_similarity=33.2).write(
        tmp_path / "model.keras")
    assert ModelCard.read(tmp_path / "model.keras").min_similarity == 33.2

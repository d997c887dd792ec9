"""Classify → narrow → rank on a real store with real catalogue photos."""
import numpy as np
import pytest

from catalogue.folder import list_catalogue
from images.decoding import ImageError
from ingest.loader import Loader
from search.service import SearchError, SearchService


@pytest.fixture
def service(store, trained_model, fashion_slice):
    Loader(trained_model, store, batch_size=16, progress=False).ingest(list_catalogue(fashion_slice))
    return SearchService(trained_model, store, top_k=30)


def test_a_catalogue_image_finds_itself_first(service, fashion_slice):
    for category in ("Backpacks", "Watches"):
        path = sorted((fashion_slice / category).glob("*.jpg"))[3]
        result = service.search(path.read_bytes())
        assert result.predicted[0] == category and result.searched == [category]
        best, second = result.matches[:2]
        assert best.product.external_id == path.stem and best.distance < second.distance
        assert best.similarity == pytest.approx(100 * (1 - best.distance ** 2 / 2), abs=1e-3)
        assert len(result.matches) == 12  # the whole category, k=30 > 12
        assert all(m.product.category == category for m in result.matches)
        distances = [m.distance for m in result.matches]
        assert distances == sorted(distances)


def test_result_explains_itself(service, fashion_slice):
    result = service.search(sorted((fashion_slice / "Heels").glob("*.jpg"))[0].read_bytes(), k=5)
    assert len(result.matches) == 5
    assert sum(p for _, p in result.probabilities) == pytest.approx(1.0, abs=1e-4)
    assert [p for _, p in result.probabilities] == sorted((p for _, p in result.probabilities), reverse=True)
    assert result.embedding.shape == (512,) and np.linalg.norm(result.embedding) == pytest.approx(1.0, abs=1e-4)
    assert result.model_input.shape == (96, 96, 3)
    assert -1.0 <= result.model_input.min() < result.model_input.max() <= 1.0
    assert set(result.timings_ms) == {"decode", "preprocess", "forward_pass", "localise", "neighbours", "narrow",
                                      "rank", "safety_net"}
    assert result.box_source == "whole photo" and result.box is None and result.localisation.heat.shape == (3, 3)
    assert "most probable" in result.rule


def test_scope_all_and_cosine(service, fashion_slice):
    path = sorted((fashion_slice / "Sunglasses").glob("*.jpg"))[1]
    result = service.search(path.read_bytes(), k=48, metric="cosine", scope="all")
    assert result.searched == ["Backpacks", "Heels", "Sunglasses", "Watches"]
    assert len(result.matches) == 48 and result.matches[0].product.external_id == path.stem
    assert result.matches[0].distance < result.matches[1].distance


def test_the_cache_sees_new_products(service, store, trained_model, fashion_slice, tmp_path):
    query = sorted((fashion_slice / "Backpacks").glob("*.jpg"))[0].read_bytes()
    assert len(service.search(query).matches) == 12
    from tests.conftest import copy_slice
    extra = copy_slice(tmp_path / "more", categories=("Backpacks",), per_category=15)
    Loader(trained_model, store, progress=False).ingest(list_catalogue(extra))
    assert len(service.search(query).matches) == 15


def test_warming_up_reads_the_catalogue_before_the_first_search(service, store, fashion_slice, monkeypatch):
    reads = []
    real = store.category_vectors
    monkeypatch.setattr(store, "category_vectors", lambda *args: reads.append(args[0]) or real(*args))
    service.warm_up()
    assert sorted(reads) == ["Backpacks", "Heels", "Sunglasses", "Watches"]
    service.search(sorted((fashion_slice / "Heels").glob("*.jpg"))[0].read_bytes())
    assert len(reads) == 4  # the search found every category in the cache


@pytest.mark.parametrize("kwargs, message", [({"k": 0}, "k must be"), ({"k": 10_000}, "k must be"),
                                             ({"metric": "manhattan"}, "metric"), ({"scope": "world"}, "scope")])
def test_bad_parameters_are_refused(service, fashion_slice, kwargs, message):
    with pytest.raises(SearchError, match=message):
        service.search(b"unused", **kwargs)


def test_a_non_image_is_refused(service):
    with pytest.raises(ImageError):
        service.search(b"GIF89a but not really")


def test_batched_search_gives_the_same_answers(service, fashion_slice):
    from images.decoding import decode_image

    paths = [sorted((fashion_slice / c).glob("*.jpg"))[2] for c in ("Heels", "Watches", "Backpacks")]
    batched = service.search_images([decode_image(p.read_bytes(), 10**7).rgb for p in paths], k=5)
    for path, result in zip(paths, batched):
        single = service.search(path.read_bytes(), k=5)
        assert [m.product.id for m in result.matches] == [m.product.id for m in single.matches]
        assert result.matches[0].product.external_id == path.stem

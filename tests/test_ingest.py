"""The loader on real catalogue photos: batched, reported, re-runnable, with metadata joined."""
import shutil

import pytest

from db.store import Store
from ingest.catalogue import list_catalogue, load_metadata
from ingest.loader import Loader
from tests.conftest import FASHION, SHARED, copy_slice
from tests.images import encode, gradient


def test_ingest_then_reingest_adds_nothing(store, trained_model, fashion_slice):
    loader = Loader(trained_model, store, batch_size=16, progress=False)
    files = list_catalogue(fashion_slice)
    first = loader.ingest(files)
    assert (first.added, first.present, first.rejected) == (48, 0, [])
    again = loader.ingest(files)
    assert (again.added, again.present) == (0, 48)
    assert store.category_counts() == {name: 12 for name in ("Backpacks", "Heels", "Sunglasses", "Watches")}
    assert store.vector_counts() == {trained_model.version: 48}


def test_bad_files_are_reported_and_skipped(store, trained_model, tmp_path):
    catalogue = copy_slice(tmp_path / "catalogue", categories=("Backpacks",), per_category=5)
    (catalogue / "Backpacks" / "notes.txt").write_text("not a picture")
    (catalogue / "Backpacks" / "broken.jpg").write_bytes(encode(gradient(300, 300))[:200])
    (catalogue / "Backpacks" / "empty.jpg").write_bytes(b"")
    shutil.copy(next((catalogue / "Backpacks").glob("1*.jpg")), catalogue / "Backpacks" / "copy.jpg")
    report = Loader(trained_model, store, batch_size=4, progress=False).ingest(list_catalogue(catalogue))
    reasons = {name.rsplit("/", 1)[-1]: reason for name, reason in report.rejected}
    assert report.added == 5 and report.present == 1  # the copy is the same image
    assert set(reasons) == {"notes.txt", "broken.jpg", "empty.jpg"}
    assert "empty" in reasons["empty.jpg"] and "truncated" in reasons["broken.jpg"]
    assert "Rejected" not in report.summary() and "rejected 3" in report.summary()


class Interrupted(Exception):
    pass


def test_interrupted_ingest_finishes_on_rerun_without_duplicates(store_url, trained_model, fashion_slice):
    files = list_catalogue(fashion_slice)
    store = Store.from_url(store_url)
    original = store.add_products
    calls = []

    def fail_on_third_batch(items, version):
        calls.append(len(items))
        if len(calls) == 3:
            raise Interrupted()
        return original(items, version)

    store.add_products = fail_on_third_batch
    with pytest.raises(Interrupted):
        Loader(trained_model, store, batch_size=8, progress=False).ingest(files)
    partial = Store.from_url(store_url)
    assert sum(partial.category_counts().values()) == 16  # two whole batches, nothing of the third
    report = Loader(trained_model, partial, batch_size=8, progress=False).ingest(files)
    assert (report.added, report.present) == (32, 16)
    assert sum(partial.category_counts().values()) == 48
    assert partial.vector_counts() == {trained_model.version: 48}


def test_csv_metadata_is_joined_by_id(fashion_slice):
    files = list_catalogue(fashion_slice)
    metadata = load_metadata(FASHION / "products.csv", files)
    assert len(metadata) == len(files)
    row = metadata[files[0].path]
    assert row["articleType"] == "Backpacks" and "id" not in row


def test_borobudur_narratives_are_joined_by_file_name(store, trained_model, tmp_path):
    source = SHARED / "data" / "borobudur"
    folder = tmp_path / "reliefs"
    folder.mkdir()
    for path in sorted((source / "images").glob("*.jpg"))[:3]:
        shutil.copy(path, folder / path.name)
    files = list_catalogue(folder, category="Karmawibhangga")
    metadata = load_metadata(source / "narasi-karmawibhangga.csv", files)
    assert {f.category for f in files} == {"Karmawibhangga"} and len(metadata) == 3
    Loader(trained_model, store, progress=False).ingest(files, metadata)
    ids, _ = store.category_vectors("Karmawibhangga", trained_model.version)
    stories = [p.attributes for p in store.products(ids).values()]
    assert all(s["Tema"] and s["Narasi"] and s["Makna moral"] for s in stories)


def test_reembed_moves_every_product_to_the_new_model(store, trained_model, fashion_slice):
    from dataclasses import replace

    from model.inference import OnnxNetwork

    Loader(trained_model, store, batch_size=16, progress=False).ingest(list_catalogue(fashion_slice))
    newer = OnnxNetwork(trained_model.session, replace(trained_model.card, version="next-version"), batch_size=16)
    counts = Loader(newer, store, batch_size=16, progress=False).reembed()
    assert counts == {"embedded": 48, "pruned": 48}
    assert store.vector_counts() == {"next-version": 48}
    assert Loader(newer, store, progress=False).reembed() == {"pruned": 0}

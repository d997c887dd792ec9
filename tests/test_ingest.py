"""The loader on real catalogue photos: batched, reported, re-runnable, with metadata joined."""
import copy
import hashlib
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import update

from catalogue.folder import category_form, list_catalogue, load_metadata, relabel
from config import DEFAULTS
from db.registry import ModelRegistry
from db.schema import Feature
from db.store import Move, RegistryChanged, Store
from images.decoding import decode_image
from ingest.loader import Loader
from model.gallery import gallery_inputs, gallery_vectors
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
    # The stored vectors are the photo's with its views and the photo's own, as model.gallery makes them from the
    # decoded file.
    data = files[0].path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    vector, photo = gallery_vectors(trained_model, gallery_inputs(decode_image(data, DEFAULTS.max_image_pixels).rgb,
                                                                  trained_model.input_size, sha,
                                                                  trained_model.card.gallery_views)[None])
    [product_id] = store.ids_of([files[0].external_id])
    found = store.category_vectors(files[0].category, trained_model.version)
    [position] = np.flatnonzero(found.ids == product_id)
    assert np.allclose(found.vectors[position], vector[0], atol=1e-5)
    assert np.allclose(found.voters[position], photo[0], atol=1e-5)
    assert not np.allclose(vector[0], photo[0], atol=1e-3)


def test_bad_files_are_reported_and_skipped(store, trained_model, tmp_path):
    catalogue = copy_slice(tmp_path / "catalogue", categories=("Backpacks",), per_category=5)
    (catalogue / "Backpacks" / "notes.txt").write_text("not a picture")
    (catalogue / "Backpacks" / "broken.jpg").write_bytes(encode(gradient(300, 300))[:200])
    (catalogue / "Backpacks" / "empty.jpg").write_bytes(b"")
    shutil.copy(next((catalogue / "Backpacks").glob("1*.jpg")), catalogue / "Backpacks" / "copy.jpg")
    (catalogue / "Backpacks" / "huge.jpg").write_bytes(encode(gradient(300, 300))[:100] + bytes(60_000))
    # A name from an old archive, in Latin-1: the file system cannot give it as text.
    (Path(os.fsdecode(os.fsencode(catalogue / "Backpacks") + b"/caf\xe9.jpg"))).write_bytes(encode(gradient(64, 64)))
    report = Loader(trained_model, store, batch_size=4, max_file_bytes=50_000,
                    progress=False).ingest(list_catalogue(catalogue))
    reasons = {name.rsplit("/", 1)[-1]: reason for name, reason in report.rejected}
    assert report.added == 5 and report.present == 1  # the copy is the same image
    assert set(reasons) == {"notes.txt", "broken.jpg", "empty.jpg", "huge.jpg", "caf\\xe9.jpg"}
    assert "empty" in reasons["empty.jpg"] and "truncated" in reasons["broken.jpg"]
    assert "larger than the limit of 50,000" in reasons["huge.jpg"] and "not UTF-8" in reasons["caf\\xe9.jpg"]
    assert "Rejected" not in report.summary() and "rejected 5" in report.summary()
    report.summary().encode()  # printable
    # all but notes.txt (no picture at all) may be a product's photo, unreadable or half copied
    assert report.doubtful == 4
    assert "moves not looked for: 4 rejected files may hold a product's photo" in report.summary()


def test_an_ingest_stops_when_a_model_is_registered_while_it_runs(store, trained_model, fashion_slice):
    """Its products would lack the new model's vectors, and that model could be activated meanwhile."""
    ModelRegistry(store).register(trained_model.version, "small_cnn", trained_model.categories)
    loader = Loader(trained_model, store, batch_size=16, progress=False)
    files = list_catalogue(fashion_slice)
    assert loader.ingest(files[:16]).added == 16
    ModelRegistry(store).register("registered-meanwhile", "small_cnn", trained_model.categories)
    with pytest.raises(RuntimeError, match="model registered-meanwhile was registered meanwhile, so this run stopped"):
        loader.ingest(files)
    assert sum(store.category_counts().values()) == 16


def test_an_ingest_stops_when_its_model_is_pruned_while_it_runs(store, trained_model, fashion_slice, monkeypatch):
    """Its next batches would store vectors of a version the registry no longer lists, which no prune would see;
    also when the prune commits just before a batch's transaction begins."""
    served = copy.copy(trained_model)  # the same network under another version: the one served
    served.card = replace(trained_model.card, version="served")
    registry = ModelRegistry(store)
    for version in (trained_model.version, "served"):
        registry.register(version, "small_cnn", trained_model.categories)
    registry.activate("served")
    transaction, batches = store._transaction, []

    def pruned_just_before(work):
        batches.append(work)
        if len(batches) == 2:
            registry.prune([trained_model.version])  # an admin prunes this ingest's model (not the active one)
        return transaction(work)

    monkeypatch.setattr(store, "_transaction", pruned_just_before)
    with pytest.raises(RegistryChanged, match=f"model {trained_model.version} was pruned meanwhile, so this run"):
        Loader(trained_model, store, batch_size=8, progress=False, more_models=[served]).ingest(
            list_catalogue(fashion_slice)[:24])
    assert sum(store.category_counts().values()) == 8
    assert store.vector_counts() == {"served": 8}  # none of the pruned version's


def test_a_reembed_stops_when_its_model_is_pruned_while_it_runs(store, trained_model, fashion_slice, monkeypatch):
    """As an ingest: its next batches would store vectors of a version the registry no longer lists."""
    served = copy.copy(trained_model)
    served.card = replace(trained_model.card, version="served")
    registry = ModelRegistry(store)
    registry.register("served", "small_cnn", trained_model.categories)
    Loader(served, store, batch_size=8, progress=False).ingest(list_catalogue(fashion_slice)[:24])
    registry.activate("served")
    registry.register(trained_model.version, "small_cnn", trained_model.categories)  # the next model, embedding
    transaction, batches = store._transaction, []

    def pruned_just_before(work):
        batches.append(work)
        if len(batches) == 2:
            registry.prune([trained_model.version])
        return transaction(work)

    monkeypatch.setattr(store, "_transaction", pruned_just_before)
    with pytest.raises(RegistryChanged, match=f"model {trained_model.version} was pruned meanwhile"):
        Loader(trained_model, store, batch_size=8, progress=False).reembed()
    assert store.vector_counts() == {"served": 24}


class Interrupted(Exception):
    pass


def test_interrupted_ingest_finishes_on_rerun_without_duplicates(store_url, trained_model, fashion_slice):
    files = list_catalogue(fashion_slice)
    store = Store.from_url(store_url)
    original = store.add_products
    calls = []

    def fail_on_third_batch(items, registered):
        calls.append(len(items))
        if len(calls) == 3:
            raise Interrupted()
        return original(items, registered)

    store.add_products = fail_on_third_batch
    with pytest.raises(Interrupted):
        Loader(trained_model, store, batch_size=8, progress=False).ingest(files)
    partial = Store.from_url(store_url)
    assert sum(partial.category_counts().values()) == 16  # two whole batches, nothing of the third
    report = Loader(trained_model, partial, batch_size=8, progress=False).ingest(files)
    assert (report.added, report.present) == (32, 16)
    assert sum(partial.category_counts().values()) == 48
    assert partial.vector_counts() == {trained_model.version: 48}


def test_a_file_moved_to_another_category_folder_moves_its_product(store, trained_model, tmp_path):
    catalogue = copy_slice(tmp_path / "catalogue", categories=("Backpacks", "Watches"), per_category=4)
    loader = Loader(trained_model, store, batch_size=16, progress=False)
    loader.ingest(list_catalogue(catalogue))
    stored = store.category_vectors("Backpacks", trained_model.version)
    moved = sorted((catalogue / "Backpacks").glob("*.jpg"))[0]
    (catalogue / "Bags").mkdir()
    moved.rename(catalogue / "Bags" / f"renamed{moved.suffix}")
    report = loader.ingest(list_catalogue(catalogue))
    first = int(stored.ids[0])
    assert (report.added, report.present) == (0, 8)
    assert report.moved == [Move(first, ("Backpacks", moved.stem), ("Bags", "renamed"))] and report.kept == []
    assert f"moved Backpacks/{moved.stem} → Bags/renamed" in report.summary()
    assert store.category_counts() == {"Backpacks": 3, "Bags": 1, "Watches": 4}
    bags = store.category_vectors("Bags", trained_model.version)  # the same product, vectors and all
    assert bags.ids.tolist() == stored.ids[:1].tolist() and (bags.vectors == stored.vectors[:1]).all()
    assert loader.ingest(list_catalogue(catalogue)).moved == []
    # Its image under another catalogue's category: that catalogue's product now, and nothing moves back and forth.
    (tmp_path / "other" / "Totes").mkdir(parents=True)
    shutil.copy(catalogue / "Bags" / f"renamed{moved.suffix}", tmp_path / "other" / "Totes" / "t1.jpg")
    report = loader.ingest(list_catalogue(tmp_path / "other"))  # Bags' only product: as if Bags were renamed
    assert report.moved == [] and report.kept == [] and report.renamed == [("Bags", "Totes")]
    assert store.category_counts()["Bags"] == 1


def test_a_new_category_that_looks_like_another_is_pointed_out(store, trained_model, tmp_path):
    catalogue = copy_slice(tmp_path / "catalogue", categories=("Watches",), per_category=2)
    loader = Loader(trained_model, store, batch_size=16, progress=False)
    loader.ingest(list_catalogue(catalogue))
    for typo, photo in zip(("watches", "Watches "), sorted(FASHION.joinpath("catalogue", "Heels").glob("*.jpg"))):
        (catalogue / typo).mkdir()
        shutil.copy(photo, catalogue / typo / photo.name)
    report = loader.ingest(list_catalogue(catalogue))
    assert report.added == 2 and report.lookalikes == [("Watches ", "Watches"), ("watches", "Watches")]
    assert ("new category 'watches' differs from 'Watches' only in case, spaces or underscores: rename its folder "
            "if they are one") in report.summary()
    assert loader.ingest(list_catalogue(catalogue)).lookalikes == []  # said once, when they are made
    # The served model knows Watches, not the new folders: said at every ingest, as it stays true until a retraining.
    assert report.unpredicted == ["Watches ", "watches"]


def test_a_renamed_category_folder_is_pointed_to_categories_rename(store, trained_model, tmp_path):
    catalogue = copy_slice(tmp_path / "catalogue", categories=("Heels", "Watches"), per_category=3)
    loader = Loader(trained_model, store, batch_size=16, progress=False)
    loader.ingest(list_catalogue(catalogue))
    (catalogue / "Heels").rename(catalogue / "High Heels")
    shutil.copy(sorted((catalogue / "Watches").glob("*.jpg"))[0], catalogue / "Watches" / "again.jpg")
    report = loader.ingest(list_catalogue(catalogue))
    assert (report.moved, report.kept, report.renamed) == ([], [], [("Heels", "High Heels")])
    summary = report.summary()
    assert ("not moved: folder 'High Heels' holds every product of category 'Heels'; if the category was renamed: "
            "'lookalike categories rename Heels 'High Heels'' (its model follows)") in summary
    copied = sorted((catalogue / "Watches").glob("*.jpg"))[0].stem  # digits sort before "again"
    assert f"Watches/again is the same picture as Watches/{copied}: one product" in summary
    assert store.category_counts() == {"Heels": 3, "Watches": 3}
    gone, *left = sorted((catalogue / "High Heels").glob("*.jpg"))  # not all of them: one by one
    gone.unlink()
    report = loader.ingest(list_catalogue(catalogue))
    assert report.renamed == [] and [move.after for move in report.kept] == [("High Heels", p.stem) for p in left]
    assert (f"not moved: High Heels/{left[0].stem} is the picture of product {report.kept[0].product}, "
            f"Heels/{left[0].stem}, of a category this folder does not hold; if it belongs here: 'lookalike products "
            f"delete {report.kept[0].product}', then ingest again") in report.summary()


def test_no_product_moves_while_a_file_cannot_be_read(store, trained_model, tmp_path, unreadable):
    catalogue = copy_slice(tmp_path / "catalogue", categories=("Backpacks",), per_category=3)
    loader = Loader(trained_model, store, batch_size=16, progress=False)
    loader.ingest(list_catalogue(catalogue))
    first = sorted((catalogue / "Backpacks").glob("*.jpg"))[0]
    (catalogue / "Bags").mkdir()
    shutil.copy(first, catalogue / "Bags" / "copy.jpg")  # a copy of the picture elsewhere, its own file unreadable
    unreadable(first)
    report = loader.ingest(list_catalogue(catalogue))
    assert report.doubtful == 1 and report.moved == [] and "moves not looked for: 1 rejected" in report.summary()
    assert store.category_counts() == {"Backpacks": 3}


def test_csv_metadata_is_joined_by_id(fashion_slice):
    files = list_catalogue(fashion_slice)
    metadata = load_metadata(FASHION / "products.csv", files)
    assert len(metadata) == len(files)
    row = metadata[files[0].path]
    assert row["articleType"] == "Backpacks" and "id" not in row


@pytest.fixture
def same_names(tmp_path) -> list:
    """Two categories whose files share names, as two suppliers' numbering would."""
    for category in ("Bags", "Caps"):
        (tmp_path / "shop" / category).mkdir(parents=True)
        for name in ("1.jpg", "2.jpg"):
            (tmp_path / "shop" / category / name).write_bytes(b"")
    return list_catalogue(tmp_path / "shop")


def joined(files, csv_text: str, tmp_path) -> dict[str, dict]:
    (tmp_path / "meta.csv").write_text(csv_text)
    return {f"{path.parent.name}/{path.name}": row for path, row in load_metadata(tmp_path / "meta.csv", files).items()}


def test_a_csv_row_shorter_than_its_header_lacks_its_last_cells(same_names, tmp_path):
    # Not None values, which the API's product schema (strings) would refuse.
    assert joined(same_names, "id,kind,colour,season\nBags/1,Bags\nCaps/1,Caps,red,\n", tmp_path) == {
        "Bags/1.jpg": {"kind": "Bags"}, "Caps/1.jpg": {"kind": "Caps", "colour": "red", "season": ""}}


def test_csv_rows_are_joined_to_the_category_their_row_names(same_names, tmp_path):
    assert joined(same_names, "id,kind,colour\n1,Caps,red\n1,Bags,blue\n2,Caps,green\n", tmp_path) == {
        "Caps/1.jpg": {"kind": "Caps", "colour": "red"}, "Bags/1.jpg": {"kind": "Bags", "colour": "blue"},
        "Caps/2.jpg": {"kind": "Caps", "colour": "green"}}
    assert joined(same_names, "file,colour\nBags/2.jpg,red\nCaps/1,blue\n", tmp_path) == {
        "Bags/2.jpg": {"colour": "red"}, "Caps/1.jpg": {"colour": "blue"}}
    # A key's category may be spelt in another case or spacing, where no other folder has the same form.
    assert joined(relabel(same_names, {"Bags": "Tote_Bags"}), "file,colour\ntote bags/2.jpg,red\nCAPS/1,blue\n",
                  tmp_path) == {"Bags/2.jpg": {"colour": "red"}, "Caps/1.jpg": {"colour": "blue"}}
    with pytest.raises(ValueError, match=r"rows that fit several files \(1\), e.g. SHOES/1 "):
        joined(relabel(same_names, {"Bags": "Shoes", "Caps": "shoes"}), "file,colour\nSHOES/1,red\n", tmp_path)
    # So does a category column's cell that names two folders only by their form: never dropped unsaid.
    with pytest.raises(ValueError, match=r"rows that fit several files \(1\), e.g. 1 .*spelt exactly as its folder"):
        joined(relabel(same_names, {"Bags": "Shoes", "Caps": "shoes"}), "id,kind\n1,SHOES\n2,Shoes\n2,shoes\n",
               tmp_path)
    # One category's folder against a shop-wide CSV: only rows of that category join (cells beyond the header are
    # dropped); case, spaces and underscores may differ where no other folder has the same form.
    bags = [entry for entry in same_names if entry.category == "Bags"]
    assert joined(bags, "id,kind\n2,Hats\n1,Bags,extra\n1,Caps\n", tmp_path) == {"Bags/1.jpg": {"kind": "Bags"}}
    assert joined(relabel(same_names, {"Bags": "Tote_Bags"}), "id,kind\n2,tote bags\n", tmp_path) == {
        "Bags/2.jpg": {"kind": "tote bags"}}
    assert joined(relabel(same_names, {"Bags": "Shoes", "Caps": "shoes"}), "id,kind\n1,shoes\n1,Shoes\n",
                  tmp_path) == {"Caps/1.jpg": {"kind": "shoes"}, "Bags/1.jpg": {"kind": "Shoes"}}
    # A column that names a category now and then by chance is not taken for the category column.
    assert joined(same_names, "file,note\nBags/1,Bags\nBags/2,x\nCaps/1,y\nCaps/2,z\n", tmp_path) == {
        "Bags/1.jpg": {"note": "Bags"}, "Bags/2.jpg": {"note": "x"}, "Caps/1.jpg": {"note": "y"},
        "Caps/2.jpg": {"note": "z"}}


def test_category_names_that_differ_in_case_spaces_or_underscores_have_one_form():
    assert category_form("Back packs") == category_form("backpacks") == category_form(" Back_Packs ") == "backpacks"
    assert category_form("Heels") != category_form("Heel")


def test_a_csv_row_that_fits_files_of_several_categories_is_refused(same_names, tmp_path):
    with pytest.raises(ValueError,
                       match=r"rows that fit several files \(1\), e.g. 2 \(\S+/Bags/2.jpg, \S+/Caps/2.jpg\): key"):
        joined(same_names, "id,colour\nCaps/1,red\n2,blue\n", tmp_path)


def test_a_file_with_rows_that_differ_is_refused_and_a_repeated_row_is_not(same_names, tmp_path):
    assert joined(same_names, "file,colour\nBags/1,red\nBags/1,red\n", tmp_path) == {"Bags/1.jpg": {"colour": "red"}}
    assert joined(same_names, "file,colour,size\nBags/1,red\nBags/1.jpg,red, \n", tmp_path) == {
        "Bags/1.jpg": {"colour": "red"}}  # a short row and an empty cell say the same
    with pytest.raises(ValueError, match=r"files with several rows that differ \(1\), e.g. \S+/Bags/1.jpg: keep one"):
        joined(same_names, "file,colour\nBags/1,red\nBags/1.jpg,blue\nCaps/1,red\n", tmp_path)


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
    stories = [p.metadata for p in store.category_vectors("Karmawibhangga", trained_model.version).products.values()]
    assert all(s["Tema"] and s["Narasi"] and s["Makna moral"] for s in stories)


def newer_version(model, version="next-version"):
    """The same network under another version: a second model, as far as the store can tell."""
    from dataclasses import replace

    from model.inference import OnnxNetwork

    return OnnxNetwork(model.session, replace(model.card, version=version), batch_size=16)


def test_reembed_gives_every_product_a_vector_of_the_new_model_and_keeps_the_old(store, trained_model,
                                                                                 fashion_slice):
    Loader(trained_model, store, batch_size=16, progress=False).ingest(list_catalogue(fashion_slice))
    newer = newer_version(trained_model)
    counts = Loader(newer, store, batch_size=16, progress=False).reembed()
    assert counts == {"next-version": {"embedded": 48}}
    assert store.vector_counts() == {trained_model.version: 48, "next-version": 48}  # still served meanwhile
    assert Loader(newer, store, progress=False).reembed() == {"next-version": {"embedded": 0}}
    # The same network, the same views (seeded by the photo): the vectors ingest stored.
    stored, again = (store.category_vectors("Watches", version) for version in (trained_model.version, "next-version"))
    assert np.allclose(stored.vectors, again.vectors, atol=1e-5) and np.allclose(stored.voters, again.voters, atol=1e-5)


def test_reembed_gives_rows_stored_before_photo_vectors_theirs(store, trained_model, fashion_slice):
    Loader(trained_model, store, batch_size=16, progress=False).ingest(list_catalogue(fashion_slice))
    before = store.category_vectors("Watches", trained_model.version)
    with store.engine.begin() as conn:  # as the loader before migration 0003 left them
        conn.execute(update(Feature).values(photo_vector=None))
    assert (store.category_vectors("Watches", trained_model.version).voters == before.vectors).all()  # the vector
    assert Loader(trained_model, store, batch_size=16, progress=False).reembed() == {
        trained_model.version: {"embedded": 48}}
    assert store.vector_counts() == {trained_model.version: 48}  # replaced, not added
    after = store.category_vectors("Watches", trained_model.version)
    assert np.allclose(after.vectors, before.vectors, atol=1e-5) and np.allclose(after.voters, before.voters, atol=1e-5)
    assert Loader(trained_model, store, progress=False).reembed() == {trained_model.version: {"embedded": 0}}


def test_ingest_while_a_swap_is_pending_writes_both_versions(store, trained_model, fashion_slice):
    files = list_catalogue(fashion_slice)
    Loader(trained_model, store, batch_size=16, progress=False).ingest(files[:20])
    newer = newer_version(trained_model)
    report = Loader(trained_model, store, batch_size=16, progress=False, more_models=[newer]).ingest(files)
    assert (report.added, report.present) == (28, 20)
    assert store.vector_counts() == {trained_model.version: 48, "next-version": 28}
    [added] = store.category_vectors(files[-1].category, "next-version").ids[-1:].tolist()
    old, new = store.vector(added, trained_model.version), store.vector(added, "next-version")
    assert old is not None and (old == new).all()  # the same network: the same vector under each version


def test_reingest_with_a_csv_updates_stored_metadata(store, trained_model, fashion_slice):
    files = list_catalogue(fashion_slice)
    loader = Loader(trained_model, store, batch_size=16, progress=False)
    loader.ingest(files)  # no metadata the first time
    metadata = load_metadata(FASHION / "products.csv", files)
    report = loader.ingest(files, metadata)
    assert (report.added, report.present, report.updated) == (0, 48, 48)
    assert "metadata updated 48" in report.summary()
    metadata[files[0].path] = {**metadata[files[0].path], "baseColour": "Ultraviolet"}
    assert loader.ingest(files, metadata).updated == 1
    [info] = [p for p in store.list_products() if p.external_id == files[0].external_id]
    assert info.metadata["baseColour"] == "Ultraviolet"

"""The store on SQLite and on a real MySQL-compatible server."""
import hashlib
from dataclasses import replace

import numpy as np

from db.store import Move, NewProduct


class Deadlock(Exception):
    """What mysql-connector raises when the server ends a deadlock by rolling this transaction back."""
    sqlstate, errno = "40001", 1213


def product(category, name, vector, metadata=None, version="v1"):
    image = f"image bytes of {name}".encode()
    return NewProduct(category=category, external_id=name, image=image,
                      image_sha256=hashlib.sha256(image).hexdigest(), content_type="image/jpeg",
                      width=60, height=80, vectors={version: np.asarray(vector, np.float32)},
                      metadata=metadata or {})


def test_products_are_stored_once_with_their_vectors(store):
    items = [product("Bags", "a", [1, 0, 0]), product("Bags", "b", [0, 1, 0]), product("Caps", "c", [0, 0, 1])]
    assert len(store.add_products(items)) == 3
    assert store.add_products(items) == []  # the same images again: nothing added
    assert store.category_counts() == {"Bags": 2, "Caps": 1}
    found = store.category_vectors("Bags", "v1")
    assert found.vectors.dtype == np.float32 and found.vectors.shape == (2, 3)
    np.testing.assert_array_equal(found.vectors, [[1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(found.voters, found.vectors)  # no photo vector stored: the vote reads the vector
    assert [found.products[pid].external_id for pid in found.ids.tolist()] == ["a", "b"]
    assert found.revision == store.category_revisions()["Bags"]
    assert store.image(int(found.ids[0])) == (b"image bytes of a", "image/jpeg")


def test_duplicates_within_one_batch_are_stored_once(store):
    twin = product("Bags", "a", [1, 0])
    assert len(store.add_products([twin, twin])) == 1


def test_names_differing_in_case_accents_or_trailing_spaces_are_different_names(store):
    store.add_products([product("Shoes", "A1", [1, 0]), product("shoes", "a1", [0, 1]),
                        product("Shoes ", "A1 ", [0, 0]), product("Cafe", "Café", [1, 1]),
                        product("Café", "Cafe", [1, 1])])
    assert store.category_counts() == {"Cafe": 1, "Café": 1, "Shoes": 1, "Shoes ": 1, "shoes": 1}
    assert store.ids_of(["A1 "]) == store.category_vectors("Shoes ", "v1").ids.tolist()
    np.testing.assert_array_equal(store.category_vectors("shoes", "v1").vectors, [[0, 1]])
    assert store.ids_of(["a1"]) == store.category_vectors("shoes", "v1").ids.tolist()
    assert store.ids_of(["Café"]) == store.category_vectors("Cafe", "v1").ids.tolist()


def test_a_product_moves_to_where_the_catalogue_now_has_its_image(store):
    bag, cap, hat = product("Bags", "a", [1, 0]), product("Caps", "c", [0, 1]), product("Hats", "h", [1, 1])
    store.add_products([bag, cap, hat])
    before = store.category_revisions()
    places = {bag.image_sha256: [("Totes", "a1")], cap.image_sha256: [("Hats", "x"), ("Caps", "c")],
              hat.image_sha256: [("Caps", "h")], "f" * 64: [("Bags", "gone")]}
    bag_id, cap_id, hat_id = store.ids_of(["a", "c", "h"])
    # The cap is still at one of its places; the hat's category is another catalogue's: both stay.
    assert store.relocate(places, within={"Bags", "Caps", "Totes"}) == (
        [Move(bag_id, ("Bags", "a"), ("Totes", "a1"))], [Move(hat_id, ("Hats", "h"), ("Caps", "h"))])
    assert store.category_counts() == {"Caps": 1, "Hats": 1, "Totes": 1}
    assert [p.external_id for p in store.category_vectors("Totes", "v1").products.values()] == ["a1"]
    after = store.category_revisions()
    assert after["Bags"] > before["Bags"] and after["Totes"] > max(before.values())
    assert after["Caps"] == before["Caps"] and after["Hats"] == before["Hats"]
    assert store.relocate({bag.image_sha256: [("Totes", "a1")]}, within={"Totes"}) == ([], [])
    # Renamed onto the name of a product whose file went: both are there until a sync removes the other.
    assert store.relocate({bag.image_sha256: [("Caps", "c")]}, within={"Totes"}).moved == [
        Move(bag_id, ("Totes", "a1"), ("Caps", "c"), sharing=cap_id)]


def test_vectors_are_little_endian_float32_blobs(store):
    store.add_products([product("Bags", "a", [1.5, -2.25])])
    with store.engine.connect() as conn:
        blob = conn.exec_driver_sql("SELECT vector FROM features").scalar_one()
    assert bytes(blob) == np.array([1.5, -2.25], "<f4").tobytes()


def test_the_vote_reads_each_photos_own_vector_where_one_is_stored(store):
    with_photo = replace(product("Bags", "a", [0.5, 0.75]), photo_vectors={"v1": np.array([1, 0], np.float32)})
    store.add_products([with_photo, product("Bags", "b", [0, 1])])
    found = store.category_vectors("Bags", "v1")
    np.testing.assert_array_equal(found.vectors, [[0.5, 0.75], [0, 1]])
    np.testing.assert_array_equal(found.voters, [[1, 0], [0, 1]])
    first, second = found.ids.tolist()
    store.put_vectors({first: np.array([0, 1], np.float32), second: np.array([1, 0], np.float32)}, "v2",
                      {second: np.array([0.25, 0.5], np.float32)})
    np.testing.assert_array_equal(store.category_vectors("Bags", "v2").voters, [[0, 1], [0.25, 0.5]])


def test_a_product_deleted_while_it_was_embedded_gets_no_vector(store):
    store.add_products([product("Bags", "a", [1, 0]), product("Bags", "b", [0, 1])])
    kept, deleted = store.category_vectors("Bags", "v1").ids.tolist()
    store.delete_products([deleted])
    before = store.category_revisions()["Bags"]
    assert store.put_vectors({kept: np.array([0, 1], np.float32), deleted: np.array([1, 0], np.float32)}, "v2") == 1
    assert store.category_vectors("Bags", "v2").ids.tolist() == [kept]
    assert store.category_revisions()["Bags"] > before
    assert store.put_vectors({deleted: np.array([1, 0], np.float32)}, "v2") == 0


def test_revision_moves_with_every_change_of_a_category(store):
    store.add_products([product("Bags", "a", [1, 0])])
    before = store.category_revisions()
    store.add_products([product("Bags", "b", [0, 1])])
    after = store.category_revisions()
    assert after["Bags"] > before["Bags"]


def test_model_versions_are_never_mixed(store):
    store.add_products([product("Bags", "a", [1, 0]), product("Bags", "b", [0, 1])])
    found = store.category_vectors("Bags", "v2")
    assert len(found.ids) == 0 and found.products == {} and found.revision is None
    missing = store.products_without_vector("v2", after_id=0, limit=10)
    assert [image for _, image in missing] == [b"image bytes of a", b"image bytes of b"]
    store.put_vectors({pid: np.array([0.5, 0.5], np.float32) for pid, _ in missing}, "v2")
    assert store.vector_counts() == {"v1": 2, "v2": 2}


def test_metadata_with_quotes_and_unicode_round_trips(store):
    metadata = {"Narasi": "Relief «Kāma» — it's \"quoted\"; DROP TABLE products; --", "emoji": "👜"}
    store.add_products([product("Tas'; --", "x'y", [1, 0], metadata)])
    [(pid, info)] = store.category_vectors("Tas'; --", "v1").products.items()
    assert info.metadata == metadata and info.category == "Tas'; --" and info.external_id == "x'y"
    assert store.products([pid]) == {pid: info}


def test_a_null_metadata_cell_stored_by_an_older_loader_reads_as_absent(store):
    store.add_products([product("Bags", "a", [1, 0], {"colour": "red", "size": None})])
    [(pid, info)] = store.category_vectors("Bags", "v1").products.items()
    assert info.metadata == {"colour": "red"} and store.products([pid])[pid].metadata == {"colour": "red"}
    assert [p.metadata for p in store.list_products("Bags")] == [{"colour": "red"}]


def test_a_batch_the_server_rolled_back_to_end_a_deadlock_is_stored_on_the_next_attempt(store, monkeypatch):
    from sqlalchemy.exc import InternalError

    insert, calls = store._insert, []

    def deadlocked_once(session, items, registered):
        calls.append(len(items))
        if len(calls) == 1:
            raise InternalError("INSERT INTO products …", {}, Deadlock("Deadlock found when trying to get lock"))
        insert(session, items, registered)

    monkeypatch.setattr(store, "_insert", deadlocked_once)
    assert len(store.add_products([product("Bags", "a", [1, 0]), product("Bags", "b", [0, 1])])) == 2
    assert calls == [2, 2] and store.category_counts() == {"Bags": 2}


def test_every_catalogue_change_is_tried_again_when_the_server_ends_a_deadlock_with_it(store, monkeypatch):
    from sqlalchemy.exc import OperationalError

    def deadlock_once(step: str) -> list[int]:
        """The writer's ``step`` (a method it calls inside its transaction) fails once, as the deadlock's victim."""
        real, deadlocks = getattr(store, step), []

        def once(*args):
            if not deadlocks:
                deadlocks.append(1)
                raise OperationalError("UPDATE categories …", {}, Deadlock("Deadlock found when trying to get lock"))
            return real(*args)

        monkeypatch.setattr(store, step, once)
        return deadlocks

    store.add_products([product("Bags", name, [1, 0]) for name in "abc"])
    [first, *_] = store.category_vectors("Bags", "v1").ids.tolist()
    deadlocks = deadlock_once("_bump")
    assert store.delete_products([first]) == {"Bags": 1} and deadlocks == [1]
    deadlocks = deadlock_once("_top_revision")
    store.rename_category("Bags", "Totes")
    assert store.category_counts() == {"Totes": 2} and deadlocks == [1]
    deadlocks = deadlock_once("_bump")
    assert store.update_metadata({("Totes", "b"): {"colour": "red"}}) == 1 and deadlocks == [1]
    deadlocks = deadlock_once("_bump")
    assert store.delete_category("Totes") == 2 and deadlocks == [1]


def test_writers_into_the_same_categories_at_once_all_store_their_batches(store):
    """Two ingests into one category, or an ingest and a reembed, used to deadlock on MariaDB (the inserts' shared
    locks on the category row, or the reembed's locks on products, then both bumping the category's revision): one
    failed with a raw database error."""
    from concurrent.futures import ThreadPoolExecutor

    def write(writer: int) -> int:
        return sum(len(store.add_products([product(category, f"{category}-{writer}-{batch}-{i}", [writer, batch, i])
                                           for category in ("Bags", "Caps") for i in range(4)]))
                   for batch in range(15))

    store.add_products([product(category, f"{category}-stored-{i}", [1, 0, 0])
                        for category in ("Bags", "Caps") for i in range(20)])
    ids = store.category_vectors("Bags", "v1").ids.tolist() + store.category_vectors("Caps", "v1").ids.tolist()

    def reembed(rounds: int) -> int:  # 'lookalike reembed' while the ingests run, as the README has it
        return sum(store.put_vectors({i: np.array([0, 1, 0], np.float32) for i in ids}, "v1") for _ in range(rounds))

    with ThreadPoolExecutor(4) as pool:
        reembedding = pool.submit(reembed, 15)
        assert list(pool.map(write, range(3))) == [120, 120, 120]
        assert reembedding.result() == 15 * 40
    assert store.category_counts() == {"Bags": 200, "Caps": 200}

"""Changing the catalogue after the first load, on SQLite and a real MySQL-compatible server: every change
moves the revision of the categories it touches, in the same transaction."""
import hashlib
from dataclasses import replace

import pytest

from db.registry import ModelRegistry
from db.store import NotFound
from tests.test_store import product


@pytest.fixture
def bags_and_caps(store):
    store.add_products([product("Bags", "a", [1, 0], {"colour": "red"}), product("Bags", "b", [0, 1]),
                        product("Caps", "c", [1, 1])])
    return {p.external_id: p.id for p in store.list_products()}


def test_listing_and_showing(store, bags_and_caps):
    assert [p.external_id for p in store.list_products("Bags")] == ["a", "b"]
    assert [p.external_id for p in store.list_products(after_id=bags_and_caps["a"], limit=1)] == ["b"]
    detail = store.product_detail(bags_and_caps["a"])
    assert detail.info.metadata == {"colour": "red"} and detail.versions == ["v1"]
    assert detail.content_type == "image/jpeg" and len(detail.image_sha256) == 64
    category = store.category_detail("Bags")
    assert (category.products, category.vectors) == (2, {"v1": 2})
    with pytest.raises(NotFound, match="no product with id 999999: 'lookalike products list'"):
        store.product_detail(999999)
    with pytest.raises(NotFound, match="no category named 'Shoes'"):
        store.list_products("Shoes")


def test_deleting_products_takes_their_vectors_and_moves_the_revision(store, bags_and_caps):
    before = store.category_revisions()
    assert store.delete_products([bags_and_caps["a"]]) == {"Bags": 1}
    after = store.category_revisions()
    assert after["Bags"] > before["Bags"] and after["Caps"] == before["Caps"]
    assert store.vector_counts() == {"v1": 2}
    assert store.category_vectors("Bags", "v1").ids.tolist() == [bags_and_caps["b"]]


def test_an_unknown_id_deletes_nothing(store, bags_and_caps):
    with pytest.raises(NotFound, match=r"no product with id 999999: nothing was deleted"):
        store.delete_products([bags_and_caps["a"], 999999])
    assert store.category_counts() == {"Bags": 2, "Caps": 1}
    assert store.ids_of(["c", "a"]) == [bags_and_caps["c"], bags_and_caps["a"]]
    with pytest.raises(NotFound, match="no product with external id nope"):
        store.ids_of(["a", "nope"])


def test_an_external_id_in_two_categories_is_deleted_only_from_the_one_named(store, bags_and_caps):
    image = b"another picture named a"
    other = replace(product("Caps", "a", [0, 1]), image=image, image_sha256=hashlib.sha256(image).hexdigest())
    store.add_products([other])
    [caps_a] = store.ids_of(["a"], "Caps")
    with pytest.raises(NotFound, match=rf"external id a \(Bags {bags_and_caps['a']}, Caps {caps_a}\) names several "
                                       r"products \(category, id\): nothing was deleted; name the category"):
        store.ids_of(["a"])
    assert store.ids_of(["a"], "Bags") == [bags_and_caps["a"]]
    # Two of one category (a file renamed onto the name of one whose file went, not yet synced): by product id.
    twin = replace(product("Caps", "a", [1, 0]), image=b"a third", image_sha256=hashlib.sha256(b"a third").hexdigest())
    store.add_products([twin])
    with pytest.raises(NotFound, match=r"external id a \(Caps \d+, Caps \d+\) names several products"):
        store.ids_of(["a"], "Caps")
    with pytest.raises(NotFound, match="no product with external id b in Caps"):
        store.ids_of(["b"], "Caps")


def test_deleting_a_category_keeps_its_row_so_its_revision_keeps_counting(store, bags_and_caps):
    revision = store.category_revisions()["Bags"]
    assert store.delete_category("Bags") == 2
    assert store.category_counts() == {"Caps": 1} and store.vector_counts() == {"v1": 1}
    assert store.category_revisions()["Bags"] > revision
    store.add_products([product("Bags", "d", [1, 0])])  # a re-ingest into the same name
    assert store.category_revisions()["Bags"] > revision + 1
    with pytest.raises(NotFound):
        store.delete_category("Shoes")


def test_renaming_moves_products_and_the_models_predictions(store, bags_and_caps):
    registry = ModelRegistry(store)
    registry.register("v1", "small_cnn", ["Bags", "Caps"])
    store.rename_category("Bags", "Handbags")
    revisions = store.category_revisions()
    assert revisions["Handbags"] > revisions["Caps"] and "Bags" not in revisions
    assert {p.category for p in store.list_products()} == {"Handbags", "Caps"}
    assert registry.categories("v1") == ["Handbags", "Caps"]
    with pytest.raises(ValueError, match="'Caps' already exists and has products"):
        store.rename_category("Handbags", "Caps")


def test_a_category_is_not_renamed_onto_another_the_model_predicts(store, bags_and_caps):
    registry = ModelRegistry(store)
    registry.register("v1", "small_cnn", ["Bags", "Caps"])
    store.delete_category("Caps")
    with pytest.raises(ValueError, match="model v1 predicts 'Bags' and 'Caps' apart"):
        store.rename_category("Bags", "Caps")
    assert registry.categories("v1") == ["Bags", "Caps"] and store.category_counts() == {"Bags": 2}


def test_a_name_never_comes_back_with_a_revision_a_process_may_have_cached(store, bags_and_caps):
    """A process caches a category's matrix by (name, revision): a name that disappears and comes back, by a
    rename or a new ingest, must come back with a revision above any it had."""
    seen = store.category_revisions()["Bags"]
    store.rename_category("Bags", "Handbags")
    store.add_products([product("Bags", "new", [0.5, 0.5])])
    assert store.category_revisions()["Bags"] > seen
    seen = store.category_revisions()
    store.delete_category("Caps")
    store.rename_category("Handbags", "Caps")  # onto the emptied category's name
    assert store.category_revisions()["Caps"] > max(seen.values())


def test_metadata_updates_by_external_id_count_only_real_changes(store, bags_and_caps):
    before = store.category_revisions()
    changed = store.update_metadata({("Bags", "a"): {"colour": "red"}, ("Bags", "b"): {"colour": "blue"},
                                       ("Caps", "zz"): {"colour": "green"}})
    assert changed == 1
    after = store.category_revisions()
    assert after["Bags"] > before["Bags"] and after["Caps"] == before["Caps"]
    assert store.product_detail(bags_and_caps["b"]).info.metadata == {"colour": "blue"}
    assert store.update_metadata({("Bags", "b"): {"colour": "blue"}}) == 0


def test_products_whose_files_are_gone(store, bags_and_caps):
    kept = {product("Bags", "a", [1, 0]).image_sha256}
    gone = store.products_missing_from(["Bags"], kept)
    assert [p.external_id for p in gone] == ["b"]  # Caps is not in the folder's categories

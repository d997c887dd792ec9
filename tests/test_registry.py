"""The model registry on SQLite and a real MySQL-compatible server, and a serving process following it."""
import threading
import time

import numpy as np
import pytest
from sqlalchemy import text

import db.store
from db.registry import ModelRegistry
from db.store import NotFound, RegistryChanged, count_without_vector
from model.card import ModelCard
from model.inference import Network
from search.live import LiveService
from search.service import SearchService
from tests.test_store import product


def network(version: str, categories=("Bags", "Caps")) -> Network:
    """A network as far as a search service's set-up needs one (no forward pass is run here)."""
    return Network(ModelCard(backbone="small_cnn", weights="none", input_size=32, preprocessing="scale",
                             categories=list(categories), version=version))


def test_a_version_is_activated_only_with_every_vector(store):
    registry = ModelRegistry(store)
    registry.register("v1", "small_cnn", ["Bags"])
    registry.register("v2", "mobilenet_v2", ["Bags"])
    with pytest.raises(ValueError, match="already registered"):
        registry.register("v1", "small_cnn", ["Bags"])
    store.add_products([product("Bags", "a", [1, 0]), product("Bags", "b", [0, 1], version="v2")])
    assert registry.active() is None
    with pytest.raises(RuntimeError, match="model v2 has no vector for 1 products: run 'lookalike reembed'"):
        registry.activate("v2")
    with pytest.raises(NotFound, match="no registered model 'v3': 'lookalike models list'"):
        registry.activate("v3")
    store.put_vectors({store.ids_of(["a"])[0]: product("Bags", "a", [1, 0]).vectors["v1"]}, "v2")
    registry.activate("v2")
    assert registry.active().version == "v2"
    assert [(m.version, m.active, m.vectors) for m in registry.models()] == [("v2", True, 2), ("v1", False, 1)]
    registry.activate("v2")  # again: still exactly one active
    assert [m.version for m in registry.models() if m.active] == ["v2"]


def test_only_inactive_versions_are_pruned_and_only_on_request(store):
    registry = ModelRegistry(store)
    registry.register("v1", "small_cnn", ["Bags"])
    registry.register("v2", "small_cnn", ["Bags"])
    store.add_products([product("Bags", "a", [1, 0])])
    store.put_vectors({store.ids_of(["a"])[0]: product("Bags", "a", [0, 1]).vectors["v1"]}, "v2")
    with pytest.raises(RuntimeError, match="no model is active yet"):
        registry.prune()
    registry.activate("v2")
    with pytest.raises(ValueError, match="v2 is the active one"):
        registry.prune(["v2"])
    with pytest.raises(NotFound):
        registry.prune(["v9"])
    assert store.vector_counts() == {"v1": 1, "v2": 1}
    assert registry.prune() == {"v1": 1}
    assert store.vector_counts() == {"v2": 1} and registry.versions() == ["v2"]


def v1_active_beside_v2(store, external_id: str) -> ModelRegistry:
    """Two registered versions, v1 active, and one Bags product with a vector of each."""
    registry = ModelRegistry(store)
    for version in ("v1", "v2"):
        registry.register(version, "small_cnn", ["Bags"])
    store.add_products([product("Bags", external_id, [1, 0])])
    store.put_vectors({store.ids_of([external_id])[0]: np.array([0, 1], np.float32)}, "v2")
    registry.activate("v1")
    return registry


def test_a_prune_waits_for_an_activation_in_flight_and_keeps_what_it_activated(store, monkeypatch):
    registry = v1_active_beside_v2(store, "a")
    checking, resume = threading.Event(), threading.Event()

    def held(version):  # the activation pauses inside its transaction, at its check of the vectors
        checking.set()
        resume.wait(30)
        return count_without_vector(version)

    monkeypatch.setattr("db.registry.count_without_vector", held)
    activating = threading.Thread(target=registry.activate, args=("v2",))
    activating.start()
    assert checking.wait(30)
    pruned = []
    pruning = threading.Thread(target=lambda: pruned.append(registry.prune()))
    pruning.start()
    _until_waiting(store, pruning)
    resume.set()
    activating.join(30)
    pruning.join(30)
    assert pruned == [{"v1": 1}]
    assert registry.active().version == "v2" and store.vector_counts() == {"v2": 1}


def test_a_prune_waits_for_an_ingest_batch_in_flight_and_deletes_its_vectors_too(store, monkeypatch):
    """The batch checked the registry inside its transaction; a prune committing in between must not leave it
    storing vectors of a version nothing lists."""
    registry = v1_active_beside_v2(store, "stored")
    item = product("Bags", "a", [1, 0])  # of a stored category: the batch creates none
    item.vectors["v2"] = np.array([0, 1], np.float32)
    checked, resume = threading.Event(), threading.Event()
    check = db.store._check_registry

    def held(*args):  # the batch pauses after its check, before it commits
        check(*args)
        checked.set()
        resume.wait(30)

    monkeypatch.setattr("db.store._check_registry", held)
    adding = threading.Thread(target=store.add_products, args=([item], {"v1", "v2"}))
    adding.start()
    assert checked.wait(30)
    pruned = []
    pruning = threading.Thread(target=lambda: pruned.append(registry.prune(["v2"])))
    pruning.start()
    _until_waiting(store, pruning)
    resume.set()
    adding.join(30)
    pruning.join(30)
    assert pruned == [{"v2": 2}]
    assert store.vector_counts() == {"v1": 2}


def test_an_ingest_batch_sees_a_prune_committed_after_its_transaction_began(store, monkeypatch):
    """On MySQL a transaction's plain reads see the snapshot of its first one: the registry's check must not."""
    registry = ModelRegistry(store)
    for version in ("v1", "v2"):
        registry.register(version, "small_cnn", ["Bags"])
    registry.activate("v1")
    top_revision = store._top_revision

    def then_pruned(session):
        revision = top_revision(session)  # a plain read in the batch's transaction (it creates its category)
        registry.prune(["v2"])  # committed by another connection
        return revision

    monkeypatch.setattr(store, "_top_revision", then_pruned)
    item = product("Bags", "a", [1, 0])
    item.vectors["v2"] = np.array([0, 1], np.float32)
    with pytest.raises(RegistryChanged, match="model v2 was pruned meanwhile, so this run stopped"):
        store.add_products([item], {"v1", "v2"})
    assert store.vector_counts() == {} and store.category_counts() == {}


def _until_waiting(store, thread: threading.Thread) -> None:
    """Return once ``thread``'s statement waits for another transaction's lock (on SQLite: after a second)."""
    if store.engine.dialect.name == "sqlite":
        time.sleep(1)
        return
    with store.engine.connect() as probe:
        while not probe.execute(text("SELECT COUNT(*) FROM information_schema.innodb_trx "
                                     "WHERE trx_state = 'LOCK WAIT'")).scalar_one():
            assert thread.is_alive(), "it ran without waiting"
            time.sleep(0.2)  # InnoDB refreshes that table only when it was not read in the last 0.1 s


def test_a_serving_process_moves_to_the_activated_version_once(store):
    registry = ModelRegistry(store)
    first, second = network("v1"), network("v2")
    loads = []

    def load(version):
        loads.append(version)
        return SearchService(second, store)

    live = LiveService(SearchService(first, store), registry, load)
    assert live.current().model is first  # nothing registered: the model it started with
    for version in ("v1", "v2"):
        registry.register(version, "small_cnn", ["Bags", "Caps"])
    registry.activate("v1")
    assert live.current().model is first and loads == []
    registry.activate("v2")
    assert live.current().model is second and live.current().model is second and loads == ["v2"]
    service, active = live.serving()  # what /healthz reports: the service and the version it was chosen by
    assert service.model is second and active is not None and active.version == "v2"


def test_a_renamed_category_is_predicted_under_its_new_name(store):
    registry = ModelRegistry(store)
    registry.register("v1", "small_cnn", ["Bags", "Caps"])
    store.add_products([product("Bags", "a", [1, 0])])
    registry.activate("v1")
    live = LiveService(SearchService(network("v1"), store), registry, pytest.fail)
    store.rename_category("Bags", "Handbags")
    assert live.current().model.categories == ["Handbags", "Caps"]


def test_a_model_registered_after_a_rename_predicts_the_category_under_its_name_now(store):
    """A model pruned and added back, or trained on folders still under the old name, keeps pointing at the
    products it learnt; a former name two categories had, or one in use again, is left as it is."""
    registry = ModelRegistry(store)
    store.add_products([product(category, category, [1, 0]) for category in ("Bags", "Caps", "Hats", "Belts")])
    store.rename_category("Bags", "Handbags")
    store.rename_category("Handbags", "Totes")
    assert registry.register("v1", "small_cnn", ["Bags", "Handbags", "Caps"]) == ["Bags", "Handbags", "Caps"]
    assert registry.register("v2", "small_cnn", ["Bags", "Caps"]) == ["Totes", "Caps"]
    assert registry.get("v2").categories == ["Totes", "Caps"]
    store.rename_category("Caps", "Headwear")
    store.rename_category("Hats", "Caps")  # "Caps" names a category again: that one
    assert registry.register("v3", "small_cnn", ["Caps", "Hats"]) == ["Caps", "Hats"]  # not "Caps" twice
    store.rename_category("Belts", "Straps")
    store.rename_category("Caps", "Belts")  # two categories were called "Caps"
    assert registry.register("v4", "small_cnn", ["Caps", "Straps"]) == ["Caps", "Straps"]
    assert registry.register("v5", "small_cnn", ["Hats", "Straps"]) == ["Belts", "Straps"]
    assert registry.register("v6", "small_cnn", ["Hats", "Belts"]) == ["Hats", "Belts"]  # not "Belts" twice
    assert registry.register("v7", "small_cnn", ["Handbags", "Totes", "Hats"]) == ["Handbags", "Totes", "Belts"]
    store.delete_category("Totes")  # emptied: its former names name nothing any more
    assert registry.register("v8", "small_cnn", ["Bags", "Straps"]) == ["Bags", "Straps"]


def test_a_version_that_cannot_be_loaded_leaves_the_old_one_serving_and_is_tried_again_later(store):
    registry = ModelRegistry(store)
    registry.register("v2", "small_cnn", ["Bags", "Caps"])
    registry.activate("v2")
    attempts, now = [], [0.0]
    second = network("v2")

    def load(version):
        attempts.append(version)
        if len(attempts) == 1:
            raise ConnectionError("the database went away for a moment")
        return SearchService(second, store)

    first = network("v1")
    live = LiveService(SearchService(first, store), registry, load, retry_seconds=30, clock=lambda: now[0])
    assert live.current().model is first and live.current().model is first
    now[0] = 29.0
    assert live.current().model is first
    assert attempts == ["v2"]  # tried once, not on every search
    now[0] = 31.0
    assert live.current().model is second and live.current().model is second and attempts == ["v2", "v2"]

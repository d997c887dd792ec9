"""Building a process's long-lived objects from the settings, in one place (the composition root).

The command line, the web app, the evaluation and the benchmarks all start here, so a store, a network
a search service and a loader are built the same way everywhere, and once per process. It sits above the packages it
wires together (``db``, ``model``, ``search``, ``ingest``), so none of them needs to know how the others are built.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from config import Settings
from db.migrate import require_current
from db.registry import ModelRegistry
from db.store import Store
from ingest.loader import Loader
from model.card import card_path
from model.inference import Network, load_network
from model.versions import ModelFiles
from search.ann import AnnPolicy
from search.live import LiveService
from search.policy import SearchPolicy
from search.service import SearchService


def open_store(settings: Settings) -> Store:
    """The catalogue store, refused if its schema is not the one this code was written for."""
    store = Store.from_url(settings.resolved_database_url)
    require_current(store.engine)
    return store


def open_network(settings: Settings, batch_work: bool = False, store: Store | None = None,
                 version: str | None = None) -> Network:
    """A trained network on the configured runtime (ONNX Runtime unless ``LOOKALIKE_RUNTIME=keras``).

    Args:
        batch_work: for ingest, re-embedding and evaluation, which run full batches: the runtime keeps
            its memory arena (faster batches, more memory held); serving runs without it.
        store: where the model registry is read (opened from the settings if None).
        version: a registered version; by default the active one, or, while no model is registered, the
            model at ``LOOKALIKE_MODEL_PATH``.
    """
    registry = ModelRegistry(store or open_store(settings))
    if version is None:
        active = registry.active()
        if active is None:
            if not (registered := registry.versions()) or card_path(settings.resolved_model_path).is_file():
                return _load(settings.resolved_model_path, settings, batch_work)
            raise FileNotFoundError(f"no model is active: 'lookalike reembed --version VERSION' gives every product "
                                    f"its vector, then 'lookalike models activate VERSION' serves it (registered: "
                                    f"{', '.join(registered)})")
        version = active.version
    categories = registry.categories(version)
    files = ModelFiles(settings.resolved_models_dir)
    if not files.has(version):
        raise FileNotFoundError(f"model {version} is registered but its files are not in {files.root}: "
                                f"register it again with 'lookalike models add PATH'")
    network = _load(files.path(version), settings, batch_work)
    # The registry's names: a renamed category stays the model's prediction under its new name.
    network.card = replace(network.card, categories=categories)
    return network


def _load(path, settings: Settings, batch_work: bool) -> Network:
    return load_network(path, settings.runtime, settings.threads, settings.batch_size, arena=batch_work)


def build_service(settings: Settings, network: Network | None = None, store: Store | None = None) -> SearchService:
    """The search service with the settings' defaults, warmed up so the first search is not slow."""
    store = store or open_store(settings)
    network = network or open_network(settings, store=store)
    service = SearchService(network, store, settings.top_k, settings.metric, settings.scope,
                            settings.max_image_pixels, policy=SearchPolicy.from_settings(settings),
                            localise_max_share=settings.localise_max_share,
                            localise_threshold=settings.localise_threshold,
                            ann=AnnPolicy(settings.ann_min_vectors, settings.ann_nprobe))
    service.warm_up()
    return service


def live_service(settings: Settings, service: SearchService | None = None) -> LiveService:
    """A serving process's search service, following the registry to whichever version is activated."""
    service = service or build_service(settings)
    store = service.store
    return LiveService(service, ModelRegistry(store),
                       lambda version: build_service(settings, open_network(settings, store=store, version=version),
                                                     store))


def adopt_served_model(settings: Settings, store: Store) -> None:
    """Register the model at ``LOOKALIKE_MODEL_PATH`` while the registry is empty (a new store, or one from before
    the registry), and say so: the admin commands that may do it are the first to run on a new store.

    That model is the one every process serves until a model is registered, so it becomes the active
    version when every product has its vector.
    """
    registry = ModelRegistry(store)
    if registry.versions() or not settings.resolved_model_path.is_file():
        return
    card = ModelFiles(settings.resolved_models_dir).add(settings.resolved_model_path)
    registry.register(card.version, card.backbone, card.categories)
    done = f"registered the trained model {card.version} ({settings.resolved_model_path})"
    if registry.missing_vectors(card.version):
        print(f"{done}; it is served from there until 'lookalike reembed' has given every product its vector and "
              f"'lookalike models activate {card.version}' activates it")
        return
    registry.activate(card.version)
    print(f"{done} and activated it")


def open_networks(settings: Settings, store: Store, batch_work: bool = False) -> list[Network]:
    """The served network first, then every other registered version's: what ingest and re-embedding fill in."""
    served = open_network(settings, batch_work, store)
    others = [version for version in ModelRegistry(store).versions() if version != served.version]
    return [served, *(open_network(settings, batch_work, store, version) for version in others)]


def build_loader(settings: Settings, store: Store, networks: Sequence[Network]) -> Loader:
    """The catalogue loader with the settings' batch size, decoding budget and file size limit.

    Args:
        networks: the served network first (``open_networks``); new products get a vector of each.
    """
    return Loader(networks[0], store, settings.batch_size, settings.max_image_pixels, settings.max_upload_bytes,
                  more_models=networks[1:])

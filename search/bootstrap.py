"""Building a process's long-lived objects from the settings, in one place.

The command line, the web app, the evaluation and the benchmarks all start here, so a store, a network
and a search service are built the same way everywhere, and once per process.
"""
from __future__ import annotations

from config import Settings
from db.migrate import require_current
from db.store import Store
from model.inference import Network, load_network
from search.ann import AnnPolicy
from search.service import SearchService


def open_store(settings: Settings) -> Store:
    """The catalogue store, refused if its schema is not the one this code was written for."""
    store = Store.from_url(settings.resolved_database_url)
    require_current(store.engine)
    return store


def open_network(settings: Settings, batch_work: bool = False) -> Network:
    """The trained network on the configured runtime (ONNX Runtime unless ``LOOKALIKE_RUNTIME=keras``).

    Args:
        batch_work: for ingest, re-embedding and evaluation, which run full batches: the runtime keeps
            its memory arena (faster batches, more memory held); serving runs without it.
    """
    return load_network(settings.resolved_model_path, settings.runtime, settings.threads, settings.batch_size,
                        arena=batch_work)


def build_service(settings: Settings, network: Network | None = None, store: Store | None = None) -> SearchService:
    """The search service with the settings' defaults; the network is warmed up so the first search is not slow."""
    network = network or open_network(settings)
    network.warm_up()
    return SearchService(network, store or open_store(settings), settings.top_k, settings.metric, settings.scope,
                         settings.max_image_pixels, tau=settings.narrow_tau,
                         max_categories=settings.narrow_max_categories, merge_weight=settings.merge_weight,
                         exact_distance=settings.exact_distance,
                         ann=AnnPolicy(settings.ann_min_vectors, settings.ann_nprobe))

"""Serving whichever model version is active, switching without a restart.

Before each search the serving process reads the registry's active version (one row); when an admin has
activated another, the first request to notice loads it and swaps the whole search service (network and
vector cache together) in one assignment, so a search never mixes two models. Requests arriving while it
loads are served by the previous model, whose vectors stay in the store until pruned on request.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace

from db.registry import ModelRegistry
from search.service import SearchService

log = logging.getLogger(__name__)


class LiveService:
    """The search service of the active model version.

    Args:
        service: the service to start with (the active version's, or the only model's before any is registered).
        registry: where the active version is read.
        load: builds the service of a version.
    """

    def __init__(self, service: SearchService, registry: ModelRegistry, load: Callable[[str], SearchService]):
        self._service = service
        self.registry = registry
        self._load = load
        self._loading = threading.Lock()
        self._failed: set[str] = set()

    def current(self) -> SearchService:
        """The service to run this request on: the active version's as soon as it is loaded."""
        active = self.registry.active()
        service = self._service
        if active is None:
            return service  # nothing registered yet: the model this process started with
        if service.model.version != active.version:
            service = self._switch(active.version)
        if service.model.version == active.version and service.model.categories != active.categories:
            # A category was renamed: the network's outputs keep their order, under the registry's names.
            service.model.card = replace(service.model.card, categories=active.categories)
        return service

    def _switch(self, version: str) -> SearchService:
        if version in self._failed or not self._loading.acquire(blocking=False):
            return self._service  # another request is loading it, or it cannot be loaded here
        try:
            if self._service.model.version != version:
                self._service = self._load(version)
                log.info("now serving model %s", version)
        except Exception:  # the previous model keeps serving rather than every search failing
            log.exception("cannot load model %s; still serving %s (restart to try again)", version,
                          self._service.model.version)
            self._failed.add(version)
        finally:
            self._loading.release()
        return self._service

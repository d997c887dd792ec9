"""Serving whichever model version is active, switching without a restart.

Before each search the serving process reads the registry's active version (one row); when an admin has
activated another, the first request to notice loads it and swaps the whole search service (network and
vector cache together) in one assignment, so a search never mixes two models. Requests arriving while it
loads are served by the previous model, whose vectors stay in the store until pruned on request.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from db.registry import ActiveModel, ModelRegistry
from search.service import SearchService

log = logging.getLogger(__name__)

RETRY_SECONDS = 30.0  # a version that failed to load (a database blip, files still being copied) is tried again


class LiveService:
    """The search service of the active model version.

    Args:
        service: the service to start with (the active version's, or the only model's before any is registered).
        registry: where the active version is read.
        load: builds the service of a version.
        retry_seconds: how long a version that failed to load is left alone before a request tries it again.
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(self, service: SearchService, registry: ModelRegistry, load: Callable[[str], SearchService],
                 retry_seconds: float = RETRY_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._service = service
        self.registry = registry
        self._load = load
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._loading = threading.Lock()
        self._failed: dict[str, float] = {}  # version → when loading it last failed

    def current(self) -> SearchService:
        """The service to run this request on: the active version's as soon as it is loaded."""
        return self.serving()[0]

    def serving(self) -> tuple[SearchService, ActiveModel | None]:
        """The service to run this request on, and the active version it was chosen by (one read of the registry)."""
        active = self.registry.active()
        service = self._service
        if active is None:
            return service, None  # nothing registered yet: the model this process started with
        if service.model.version != active.version:
            service = self._switch(active.version)
        if service.model.version == active.version and service.model.categories != active.categories:
            # A category was renamed: the network's outputs keep their order, under the registry's names.
            service.model.card = replace(service.model.card, categories=active.categories)
        return service, active

    def _switch(self, version: str) -> SearchService:
        failed = self._failed.get(version)
        if failed is not None and self._clock() - failed < self._retry_seconds:
            return self._service  # it failed a moment ago
        if not self._loading.acquire(blocking=False):
            return self._service  # another request is loading it
        try:
            if self._service.model.version != version:
                self._service = self._load(version)
                self._failed.pop(version, None)
                log.info("now serving model %s", version)
        except Exception:  # the previous model keeps serving rather than every search failing
            log.exception("cannot load model %s; still serving %s (trying again in %.0f s)", version,
                          self._service.model.version, self._retry_seconds)
            self._failed[version] = self._clock()
        finally:
            self._loading.release()
        return self._service

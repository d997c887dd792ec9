"""Recent searches kept in memory for the reviewer page, each for a limited time; never on disk."""
from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from search.service import SearchResult


@dataclass(frozen=True)
class Trace:
    id: str
    result: SearchResult
    thumbnail: bytes  # the upload, re-encoded small, for the reviewer page only
    best_vector: np.ndarray | None  # the best match's stored vector, as read from the database
    created: float = field(default_factory=time.time)


class TraceStore:
    """At most ``capacity`` traces, each kept ``ttl`` seconds.

    Traces live in the memory of the process that served the search: serve with one process and
    several threads (as the README's gunicorn line does) so the reviewer link always finds it.
    """

    def __init__(self, ttl: float = 900, capacity: int = 256):
        self.ttl = ttl
        self.capacity = capacity
        self._traces: OrderedDict[str, Trace] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, result: SearchResult, thumbnail: bytes, best_vector: np.ndarray | None) -> Trace:
        trace = Trace(secrets.token_urlsafe(12), result, thumbnail, best_vector)
        with self._lock:
            self._expire()
            self._traces[trace.id] = trace
            while len(self._traces) > self.capacity:
                self._traces.popitem(last=False)
        return trace

    def get(self, trace_id: str) -> Trace | None:
        with self._lock:
            self._expire()
            return self._traces.get(trace_id)

    def _expire(self) -> None:
        cutoff = time.time() - self.ttl
        while self._traces and next(iter(self._traces.values())).created < cutoff:
            self._traces.popitem(last=False)

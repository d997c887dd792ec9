"""Recent searches kept in memory for the reviewer page, each for a limited time; never on disk.

A trace keeps only what the pages show: the result without its pixels, a small re-encoded thumbnail (and the
activation map over it, and the crop that was embedded) and the numbers of each step. The store is bounded by
bytes, so searches with huge pictures cannot fill the memory.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from config import DEFAULTS
from search.service import SearchResult

# Allowances for what a trace holds besides its thumbnail and embedding: the probabilities, rule, timings and
# step excerpts (a few KiB of small objects), and each match (a Match and its product's description).
BASE_BYTES = 8 * 1024
MATCH_BYTES = 1024


@dataclass(frozen=True)
class Trace:
    id: str
    result: SearchResult  # without its pixels (``SearchResult.without_pixels``)
    thumbnail: bytes  # the upload, re-encoded small, for the pages only
    steps: dict  # the numbers of each step, as the reviewer page prints them (``webapp.review.explain``)
    pictures: dict[str, bytes] = field(default_factory=dict)  # ``webapp.pictures.figures``, JPEG
    created: float = field(default_factory=time.time)

    @property
    def size(self) -> int:
        """About how many bytes the trace holds."""
        return (BASE_BYTES + len(self.thumbnail) + sum(map(len, self.pictures.values())) + self.result.embedding.nbytes
                + MATCH_BYTES * len(self.result.matches))


def kept_for(seconds: int) -> str:
    """How long a trace is kept, in words: "45 seconds", "1 minute", "30 minutes".

    Example:
        >>> kept_for(45), kept_for(60), kept_for(1800), kept_for(90)
        ('45 seconds', '1 minute', '30 minutes', '90 seconds')
    """
    count, unit = (seconds // 60, "minute") if seconds % 60 == 0 else (seconds, "second")
    return f"{count} {unit}{'' if count == 1 else 's'}"


class TraceStore:
    """Traces of at most ``max_bytes`` in all, each kept ``ttl`` seconds; the oldest go first.

    Traces live in the memory of the process that served the search: serve with one process and
    several threads (as the README's gunicorn line does) so the reviewer link always finds it.
    """

    def __init__(self, ttl: float = DEFAULTS.trace_ttl_seconds, max_bytes: int = DEFAULTS.trace_max_bytes):
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.bytes = 0
        self._traces: OrderedDict[str, Trace] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, result: SearchResult, thumbnail: bytes, steps: dict,
            pictures: dict[str, bytes] | None = None) -> Trace:
        trace = Trace(secrets.token_urlsafe(12), result.without_pixels(), thumbnail, steps, pictures or {})
        with self._lock:
            self._expire()
            self._traces[trace.id] = trace
            self.bytes += trace.size
            while self.bytes > self.max_bytes:
                self._drop_oldest()
        return trace

    def get(self, trace_id: str) -> Trace | None:
        with self._lock:
            self._expire()
            return self._traces.get(trace_id)

    def __len__(self) -> int:
        return len(self._traces)

    def _expire(self) -> None:
        cutoff = time.time() - self.ttl
        while self._traces and next(iter(self._traces.values())).created < cutoff:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, trace = self._traces.popitem(last=False)
        self.bytes -= trace.size

"""Sustained load on loopback: the production set-up (nginx in front of gunicorn: one process, threads) under
steady traffic mixing normal and hostile uploads.

Four clients send searches (API and page), product images, category lists, health checks, and hostile uploads
(``tests.images.hostile_uploads``: tiny files declaring huge pictures, a JPEG with 2,000 scans, a corrupt AVIF,
not a picture) for ``LOOKALIKE_LOAD_SECONDS`` (120 in CI; ``LOOKALIKE_LOAD_SECONDS=600`` for the
10-minute run). The first ``WARM_UP_SECONDS`` fill the caches (TensorFlow's, the allocator's, the reviewer's
traces, given an 8 MiB budget); then every answer must be the expected one and the worker's resident memory,
read between the two phases and at the end, must grow less than 5 %.
Latency is reported, not judged.
"""
from __future__ import annotations

import os
import random
import statistics
import threading
import time
from dataclasses import dataclass, field

import pytest
import requests

from tests.images import hostile_uploads
from tests.served import catalogue_database, gunicorn, nginx

LOAD_SECONDS = float(os.environ.get("LOOKALIKE_LOAD_SECONDS") or 120)
WARM_UP_SECONDS = 30.0
CLIENTS = 4
MAX_MEMORY_GROWTH = 0.05


@dataclass
class Tally:
    """What the clients saw after the warm-up."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.latencies.setdefault(kind, []).append(seconds)
            if error:
                self.errors.append(f"{kind}: {error}")


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) > 1 else values[0]


@pytest.fixture
def server(tmp_path, trained_model, trained_model_path, fashion_slice):
    """nginx and gunicorn as in production, over an embedded database holding the fashion slice."""
    database = catalogue_database(tmp_path, trained_model, fashion_slice)
    # Reviewer traces a warm-up fills (hundreds of them), so that what grows afterwards is not a bounded cache
    # filling up: the default 64 MiB would take several minutes of this traffic to fill.
    traces = {"LOOKALIKE_TRACE_MAX_BYTES": str(8 * 1024 * 1024)}
    with gunicorn(tmp_path, database, trained_model_path, **traces) as (app_url, worker), \
            nginx(tmp_path, app_url) as base:
        yield base, worker


def client_loop(base: str, photos: list[bytes], product_ids: list[int], hostile: dict[str, tuple[bytes, int]],
                stop_at: float, tally: Tally | None, seed: int) -> None:
    """One client: a steady mix of what shoppers, programs and attackers send, each answer checked into ``tally``
    (none while warming up)."""
    rng = random.Random(seed)
    session = requests.Session()

    def upload(data: bytes):
        return lambda: session.post(base + "/api/search", files={"image": ("upload", data)}, timeout=60)

    kinds = {
        "api search": (50, lambda: session.post(base + "/api/search", files={"image": ("p.jpg", rng.choice(photos))},
                                                data={"k": "10"}, timeout=60), 200),
        "page search": (12, lambda: session.post(base + "/search", files={"image": ("p.jpg", rng.choice(photos))},
                                                 timeout=60), 200),
        "product image": (10, lambda: session.get(f"{base}/products/{rng.choice(product_ids)}/image", timeout=60),
                          200),
        "categories": (5, lambda: session.get(base + "/api/categories", timeout=60), 200),
        "health": (5, lambda: session.get(base + "/healthz", timeout=60), 200),
        **{name: (2, upload(data), status) for name, (data, status) in hostile.items()},
    }
    names = list(kinds)
    weights = [kinds[name][0] for name in names]
    while (now := time.monotonic()) < stop_at:
        kind = rng.choices(names, weights)[0]
        _, send, expected = kinds[kind]
        try:
            status = send().status_code
            error = None if status == expected else f"status {status}, expected {expected}"
        except requests.RequestException as e:
            error = f"{e.__class__.__name__}: {e}"
        if tally is not None:
            tally.add(kind, time.monotonic() - now, error)


@pytest.mark.slow
def test_sustained_load(server, fashion_slice, capsys):
    base, worker = server
    photos = [p.read_bytes() for p in sorted(fashion_slice.rglob("*.jpg"))]
    product_ids = list(range(1, len(photos) + 1))  # a fresh database numbers them from 1
    hostile = hostile_uploads()
    tally = Tally()

    def run(seconds: float, into: Tally | None, seed: int) -> None:
        stop_at = time.monotonic() + seconds
        clients = [threading.Thread(target=client_loop,
                                    args=(base, photos, product_ids, hostile, stop_at, into, seed + i))
                   for i in range(CLIENTS)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()

    # Memory is read with no request in flight: one hostile picture being decoded takes hundreds of MiB for a moment.
    run(WARM_UP_SECONDS, None, 0)
    memory_start = worker.memory_info().rss
    run(LOAD_SECONDS - WARM_UP_SECONDS, tally, CLIENTS)
    memory_end = worker.memory_info().rss

    requests_done = sum(len(v) for v in tally.latencies.values())
    searches = tally.latencies.get("api search", []) + tally.latencies.get("page search", [])
    attacks = sum(len(tally.latencies.get(name, [])) for name in hostile)
    growth = memory_end / memory_start - 1
    summary = (f"sustained load: {LOAD_SECONDS:.0f} s ({WARM_UP_SECONDS:.0f} s warm-up), {CLIENTS} clients, "
               f"{requests_done} requests measured ({requests_done / (LOAD_SECONDS - WARM_UP_SECONDS):.1f}/s, "
               f"{attacks} of them hostile uploads), "
               f"{len(tally.errors)} errors; p95 latency: searches {1000 * p95(searches):.0f} ms, "
               f"all {1000 * p95([s for v in tally.latencies.values() for s in v]):.0f} ms; worker memory "
               f"{memory_start / 2**20:.0f} MiB → {memory_end / 2**20:.0f} MiB ({100 * growth:+.1f} %)")
    with capsys.disabled():
        print("\n" + summary)
    assert tally.errors == [], tally.errors[:20]
    assert searches, "no search was measured"
    assert growth < MAX_MEMORY_GROWTH, summary

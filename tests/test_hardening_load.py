"""Sustained load on loopback: the production server (gunicorn, one process, threads) under steady mixed traffic.

Four clients send searches (API and page), product images, category lists, health checks and bad uploads for
``LOOKALIKE_LOAD_SECONDS`` (120 in CI; ``LOOKALIKE_LOAD_SECONDS=600`` for the 10-minute run). The first
``WARM_UP_SECONDS`` fill the caches (TensorFlow's, the reviewer's 256 traces); then every answer must be the
expected one and the worker's resident memory must grow less than 5 %. Latency is reported, not judged.
"""
from __future__ import annotations

import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import psutil
import pytest
import requests

from db.migrate import upgrade
from db.store import Store
from ingest.catalogue import list_catalogue, load_metadata
from ingest.loader import Loader
from tests.conftest import FASHION, ROOT

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
    """gunicorn serving the app as the README says, over an embedded database holding the fashion slice."""
    database = f"sqlite:///{tmp_path / 'lookalike.db'}"
    upgrade(database)
    files = list_catalogue(fashion_slice)
    store = Store.from_url(database)
    Loader(trained_model, store, progress=False).ingest(files, load_metadata(FASHION / "products.csv", files))
    store.engine.dispose()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOOKALIKE_DATABASE_URL": database,
           "LOOKALIKE_MODEL_PATH": str(trained_model_path), "LOOKALIKE_RATE_LIMIT": "1000000 per minute"}
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        master = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "1", "--threads", "8", "--bind", "127.0.0.1:0",
             "webapp:create_app()"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = _wait_until_serving(master, log)
        yield base, psutil.Process(master.pid).children()[0]
    finally:
        master.terminate()
        master.wait(timeout=30)


def _wait_until_serving(master: subprocess.Popen, log, timeout: float = 180.0) -> str:
    deadline = time.monotonic() + timeout
    base = None
    while time.monotonic() < deadline:
        assert master.poll() is None, log.read_text()[-3000:]
        found = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", log.read_text())
        if found:
            base = found.group(1)
            try:
                if requests.get(base + "/healthz", timeout=5).status_code == 200:
                    return base
            except (requests.ConnectionError, requests.Timeout):
                pass  # the worker is still loading the model
        time.sleep(0.5)
    pytest.fail(f"gunicorn did not serve within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def client_loop(base: str, photos: list[bytes], product_ids: list[int], stop_at: float, measure_from: float,
                tally: Tally, seed: int) -> None:
    """One client: a steady mix of what shoppers and programs send, each answer checked."""
    rng = random.Random(seed)
    session = requests.Session()
    kinds = {
        "api search": (60, lambda: session.post(base + "/api/search", files={"image": ("p.jpg", rng.choice(photos))},
                                                data={"k": "10"}, timeout=60), 200),
        "page search": (15, lambda: session.post(base + "/search", files={"image": ("p.jpg", rng.choice(photos))},
                                                 timeout=60), 200),
        "product image": (10, lambda: session.get(f"{base}/products/{rng.choice(product_ids)}/image", timeout=60),
                          200),
        "categories": (5, lambda: session.get(base + "/api/categories", timeout=60), 200),
        "health": (5, lambda: session.get(base + "/healthz", timeout=60), 200),
        "bad upload": (5, lambda: session.post(base + "/api/search", files={"image": ("p.jpg", b"not a picture")},
                                               timeout=60), 415),
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
        if now >= measure_from:
            tally.add(kind, time.monotonic() - now, error)


@pytest.mark.slow
def test_sustained_load(server, fashion_slice, capsys):
    base, worker = server
    photos = [p.read_bytes() for p in sorted(fashion_slice.rglob("*.jpg"))]
    product_ids = list(range(1, len(photos) + 1))  # a fresh database numbers them from 1
    started = time.monotonic()
    stop_at, measure_from = started + LOAD_SECONDS, started + WARM_UP_SECONDS
    tally = Tally()
    clients = [threading.Thread(target=client_loop, args=(base, photos, product_ids, stop_at, measure_from, tally, i))
               for i in range(CLIENTS)]
    for thread in clients:
        thread.start()
    time.sleep(WARM_UP_SECONDS)
    memory_start = worker.memory_info().rss
    for thread in clients:
        thread.join()
    memory_end = worker.memory_info().rss

    requests_done = sum(len(v) for v in tally.latencies.values())
    searches = tally.latencies.get("api search", []) + tally.latencies.get("page search", [])
    growth = memory_end / memory_start - 1
    summary = (f"sustained load: {LOAD_SECONDS:.0f} s ({WARM_UP_SECONDS:.0f} s warm-up), {CLIENTS} clients, "
               f"{requests_done} requests measured ({requests_done / (LOAD_SECONDS - WARM_UP_SECONDS):.1f}/s), "
               f"{len(tally.errors)} errors; p95 latency: searches {1000 * p95(searches):.0f} ms, "
               f"all {1000 * p95([s for v in tally.latencies.values() for s in v]):.0f} ms; worker memory "
               f"{memory_start / 2**20:.0f} MiB → {memory_end / 2**20:.0f} MiB ({100 * growth:+.1f} %)")
    with capsys.disabled():
        print("\n" + summary)
    assert tally.errors == [], tally.errors[:20]
    assert searches, "no search was measured"
    assert growth < MAX_MEMORY_GROWTH, summary

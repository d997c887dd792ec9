"""Search over HTTP against the per-query baseline (Keras predict, then SELECT BLOBs), sustained load, serving
memory."""
from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import requests
from sqlalchemy import select

from config import DEFAULTS
from db.schema import Category, Feature, Product
from db.store import Store
from images.decoding import decode_image
from model.network import KerasNetwork

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Served:
    url: str
    workers: list[psutil.Process]


@contextlib.contextmanager
def serving(database_url: str, model_path: Path, data_dir: Path, workers: int = 1, threads: int = 8,
            env: dict[str, str] | None = None) -> Iterator[Served]:
    """Serve the app with gunicorn as the README does (``workers`` × ``threads``), on a free loopback port,
    until the block ends."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOOKALIKE_DATABASE_URL": database_url,
           "LOOKALIKE_MODEL_PATH": str(model_path), "LOOKALIKE_DATA_DIR": str(data_dir),
           "LOOKALIKE_RATE_LIMIT": "1000000 per minute", **(env or {})}
    with open(data_dir / "gunicorn.log", "wb") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--threads", str(threads), "--bind",
             f"127.0.0.1:{port}", "webapp:create_app()"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, data_dir / "gunicorn.log")
        yield Served(url, psutil.Process(process.pid).children())
    finally:
        process.terminate()
        process.wait(timeout=60)


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited at start:\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/healthz", timeout=2).ok:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the app did not answer /healthz within {timeout:.0f} s")


def search(session: requests.Session, url: str, image: bytes, k: int = 30) -> dict:
    response = session.post(f"{url}/api/search", files={"image": ("query.jpg", image, "image/jpeg")},
                            data={"k": str(k)}, timeout=60)
    response.raise_for_status()
    return response.json()


def warm_up(served: Served, images: list[bytes]) -> None:
    """Search once with each image, so every category's matrix is loaded before anything is timed."""
    with requests.Session() as session:
        for image in images:
            search(session, served.url, image)


def cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes)


@dataclass(frozen=True)
class Latency:
    seconds: list[float]  # each search, upload to parsed JSON
    retrieval_seconds: list[float]  # the server's own narrow, rank and safety-net steps
    best: list[int]  # the best match's product id of each search
    steps_ms: dict[str, float]  # the server's own timing of each search step, median
    cpu_per_query: float  # server + database + this client, CPU seconds per search


def sequential(served: Served, images: list[bytes], database: psutil.Process | None) -> Latency:
    """One search after another over HTTP, each upload → JSON with the top 30."""
    processes = [*served.workers, psutil.Process()] + ([database] if database else [])
    seconds, retrieval, best, steps = [], [], [], []
    with requests.Session() as session:
        cpu_before = cpu_seconds(processes)
        for image in images:
            started = time.perf_counter()
            answer = search(session, served.url, image)
            seconds.append(time.perf_counter() - started)
            retrieval.append(sum(answer["timings_ms"][step] for step in ("narrow", "rank", "safety_net")) / 1000)
            best.append(answer["results"][0]["product_id"])
            steps.append(answer["timings_ms"])
        cpu = cpu_seconds(processes) - cpu_before
    medians = {step: statistics.median(timing[step] for timing in steps) for step in steps[0]}
    return Latency(seconds, retrieval, best, medians, cpu / len(images))


@dataclass(frozen=True)
class Load:
    ok: int
    errors: int
    seconds: float

    @property
    def qps(self) -> float:
        return self.ok / self.seconds


def sustained(served: Served, images: list[bytes], clients: int, seconds: float) -> Load:
    """``clients`` threads searching back to back for ``seconds``; every non-200 answer or failure is an error."""
    deadline = time.monotonic() + seconds
    lock = threading.Lock()
    counts = {"ok": 0, "errors": 0}

    def client(offset: int) -> None:
        with requests.Session() as session:
            i = offset
            while time.monotonic() < deadline:
                try:
                    search(session, served.url, images[i % len(images)])
                    outcome = "ok"
                except requests.RequestException:
                    outcome = "errors"
                with lock:
                    counts[outcome] += 1
                i += clients

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return Load(counts["ok"], counts["errors"], time.monotonic() - started)


def per_query_baseline(model: KerasNetwork, store: Store, image: bytes, k: int = 30) -> tuple[float, float, int]:
    """The per-query baseline search, kept only to compare with: Keras ``predict``, then per query SELECT the category's
    vectors with their image BLOBs, decode them, ``np.linalg.norm``, sort.

    Returns:
        (seconds in all, seconds of the retrieval after the forward pass, the best match's product id).
    """
    started = time.perf_counter()
    decoded = decode_image(image, max_pixels=DEFAULTS.max_image_pixels)
    probabilities, embedding = model.network.predict(
        model.preprocess(model.arrays([decoded.rgb])), verbose=0)
    category = model.categories[int(np.argmax(probabilities[0]))]
    retrieval_started = time.perf_counter()
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(Feature.product_id, Feature.vector, Product.image, Product.external_id, Product.metadata_)
            .join(Product, Product.id == Feature.product_id).join(Category, Category.id == Product.category_id)
            .where(Category.name == category, Feature.model_version == model.version)).all()
    vectors = np.stack([np.frombuffer(row.vector, dtype="<f4") for row in rows])
    distances = np.linalg.norm(vectors - embedding[0], axis=1)
    ranked = [rows[i].product_id for i in np.argsort(distances)[:k]]
    finished = time.perf_counter()
    return finished - started, finished - retrieval_started, ranked[0]

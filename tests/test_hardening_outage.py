"""A database outage while the app serves: a real MariaDB under a real HTTP server on loopback, stopped, then frozen.

While the database is away every request that needs it answers 503 with a message within a bounded time (no
hang), and the health check says so; when it is back the app recovers by itself, without a restart. The
recovery times are printed (docs/reliability.md quotes them).
"""
from __future__ import annotations

import io
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text
from werkzeug.serving import make_server

import db.store
from catalogue.folder import list_catalogue
from config import Settings
from db.migrate import upgrade
from db.store import Store
from ingest.loader import Loader
from search.service import SearchService
from tests.conftest import required
from throwaway.mysql import MYSQL_URL_OPTIONS, local_server
from webapp import create_app

# The production timeouts (db/store.py: 5 s to connect, 30 s per read) shortened to keep the frozen case short.
TEST_TIMEOUTS = {"connection_timeout": 2, "read_timeout": 3, "write_timeout": 3}
ANSWER_BOUND = 20.0  # seconds: an answer later than this is a hang
RECOVERY_BOUND = 30.0  # seconds: not recovered by then means it does not recover by itself


@pytest.fixture
def database():
    """A local server of our own, which the test may stop, start, freeze and thaw."""
    with required(local_server(), "the outage test") as server:
        yield server


@pytest.fixture
def live_url(database, trained_model, fashion_slice, monkeypatch):
    """The app on a real HTTP server, over the database holding the fashion slice."""
    admin = create_engine(f"{database.url}/?{MYSQL_URL_OPTIONS}")
    with admin.begin() as conn:
        conn.execute(text("CREATE DATABASE lookalike CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    admin.dispose()
    url = f"{database.url}/lookalike?{MYSQL_URL_OPTIONS}"
    upgrade(url)
    monkeypatch.setattr(db.store, "MYSQL_CONNECTOR_TIMEOUTS", TEST_TIMEOUTS)
    store = Store.from_url(url)
    Loader(trained_model, store, progress=False).ingest(list_catalogue(fashion_slice))
    app = create_app(Settings(rate_limit="10000 per minute"), SearchService(trained_model, store))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    store.engine.dispose()


def requests_needing_the_database(base: str, photo: bytes) -> dict:
    """Name → a function sending one request that reads the database."""
    def search(path):
        return lambda: requests.post(base + path, files={"image": ("photo.jpg", io.BytesIO(photo))},
                                     timeout=ANSWER_BOUND * 2)
    return {
        "health": lambda: requests.get(base + "/healthz", timeout=ANSWER_BOUND * 2),
        "categories": lambda: requests.get(base + "/api/categories", timeout=ANSWER_BOUND * 2),
        "product": lambda: requests.get(base + "/api/products/1", timeout=ANSWER_BOUND * 2),
        "api search": search("/api/search"),
        "page search": search("/search"),
    }


def expect_unavailable(calls: dict) -> float:
    """Every call answers 503 with a message, in bounded time; returns the slowest answer's seconds."""
    slowest = 0.0
    for name, call in calls.items():
        started = time.monotonic()
        response = call()
        took = time.monotonic() - started
        assert response.status_code == 503, (name, response.status_code, response.text[:300])
        assert "unavailable" in response.text and "Traceback" not in response.text, name
        assert took < ANSWER_BOUND, f"{name} took {took:.1f} s"
        slowest = max(slowest, took)
    return slowest


def expect_serving(calls: dict) -> None:
    for name, call in calls.items():
        response = call()
        assert response.status_code == 200, (name, response.status_code, response.text[:300])


def seconds_to_recover(base: str) -> float:
    """Poll the health check until it is 200 again; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < RECOVERY_BOUND:
        if requests.get(base + "/healthz", timeout=ANSWER_BOUND * 2).status_code == 200:
            return time.monotonic() - started
        time.sleep(0.1)
    pytest.fail(f"the app did not recover within {RECOVERY_BOUND:.0f} s of the database coming back")


def freeze(pid: int) -> None:
    """Stop the process and wait until every thread of it is stopped: SIGSTOP reaches the threads asynchronously,
    and on a busy machine a thread still running could answer the next query."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while not all((task / "stat").read_text().rsplit(")", 1)[1].split()[0] in "tT"
                  for task in Path(f"/proc/{pid}/task").iterdir()):
        assert time.monotonic() < deadline, "the database server did not stop within 10 s of SIGSTOP"
        time.sleep(0.01)


@pytest.mark.mysql
def test_database_outage_answers_503_then_recovers_by_itself(database, live_url, fashion_slice, capsys):
    photo = sorted((fashion_slice / "Watches").glob("*.jpg"))[1].read_bytes()
    calls = requests_needing_the_database(live_url, photo)
    expect_serving(calls)
    before = requests.post(live_url + "/api/search", files={"image": ("p.jpg", photo)}, timeout=60).json()
    health = requests.get(live_url + "/healthz", timeout=60)
    assert health.json()["database"] == "ok"

    # 1. The server is stopped (shut down, port closed).
    database.stop()
    stopped_slowest = expect_unavailable(calls)
    assert requests.get(live_url + "/healthz", timeout=60).json() == {
        "error": "the catalogue database is unavailable right now; please try again shortly", "status": 503}
    assert requests.get(live_url + "/", timeout=60).status_code == 200  # pages without data still serve
    restart_started = time.monotonic()
    database.start()
    listening_after = time.monotonic() - restart_started
    stopped_recovery = seconds_to_recover(live_url)
    expect_serving(calls)

    # 2. The server is frozen: connections open but nothing answers, the case timeouts are for.
    freeze(database.process.pid)
    try:
        frozen_slowest = expect_unavailable(calls)
    finally:
        os.kill(database.process.pid, signal.SIGCONT)
    frozen_recovery = seconds_to_recover(live_url)
    expect_serving(calls)
    after = requests.post(live_url + "/api/search", files={"image": ("p.jpg", photo)}, timeout=60).json()
    assert [r["product_id"] for r in after["results"]] == [r["product_id"] for r in before["results"]]

    with capsys.disabled():
        print(f"\ndatabase outage: stopped → 503 in at most {stopped_slowest:.2f} s; server listening again "
              f"{listening_after:.1f} s after start, app healthy {stopped_recovery:.2f} s later; "
              f"frozen → 503 in at most {frozen_slowest:.2f} s (timeouts {TEST_TIMEOUTS}); "
              f"healthy {frozen_recovery:.2f} s after thawing")

"""The production serving set-up on loopback, for the tests that need real servers: gunicorn as the README runs
it (one process, eight threads), and nginx in front of it with the configuration docker-compose uses
(``deploy/nginx.conf.template``)."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from catalogue.folder import list_catalogue, load_metadata
from db.migrate import upgrade
from db.store import Store
from ingest.loader import Loader
from tests.conftest import FASHION, ROOT

GUNICORN = ["--workers", "1", "--threads", "8", "--timeout", "60", "webapp:create_app()"]  # as the Dockerfile


def catalogue_database(tmp_path: Path, model, fashion_slice: Path) -> str:
    """An embedded database holding the fashion slice, embedded by ``model``."""
    database = f"sqlite:///{tmp_path / 'lookalike.db'}"
    upgrade(database)
    files = list_catalogue(fashion_slice)
    store = Store.from_url(database)
    Loader(model, store, progress=False).ingest(files, load_metadata(FASHION / "products.csv", files))
    store.engine.dispose()
    return database


@contextlib.contextmanager
def gunicorn(tmp_path: Path, database: str, model_path: Path, **settings: str) -> Iterator[tuple[str, psutil.Process]]:
    """gunicorn serving the app on a free loopback port: yields its URL and its worker process.

    ``settings`` are extra ``LOOKALIKE_*`` variables; the rate limit is lifted (the tests send far faster than a
    shopper)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOOKALIKE_DATABASE_URL": database,
           "LOOKALIKE_MODEL_PATH": str(model_path), "LOOKALIKE_RATE_LIMIT": "1000000 per minute", **settings}
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        master = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", *GUNICORN], cwd=ROOT,
                                  env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = _wait_until_healthy(master, log)
        yield base, psutil.Process(master.pid).children()[0]
    finally:
        master.terminate()
        master.wait(timeout=30)


def _wait_until_healthy(master: subprocess.Popen, log: Path, timeout: float = 180.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert master.poll() is None, log.read_text()[-3000:]
        found = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", log.read_text())
        if found:
            try:
                if requests.get(found.group(1) + "/healthz", timeout=5).status_code == 200:
                    return found.group(1)
            except (requests.ConnectionError, requests.Timeout):
                pass  # the worker is still loading the model
        time.sleep(0.5)
    pytest.fail(f"gunicorn did not serve within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def nginx_binary() -> str:
    """Debian's nginx (scripts/install-test-deps.sh installs it); without it, skip — but fail in CI."""
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if found is None:
        message = "nginx is not installed (scripts/install-test-deps.sh installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@contextlib.contextmanager
def nginx(tmp_path: Path, upstream: str) -> Iterator[str]:
    """nginx with the production configuration in front of ``upstream`` (``http://host:port``): yields its URL."""
    folder = tmp_path / "nginx"
    folder.mkdir()
    port = _free_port()
    site = (ROOT / "deploy" / "nginx.conf.template").read_text()
    site = site.replace("${LOOKALIKE_UPSTREAM}", upstream.removeprefix("http://"))
    site = site.replace("${LOOKALIKE_LISTEN}", f"127.0.0.1:{port}")
    (folder / "lookalike.conf").write_text(site)
    # What the nginx image's own nginx.conf provides around the site, with every path in the test's folder.
    temp_paths = "".join(f"    {kind}_temp_path {folder / kind};\n"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (folder / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")  # workers would otherwise be 'nobody', shut out of tmp_path
        + f"worker_processes 1;\npid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} warn;\n"
        + "events { worker_connections 1024; }\n"
        + f"http {{\n    access_log off;\n{temp_paths}    include {folder / 'lookalike.conf'};\n}}\n")
    log = folder / "error.log"
    process = subprocess.Popen([nginx_binary(), "-p", str(folder), "-e", str(log), "-c", str(folder / "nginx.conf"),
                                "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text() if log.exists() else "nginx stopped"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert time.monotonic() < deadline, "nginx did not listen within 30 s"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

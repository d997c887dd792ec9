"""A real MySQL-compatible server for the tests, found or started in this order:

1. ``LOOKALIKE_TEST_MYSQL_URL`` (any server you already run);
2. a MySQL 8 testcontainer, where a Docker engine answers;
3. a throwaway ``mariadbd``/``mysqld`` in a temporary folder on a free loopback port.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

SERVER_NAMES = ("mariadbd", "mysqld")
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin")


class NoServer(RuntimeError):
    pass


@contextlib.contextmanager
def mysql_server() -> Iterator[str]:
    """Yield a ``mysql+mysqlconnector://`` URL of a server (without a database name)."""
    url = os.environ.get("LOOKALIKE_TEST_MYSQL_URL")
    if url:
        yield url
        return
    if _docker_answers():
        with _container() as url:
            yield url
        return
    with _local_server() as url:
        yield url


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # no client library, no socket, no engine: all mean "no Docker here"
        return False


@contextlib.contextmanager
def _container() -> Iterator[str]:
    from testcontainers.mysql import MySqlContainer

    with MySqlContainer("mysql:8.0", dialect="mysqlconnector", root_password="test") as container:
        host, port = container.get_container_host_ip(), container.get_exposed_port(3306)
        yield f"mysql+mysqlconnector://root:test@{host}:{port}"


def _find_server() -> str:
    for name in SERVER_NAMES:
        found = shutil.which(name) or next(
            (str(Path(d) / name) for d in SBIN_DIRS if (Path(d) / name).is_file()), None)
        if found:
            return found
    raise NoServer("no MySQL-compatible server: set LOOKALIKE_TEST_MYSQL_URL, run a Docker engine, "
                   "or install mariadb-server (make test-deps does)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _local_server() -> Iterator[str]:
    server = _find_server()
    with tempfile.TemporaryDirectory(prefix="lookalike-mysqld-") as tmp:
        datadir, port = Path(tmp) / "data", _free_port()
        user = ["--user=root"] if os.geteuid() == 0 else []  # mariadbd refuses root without it
        install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if install:
            subprocess.run([install, "--no-defaults", f"--datadir={datadir}", "--auth-root-authentication-method=normal",
                            "--skip-test-db", *user], check=True, capture_output=True)
        else:
            subprocess.run([server, "--no-defaults", "--initialize-insecure", f"--datadir={datadir}", *user],
                           check=True, capture_output=True)
        log = open(Path(tmp) / "server.log", "wb")
        process = subprocess.Popen(
            [server, "--no-defaults", f"--datadir={datadir}", f"--port={port}", "--bind-address=127.0.0.1",
             f"--socket={Path(tmp) / 'mysqld.sock'}", f"--pid-file={Path(tmp) / 'mysqld.pid'}",
             "--character-set-server=utf8mb4", "--innodb-buffer-pool-size=128M", "--skip-log-bin",
             "--innodb-flush-log-at-trx-commit=2", *user],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for(port, process, Path(tmp) / "server.log")
            yield f"mysql+mysqlconnector://root@127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


def _wait_for(port: int, process: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NoServer(f"the database server exited at start:\n{log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise NoServer(f"the database server did not listen on port {port} within {timeout:.0f} s")

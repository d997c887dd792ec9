"""A real MySQL-compatible server for the tests and the benchmarks, found or started in this order:

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
from collections.abc import Iterator
from pathlib import Path

SERVER_NAMES = ("mariadbd", "mysqld")
# MariaDB does not know MySQL 8's default utf8mb4 collation, which the connector would ask for: add these
# to the URL of every database on the server.
MYSQL_URL_OPTIONS = "charset=utf8mb4&collation=utf8mb4_unicode_ci"
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


class LocalServer:
    """A throwaway ``mariadbd``/``mysqld`` on a free loopback port, its data in ``folder``.

    It can be stopped and started again on the same data and port, as the outage test does; ``process``
    is the running server (to freeze it with SIGSTOP, for instance).
    """

    def __init__(self, folder: Path):
        self.binary = _find_server()
        self.folder = folder
        self.datadir = folder / "data"
        self.log = folder / "server.log"
        self.port = _free_port()
        self.url = f"mysql+mysqlconnector://root@127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self._user = ["--user=root"] if os.geteuid() == 0 else []  # mariadbd refuses root without it
        install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if install:
            subprocess.run([install, "--no-defaults", f"--datadir={self.datadir}",
                            "--auth-root-authentication-method=normal", "--skip-test-db", *self._user],
                           check=True, capture_output=True)
        else:
            subprocess.run([self.binary, "--no-defaults", "--initialize-insecure", f"--datadir={self.datadir}",
                            *self._user], check=True, capture_output=True)

    def start(self) -> None:
        """Start the server and wait until it listens."""
        with open(self.log, "ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [self.binary, "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
                 "--bind-address=127.0.0.1", f"--socket={self.folder / 'mysqld.sock'}",
                 f"--pid-file={self.folder / 'mysqld.pid'}", "--character-set-server=utf8mb4",
                 "--innodb-buffer-pool-size=128M", "--skip-log-bin", "--innodb-flush-log-at-trx-commit=2",
                 *self._user],
                stdout=log, stderr=subprocess.STDOUT)
        _wait_for(self.port, self.process, self.log)

    def stop(self) -> None:
        """Shut the server down cleanly (SIGTERM), or kill it if it takes more than 30 s."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@contextlib.contextmanager
def local_server() -> Iterator[LocalServer]:
    """A started ``LocalServer`` in a temporary folder, stopped and deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="lookalike-mysqld-") as tmp:
        server = LocalServer(Path(tmp))
        try:
            server.start()
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def _local_server() -> Iterator[str]:
    with local_server() as server:
        yield server.url


def _wait_for(port: int, process: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NoServer(f"the database server exited at start:\n{log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise NoServer(f"the database server did not listen on port {port} within {timeout:.0f} s")

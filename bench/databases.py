"""Throwaway MySQL databases for the benchmarks, on the server ``throwaway.mysql`` finds or starts."""
from __future__ import annotations

import psutil
from sqlalchemy import create_engine, make_url, text

from db.migrate import upgrade
from throwaway.mysql import MYSQL_URL_OPTIONS


def fresh_database(server_url: str, name: str) -> str:
    """Create database ``name`` (dropping an old one), migrate it, and return its URL."""
    admin = create_engine(f"{server_url}/?{MYSQL_URL_OPTIONS}")
    with admin.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    admin.dispose()
    url = f"{server_url}/{name}?{MYSQL_URL_OPTIONS}"
    upgrade(url)
    return url


def server_process(url: str) -> psutil.Process | None:
    """The local database server listening on the URL's port, to count its CPU time (None if not local)."""
    port = make_url(url).port
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] in ("mariadbd", "mysqld") and f"--port={port}" in (process.info["cmdline"] or []):
            return process
    return None

"""Shared fixtures: real stores (SQLite and MySQL), slices of the shared fashion data, a small trained model;
and the test tiers (unit, integration, slow), given to every test by what it uses."""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from config.settings import DEMO_WEIGHTS  # noqa: F401 (the tests' import of it)
from db.migrate import upgrade
from db.store import Store
from throwaway.mysql import MYSQL_URL_OPTIONS, NoServer, mysql_server

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LOOKALIKE_SHARED_DIR") or ROOT.parent / "shared")
FASHION = SHARED / "data" / "fashion"
SLICE_CATEGORIES = ("Backpacks", "Sunglasses", "Watches", "Heels")

pytest_plugins = ["tests.webapp_fixtures"]

# A test that uses one of these (directly or through other fixtures) reaches a database server, ../shared or a
# browser: it is an integration test. Tests marked `mysql` are too; `slow` ones are their own tier; the rest are unit.
INTEGRATION_FIXTURES = {"mysql_server_url", "mysql_url", "fashion_slice", "page"}
DATABASE_SERVERS = {"mariadbd", "mysqld"}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("slow"):
            continue
        uses_outside = item.get_closest_marker("mysql") or INTEGRATION_FIXTURES & set(item.fixturenames)
        item.add_marker("integration" if uses_outside else "unit")


_running_unit_test = False
_SHARED_PREFIX = os.path.join(os.path.abspath(SHARED), "")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    global _running_unit_test
    _running_unit_test = item.get_closest_marker("unit") is not None
    try:
        return (yield)
    finally:
        _running_unit_test = False


def refuse_in_unit_tier(what: str) -> None:
    """Fail a unit test loudly (never skip it) when it reaches for what only integration tests may use."""
    if _running_unit_test:
        pytest.fail(f"a unit test reached for {what}: use a fixture that makes it an integration test "
                    f"({', '.join(sorted(INTEGRATION_FIXTURES))}) or mark it `mysql`", pytrace=False)


def _guard_unit_tier(event: str, args: tuple) -> None:
    """Audit hook: under a unit test, reading ../shared or starting a database server fails the test."""
    if not _running_unit_test:
        return
    if event in ("open", "os.listdir", "os.scandir") and isinstance(args[0], (str, os.PathLike)):
        if os.path.abspath(args[0]).startswith(_SHARED_PREFIX):
            refuse_in_unit_tier(f"../shared ({args[0]})")
    elif event == "subprocess.Popen" and Path(os.fsdecode(args[0])).name in DATABASE_SERVERS:
        refuse_in_unit_tier(f"a database server ({args[0]})")


sys.addaudithook(_guard_unit_tier)


@contextlib.contextmanager
def required(server, what: str):
    """Enter a database server's context; without one, skip — but fail in CI, where ``what`` must run."""
    try:
        with server as entered:
            yield entered
    except NoServer as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{what} must run in CI: {e}")
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def mysql_server_url():
    with required(mysql_server(), "the store tests") as url:
        yield url


@pytest.fixture
def mysql_url(request):
    """A fresh, empty database on the real server, dropped afterwards."""
    refuse_in_unit_tier("the MySQL server")  # before the server (a session fixture, set up once) is asked for
    mysql_server_url = request.getfixturevalue("mysql_server_url")
    name = f"lookalike_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(f"{mysql_server_url}/?{MYSQL_URL_OPTIONS}")
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    yield f"{mysql_server_url}/{name}?{MYSQL_URL_OPTIONS}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'lookalike.db'}"


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def store_url(request):
    """The URL of an empty, migrated database: the embedded default and the real MySQL server."""
    url = request.getfixturevalue(f"{request.param}_url")
    upgrade(url)
    return url


@pytest.fixture
def store(store_url):
    store = Store.from_url(store_url)
    yield store
    store.engine.dispose()


def copy_slice(target: Path, categories=SLICE_CATEGORIES, per_category: int = 12, split: str = "catalogue") -> Path:
    """Copy the first images of some fashion categories into ``target`` (a catalogue folder)."""
    for category in categories:
        (target / category).mkdir(parents=True, exist_ok=True)
        for path in sorted((FASHION / split / category).glob("*.jpg"))[:per_category]:
            shutil.copy(path, target / category / path.name)
    return target


@pytest.fixture
def unreadable(monkeypatch):
    """Make files unreadable, as a failing disk would: ``unreadable(path)``; reading it raises an I/O error."""
    failing: set[Path] = set()
    read_bytes = Path.read_bytes

    def read(path: Path) -> bytes:
        if path in failing:
            raise OSError(5, "Input/output error")
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", read)
    return failing.add


@pytest.fixture(scope="session")
def fashion_slice(tmp_path_factory) -> Path:
    """4 categories × 12 real catalogue photos (read-only by convention: copy before changing)."""
    return copy_slice(tmp_path_factory.mktemp("slice") / "catalogue")


@pytest.fixture(scope="session")
def trained_keras(fashion_slice):
    """MobileNetV2 (real offline ImageNet weights) at 96 px with a head trained on the slice: small and quick.
    The network as training returns it, on Keras."""
    from catalogue.folder import list_catalogue
    from model.training import TrainConfig, train

    config = TrainConfig(backbone="mobilenet_v2", weights=str(DEMO_WEIGHTS), input_size=96, epochs=15,
                         validation_split=0.0, batch_size=16)
    return train(list_catalogue(fashion_slice), config, progress=False).model


@pytest.fixture(scope="session")
def trained_model_path(tmp_path_factory, trained_keras) -> Path:
    """The slice's model saved: ``model.keras``, ``model.onnx`` and the card."""
    path = tmp_path_factory.mktemp("model") / "model.keras"
    trained_keras.save(path)
    return path


@pytest.fixture(scope="session")
def trained_model(trained_model_path):
    """The slice's model as it is served: on ONNX Runtime."""
    from model.inference import load_network

    return load_network(trained_model_path, batch_size=16)


def model_copy(model_path: Path, folder: Path, version: str) -> Path:
    """The saved model's files under another version: a second model as far as the registry can tell."""
    import json

    from model.card import card_path, onnx_path

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "model.keras"
    shutil.copy(model_path, target)
    shutil.copy(onnx_path(model_path), onnx_path(target))
    card = json.loads(card_path(model_path).read_text())
    card_path(target).write_text(json.dumps({**card, "version": version}))
    return target

"""Imports point one way: pyproject's import-linter contracts (the layers, and serving without the training stack)."""
from importlinter.cli import lint_imports

from tests.conftest import ROOT


def test_import_contracts_are_kept(monkeypatch):
    monkeypatch.chdir(ROOT)  # the packages analysed are the ones found from the project's root
    assert lint_imports(str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0, \
        "an import breaks a contract of [tool.importlinter] in pyproject.toml: see the report above"

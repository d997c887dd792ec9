"""pyproject.toml declares the dependencies (with extras) and the package data; requirements*.txt pin the same."""
import tomllib
from fnmatch import fnmatch

from packaging.requirements import Requirement

from tests.conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def pinned(name: str) -> set[str]:
    """A requirements file's own lines (not the files it includes)."""
    lines = (ROOT / name).read_text().splitlines()
    return {str(Requirement(line)) for line in lines if line and not line.startswith(("#", "-r"))}


def declared(*extras: str) -> set[str]:
    """The base dependencies (without extras) or the extras' own (without the extras they name)."""
    project = PYPROJECT["project"]
    groups = [project["optional-dependencies"][extra] for extra in extras] if extras else [project["dependencies"]]
    return {str(Requirement(r)) for group in groups for r in group if Requirement(r).name != project["name"]}


def test_requirements_files_pin_what_pyproject_declares():
    assert pinned("requirements.txt") == declared() | declared("serving", "evaluation", "training")
    assert pinned("requirements-dev.txt") == declared("dev")


def test_every_data_file_of_the_packages_ships():
    setuptools = PYPROJECT["tool"]["setuptools"]
    for package in setuptools["packages"]:
        folder = ROOT / package.replace(".", "/")
        data = {p.name for p in folder.iterdir() if p.is_file() and p.suffix not in (".py", ".pyc")}
        globs = setuptools["package-data"].get(package, [])
        assert {name for name in data if not any(fnmatch(name, g) for g in globs)} == set(), package
        subfolders = {f"{package}.{p.name}" for p in folder.iterdir() if p.is_dir() and p.name != "__pycache__"}
        assert subfolders <= set(setuptools["packages"]), package

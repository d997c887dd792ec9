"""A report's folder. Each evaluation command lists what it wrote, and with which model, in ``report.json``, so a
run into the same folder first removes the files of the run before: no confusion matrix, sweep folder or table of
an earlier run stays beside the new figures. Files it did not write are left alone."""
from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

MANIFEST = "report.json"


@contextlib.contextmanager
def report_files(out: Path, command: str, model: str) -> Iterator[Path]:
    """Clear the earlier report in ``out``, let the caller write the new one, then list its files. Enter it once the
    figures are computed, so a run that fails before them leaves the earlier report whole."""
    out.mkdir(parents=True, exist_ok=True)
    _remove_earlier(out)
    present = _files(out)
    yield out
    written = sorted(str(path) for path in _files(out) - present)
    (out / MANIFEST).write_text(json.dumps({"command": command, "model": model,
                                            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
                                            "files": written}, indent=2) + "\n")


def _remove_earlier(out: Path) -> None:
    manifest = out / MANIFEST
    try:
        earlier = json.loads(manifest.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no report here yet, or a file of another kind: nothing is known to be ours
    root = out.resolve()
    for name in filter(lambda name: isinstance(name, str), earlier):
        path = (root / name).resolve()
        if path.is_relative_to(root) and path.is_file():
            path.unlink()
            if path.parent != root:
                with contextlib.suppress(OSError):  # a sweep's folder, removed once empty
                    path.parent.rmdir()
    manifest.unlink()


def _files(out: Path) -> set[Path]:
    return {path.relative_to(out) for path in out.rglob("*") if path.is_file() and path.name != MANIFEST}

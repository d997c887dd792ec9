"""A report's folder. Each evaluation command lists what it wrote, and with which model, in ``report.json``, so a
run into the same folder (of any evaluation command) first removes the files of the run before: no confusion
matrix, sweep folder or table of an earlier run stays beside the new figures. Files it did not write are left alone,
and so is whatever a symbolic link points to."""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

MANIFEST = "report.json"


@contextlib.contextmanager
def report_files(out: Path, command: str, model: str) -> Iterator[Path]:
    """Clear the earlier report in ``out``, let the caller write the new one, then list the files it wrote (new or
    rewritten), also when it fails half-way, so the next run removes those too. Enter it once the figures are
    computed: a run that fails before them leaves the earlier report whole."""
    out.mkdir(parents=True, exist_ok=True)
    _remove_earlier(out)
    before = _stamps(out)
    complete = False
    try:
        yield out
        complete = True
    finally:
        written = sorted(name for name, stamp in _stamps(out).items() if before.get(name) != stamp)
        (out / MANIFEST).write_text(json.dumps({
            "command": command, "model": model, "complete": complete,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"), "files": written}, indent=2) + "\n")


def _remove_earlier(out: Path) -> None:
    try:
        earlier = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return  # no report here yet
    if not (isinstance(earlier, dict) and isinstance(earlier.get("command"), str)
            and isinstance(earlier.get("files"), list)):
        return  # a file of another kind: nothing is known to be ours
    for name in earlier["files"]:
        if isinstance(name, str) and (path := _inside(out, name)) is not None and path.is_file():
            path.unlink()
            for folder in path.parents:  # a sweep's folder, once empty
                if folder == out:
                    break
                try:
                    folder.rmdir()
                except OSError:
                    break
    (out / MANIFEST).unlink()


def _inside(out: Path, name: str) -> Path | None:
    """``out / name`` if it names a place under ``out`` reached through no symbolic link (then it may go)."""
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts:
        return None
    path = out
    for part in relative.parts:
        path = path / part
        if path.is_symlink():
            return None
    return path


def _stamps(out: Path) -> dict[str, tuple[int, int]]:
    """Each regular file under ``out`` (links not followed) by its relative name: when it was written, and its size."""
    stamps = {}
    for folder, _, names in os.walk(out):
        for name in names:
            path = Path(folder, name)
            if not path.is_symlink() and path != out / MANIFEST:
                status = path.stat()
                stamps[str(path.relative_to(out))] = (status.st_mtime_ns, status.st_size)
    return stamps

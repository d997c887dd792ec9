"""A report's folder: a run into the same --out replaces the earlier run's files and nothing else."""
import json
import os

import pytest

from evaluation.output import MANIFEST, report_files


def test_a_second_run_leaves_none_of_the_first_runs_files(tmp_path):
    out = tmp_path / "report"
    with report_files(out, "evaluate", "model-a"):
        (out / "tau-0").mkdir(parents=True)
        (out / "tau-0" / "summary.json").write_text("{}")
        (out / "narrowing.md").write_text("sweep")
    (out / "notes.txt").write_text("the user's own")  # written between the runs: not the report's
    with report_files(out, "evaluate", "model-b"):
        (out / "summary.json").write_text("{}")
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["notes.txt", MANIFEST, "summary.json"]
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["command"] == "evaluate" and manifest["model"] == "model-b" and manifest["complete"]
    assert manifest["files"] == ["summary.json"]


def test_a_file_rewritten_by_the_run_is_its_own(tmp_path):
    """A folder written before report.json existed: the files the run writes again become its own."""
    out = tmp_path / "report"
    out.mkdir()
    (out / "summary.md").write_text("older")
    os.utime(out / "summary.md", ns=(0, 0))
    with report_files(out, "evaluate", "model-a"):
        (out / "summary.md").write_text("newer")
    assert json.loads((out / MANIFEST).read_text())["files"] == ["summary.md"]


def test_a_run_that_fails_half_way_lists_what_it_wrote(tmp_path):
    out = tmp_path / "report"
    with pytest.raises(RuntimeError), report_files(out, "evaluate", "model-a"):
        (out / "tau-0.9").mkdir(parents=True)
        (out / "tau-0.9" / "summary.md").write_text("half")
        raise RuntimeError("the disk filled up")
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] is False and manifest["files"] == ["tau-0.9/summary.md"]
    with report_files(out, "evaluate", "model-a"):
        (out / "summary.md").write_text("whole")
    assert not (out / "tau-0.9").exists()


def test_the_earlier_report_stays_until_the_new_figures_are_ready(tmp_path):
    out = tmp_path / "report"
    with report_files(out, "evaluate-unseen", "model-a"):
        (out / "unseen.md").write_text("table")
    # report_files is entered only once the figures are computed: a failure before it touches nothing
    assert (out / "unseen.md").read_text() == "table"


def test_a_manifest_never_removes_what_is_not_the_reports_own(tmp_path):
    outside = tmp_path / "keep.txt"
    outside.write_text("keep")
    out = tmp_path / "report"
    out.mkdir()
    pinned = out / "pinned.md"
    pinned.write_text("the user's")
    (out / "summary.md").symlink_to(pinned)  # a link the user put where a report file was
    (out / "via").symlink_to(tmp_path)  # a folder reached through a link
    (out / "s").write_text("a file named like a character of a string")
    (out / MANIFEST).write_text(json.dumps({"command": "evaluate", "files": [
        "../keep.txt", str(outside), "summary.md", "via/keep.txt", 3]}))
    with report_files(out, "evaluate-instances", "model-a"):
        (out / "instances.md").write_text("table")
    assert outside.read_text() == "keep" and pinned.read_text() == "the user's" and (out / "summary.md").is_symlink()
    assert json.loads((out / MANIFEST).read_text())["files"] == ["instances.md"]
    (out / MANIFEST).write_text(json.dumps({"command": "evaluate", "files": "s"}))  # a string is no list of files
    with report_files(out, "evaluate", "model-a"):
        pass
    assert (out / "s").exists()

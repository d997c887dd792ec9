"""A report's folder: a run into the same --out replaces the earlier run's files and nothing else."""
import json

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
    assert manifest["command"] == "evaluate" and manifest["model"] == "model-b"
    assert manifest["files"] == ["summary.json"]


def test_a_manifest_never_removes_files_outside_its_folder(tmp_path):
    outside = tmp_path / "keep.txt"
    outside.write_text("keep")
    out = tmp_path / "report"
    out.mkdir()
    (out / MANIFEST).write_text(json.dumps({"files": ["../keep.txt", "/etc/hostname", 3]}))
    with report_files(out, "evaluate-instances", "model-a"):
        (out / "instances.md").write_text("table")
    assert outside.read_text() == "keep"
    assert json.loads((out / MANIFEST).read_text())["files"] == ["instances.md"]


def test_a_run_that_fails_before_writing_keeps_the_earlier_report(tmp_path):
    out = tmp_path / "report"
    with report_files(out, "evaluate-unseen", "model-a"):
        (out / "unseen.md").write_text("table")
    (out / MANIFEST).write_text("not json")  # a foreign or damaged manifest: nothing is known to be ours
    with report_files(out, "evaluate-unseen", "model-b"):
        pass
    assert (out / "unseen.md").read_text() == "table"

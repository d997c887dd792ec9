"""``lookalike improve``: before, train, embed, after, report, decide — and resumed where it stopped."""
import json

import pytest

from cli.main import main
from db.registry import ModelRegistry
from db.store import Store
from ingest.loader import Loader
from tests.conftest import copy_slice


class Interrupted(Exception):
    pass


@pytest.fixture
def env(monkeypatch, tmp_path, trained_model_path, fashion_slice, capsys):
    monkeypatch.setenv("LOOKALIKE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("LOOKALIKE_MODEL_PATH", str(trained_model_path))
    monkeypatch.delenv("LOOKALIKE_DATABASE_URL", raising=False)
    assert main(["db", "upgrade"]) == 0 and main(["ingest", str(fashion_slice)]) == 0
    capsys.readouterr()
    return copy_slice(tmp_path / "queries", per_category=4, split="queries")


def test_improve_reports_and_activates_only_a_better_model_and_resumes(env, fashion_slice, tmp_path, monkeypatch,
                                                                       capsys, trained_model_path):
    old = json.loads(trained_model_path.with_suffix(".meta.json").read_text())["version"]
    out = tmp_path / "run"
    command = ["improve", str(fashion_slice), "--queries", str(env), "--out", str(out), "--metric", "map@5",
               "--train", "epochs=3"]
    embed = Loader.reembed

    def interrupted(self):
        raise Interrupted()

    monkeypatch.setattr(Loader, "reembed", interrupted)
    with pytest.raises(Interrupted):
        main(command)
    capsys.readouterr()
    state = json.loads((out / "improve.json").read_text())
    assert state["before"] and state["candidate"] and not state["embedded"]
    candidate = state["candidate"]
    monkeypatch.setattr(Loader, "reembed", embed)
    monkeypatch.setattr("model.training.train", lambda *a, **k: pytest.fail("the run was resumed: no training"))
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "1/5" not in printed and "2/5" not in printed and "3/5 embedding the catalogue" in printed

    state = json.loads((out / "improve.json").read_text())
    before, after = state["before"]["retrieval"]["@5"]["map"], state["after"]["retrieval"]["@5"]["map"]
    store = Store.from_url(f"sqlite:///{tmp_path / 'var' / 'lookalike.db'}")
    active = ModelRegistry(store).active().version
    assert state["decision"]["activated"] == (after > before) and active == (candidate if after > before else old)
    report = (out / "report.md").read_text()
    assert f"map@5 {before:.4f} → {after:.4f}" in report and "![before and after](comparison.png)" in report
    for picture in ("comparison.png", "before/confusion_matrix.png", "after/collage.png"):
        assert (out / picture).stat().st_size > 10_000
    assert main(command) == 0 and "finished already" in capsys.readouterr().out

    if active == old:  # not better: --force activates it all the same, in a new run
        forced = command[:-2] + ["--out", str(tmp_path / "forced"), "--force"]
        monkeypatch.undo()
        monkeypatch.setenv("LOOKALIKE_DATA_DIR", str(tmp_path / "var"))
        monkeypatch.setenv("LOOKALIKE_MODEL_PATH", str(trained_model_path))
        assert main(forced) == 0
        assert ModelRegistry(store).active().version != old
    store.engine.dispose()


def test_improve_refuses_an_unknown_metric_or_training_setting(env, fashion_slice, tmp_path, capsys):
    base = ["improve", str(fashion_slice), "--queries", str(env), "--out", str(tmp_path / "run")]
    assert main(base + ["--metric", "speed"]) == 2
    assert "unknown metric 'speed'; choose one of: top1_category_accuracy" in capsys.readouterr().err
    assert main(base + ["--train", "epochz=3"]) == 2
    assert "unknown training setting epochz" in capsys.readouterr().err
    assert main(base + ["--train", "epochs=0"]) == 2
    err = capsys.readouterr().err  # refused before the first step evaluates the active model
    assert "training setting epochs must be a whole number of 1 or more, not 0" in err and "1/5" not in err
    assert not (tmp_path / "run" / "before").exists()

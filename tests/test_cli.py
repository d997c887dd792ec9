"""The admin's command line, end to end on the embedded database."""
import os
import subprocess
import sys

import pytest

from cli.main import main


@pytest.fixture
def env(monkeypatch, tmp_path, trained_model_path):
    monkeypatch.setenv("LOOKALIKE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("LOOKALIKE_MODEL_PATH", str(trained_model_path))
    monkeypatch.delenv("LOOKALIKE_DATABASE_URL", raising=False)
    return tmp_path


def test_upgrade_ingest_search_reembed(env, fashion_slice, capsys):
    assert main(["db", "upgrade"]) == 0
    assert "database at revision 0006" in capsys.readouterr().out
    assert main(["ingest", str(fashion_slice)]) == 0
    out = capsys.readouterr().out
    assert "added 48, already present 0, moved 0, rejected 0" in out
    assert "registered the trained model" in out and "and activated it" in out  # what the first ingest did
    assert main(["categories"]) == 0
    assert capsys.readouterr().out.split() == ["12", "Backpacks", "12", "Heels", "12", "Sunglasses", "12", "Watches"]
    query = sorted((fashion_slice / "Watches").glob("*.jpg"))[0]
    assert main(["search", str(query), "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "predicted category: Watches" in out and f" {query.stem} " in out.splitlines()[2]
    assert main(["reembed"]) == 0
    assert capsys.readouterr().out.endswith(": embedded 0\n")  # the first ingest registered the model


def test_ingest_reports_and_skips_files_the_decoders_fail_on(env, tmp_path, capsys):
    """Files a short decoder fuzz found (each once stopped the whole load), in one batch with good photos."""
    from tests.conftest import copy_slice
    from tests.images import corrupt_avif, corrupt_blp, dds_with_unknown_flags, progressive_jpeg

    catalogue = copy_slice(tmp_path / "catalogue", categories=("Watches",), per_category=4)
    bad = {"broken.avif": corrupt_avif(), "flags.dds": dds_with_unknown_flags(), "broken.blp": corrupt_blp(),
           "scans.jpg": progressive_jpeg(2000, 2000, scans=500)}
    for name, data in bad.items():
        (catalogue / "Watches" / name).write_bytes(data)
    main(["db", "upgrade"])
    capsys.readouterr()
    assert main(["ingest", str(catalogue)]) == 1  # the good photos are stored; the status tells a script of the rest
    out = capsys.readouterr().out
    assert "added 4, already present 0, moved 0, rejected 4" in out
    assert all(f"{name}: " in out for name in bad)


def test_an_empty_store_says_so(env, fashion_slice, capsys):
    main(["db", "upgrade"])
    capsys.readouterr()
    assert main(["categories"]) == 0
    assert capsys.readouterr().out == "no products stored: 'lookalike ingest FOLDER' loads a catalogue\n"
    assert main(["search", str(sorted((fashion_slice / "Watches").glob("*.jpg"))[0])]) == 0
    out = capsys.readouterr().out
    assert "(no stored products in the searched categories: 'lookalike categories'" in out and "best match" not in out


def test_errors_are_one_clear_line(env, capsys):
    assert main(["search", "missing.jpg"]) == 2
    assert "run 'lookalike db upgrade'" in capsys.readouterr().err
    assert main(["db", "downgrade"]) == 2  # nothing to go down from
    assert main(["db", "upgrade", "nope"]) == 2
    err = capsys.readouterr().err
    assert "Can't locate revision identified by 'nope' (the revisions: 0001, 0002" in err and "Traceback" not in err
    main(["db", "upgrade"])
    assert main(["ingest", "no/such/folder"]) == 2
    assert "catalogue folder not found" in capsys.readouterr().err
    photo = env / "photo.jpg"
    photo.write_bytes(b"")
    assert main(["ingest", str(photo)]) == 2
    assert "photo.jpg is not a folder" in capsys.readouterr().err
    assert main(["search", str(env)]) == 2  # a folder where a photo was expected
    assert "Is a directory" in capsys.readouterr().err
    for too_large in (str(2**64), "9" * 5000):
        assert main(["products", "delete", too_large]) == 2
        assert "is not a product id" in capsys.readouterr().err


@pytest.mark.parametrize("arguments", [
    ["products", "show", str(2**64)], ["products", "show", "x"], ["products", "list", "--after", str(2**63)],
    ["products", "list", "--limit", "0"], ["products", "list", "--limit", "-1"],
    ["products", "list", "--limit", "9" * 20], ["products", "show", "1" * 5000], ["serve", "--port", "99999"],
    ["serve", "--port", "0"], ["evaluate-localisation", "q", "--out", "o", "--per-category", "-1"],
    ["evaluate-similarity", "q", "--out", "o", "--thresholds", "35,abc"]])
def test_out_of_range_numbers_are_refused_by_the_parser(arguments, capsys):
    with pytest.raises(SystemExit) as stop:
        main(arguments)
    error = capsys.readouterr().err
    refusals = ("is not a product id", "is not a whole number from 1 to", "is not a port: a whole number from 1",
                "'-1' is not a whole number from 0 to", "'abc' is not a similarity from 0 to 100")
    assert stop.value.code == 2 and any(refusal in error for refusal in refusals)


def test_every_top_level_package_is_installed():
    import tomllib

    from tests.conftest import ROOT

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    declared = {name for name in packages if "." not in name} - {"migrations"}  # Alembic's folder, shipped as data
    # tests, benchmarks and throwaway database servers are for development, run from the repository
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench", "throwaway"}
    assert declared == on_disk


def test_training_on_several_folders_with_a_label_map(env, fashion_slice, tmp_path, monkeypatch):
    import json
    import shutil

    extra = tmp_path / "photos"
    for label, category in (("bag", "Backpacks"), ("clock", "Watches"), ("skip", "Heels")):
        (extra / label).mkdir(parents=True)
        for path in sorted((fashion_slice / category).glob("*.jpg"))[:2]:
            shutil.copy(path, extra / label / f"extra-{path.name}")
    label_map = tmp_path / "labels.json"
    label_map.write_text(json.dumps({"bag": "Backpacks", "clock": "Watches", "skip": None}))
    model = tmp_path / "m" / "model.keras"
    monkeypatch.setenv("LOOKALIKE_MODEL_PATH", str(model))
    assert main(["train", str(fashion_slice), str(extra), "--label-map", str(label_map), "--backbone", "small_cnn",
                 "--weights", "none", "--input-size", "32", "--epochs", "1"]) == 0
    card = json.loads(model.with_suffix(".meta.json").read_text())
    assert card["categories"] == ["Backpacks", "Heels", "Sunglasses", "Watches"]
    assert card["training"]["images"] == 48 + 4  # the slice, two bags and two clocks; "skip" is dropped


def test_output_piped_into_a_reader_that_stops_early_is_no_error(tmp_path):
    environment = {**os.environ, "LOOKALIKE_DATA_DIR": str(tmp_path / "var")}
    command = [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main(sys.argv[1:]))"]
    subprocess.run([*command, "db", "upgrade"], env=environment, check=True, capture_output=True)
    listing = subprocess.Popen([*command, "products", "list"], env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    listing.stdout.close()  # as `| head -0` would
    assert listing.wait(60) == 141 and listing.stderr.read() == b""  # no traceback; as a shell says of SIGPIPE


def test_the_demo_registers_its_model_as_the_first_ingest_does(env, trained_model, trained_model_path, tmp_path,
                                                               monkeypatch, capsys):
    """The demo's admin commands see its model: active, predicting the categories, with every product's vector."""
    import shutil

    from tests.conftest import ROOT, model_copy

    demo = tmp_path / "demo"
    for category in ("Heels", "Watches"):  # categories the slice's model predicts; two photos of each
        (demo / "catalogue" / category).mkdir(parents=True)
        for path in sorted((ROOT / "demo" / "catalogue" / category).glob("*.jpg"))[:2]:
            shutil.copy(path, demo / "catalogue" / category)
    shutil.copytree(demo / "catalogue" / "Watches", demo / "queries" / "Watches")
    shutil.copy(ROOT / "demo" / "products.csv", demo)
    monkeypatch.setattr("cli.main.DEMO_DIR", demo)
    assert main(["demo"]) == 0  # the slice's model fits the demo's backbone: no training
    assert "added 4" in capsys.readouterr().out
    assert main(["categories", "show", "Watches"]) == 0
    shown = capsys.readouterr().out
    assert f"vectors of {trained_model.version}: 2 (active)" in shown
    assert f"predicted by: {trained_model.version}" in shown
    # A demo model made later (of another backbone, say) is not served by a store that has one: the demo says so.
    monkeypatch.setenv("LOOKALIKE_MODEL_PATH", str(model_copy(trained_model_path, tmp_path / "other", "other-1")))
    assert main(["demo"]) == 0
    assert f"note: this store serves model {trained_model.version}, registered by an earlier run, not other-1" in (
        capsys.readouterr().out)

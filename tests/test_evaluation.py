"""The evaluation command on a small real slice: reports, pictures, τ sweep and instance search."""
import json
import shutil

import pytest

from catalogue.folder import CatalogueFile, list_catalogue
from cli.main import main
from config import DEFAULTS
from evaluation import report
from evaluation.instances import evaluate_instances
from evaluation.unseen import compare_on_unseen
from ingest.loader import Loader
from search.policy import SearchPolicy
from search.service import SearchService
from tests.conftest import SLICE_CATEGORIES, copy_slice


@pytest.fixture
def service(store, trained_model, fashion_slice):
    Loader(trained_model, store, progress=False).ingest(list_catalogue(fashion_slice))
    # The top category only, the safety net adding none: the identities below hold.
    return SearchService(trained_model, store, policy=SearchPolicy(tau=0.0, exact_distance=0.0))


def test_report_on_held_out_queries(service, tmp_path):
    queries = list_catalogue(copy_slice(tmp_path / "queries", per_category=5, split="queries"))
    evaluation = report.run(service, queries, k=30, progress=False)
    summary = report.summarise(evaluation, service.store.category_counts(), service.model.categories)
    assert summary["queries"] == 20
    # each query's latency is its own steps (the batch's forward pass shared) and its decoding
    assert all(latency > sum(result.timings_ms.values()) for latency, result in
               zip(evaluation.latency_ms, evaluation.results))
    assert len(set(evaluation.latency_ms)) > 1  # not one batch's time for every query
    assert summary["top1_category_accuracy"] == pytest.approx(summary["sklearn"]["accuracy"])
    assert summary["top3_category_accuracy"] == pytest.approx(summary["sklearn"]["top3_accuracy"])
    # narrowed to the predicted category, results are all relevant exactly when the prediction is right
    assert summary["retrieval"]["@1"]["precision"] == pytest.approx(summary["top1_category_accuracy"])
    assert summary["missed_category_rate"] == pytest.approx(1 - summary["top1_category_accuracy"])
    # 12 products per category: recall@30 is 1 for every correctly classified query
    assert summary["retrieval"]["@30"]["recall"] == pytest.approx(summary["top1_category_accuracy"])
    report.write_report(evaluation, summary, tmp_path / "out", service.model.categories, "slice", service.store)
    for name in ("summary.json", "summary.md", "confusion_matrix.png", "collage.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert "| 10 |" in (tmp_path / "out" / "summary.md").read_text()


def test_relevance_mapping_counts_any_listed_category(service, fashion_slice):
    queries = list_catalogue(fashion_slice)[:4]  # Backpacks images labelled "bags" by the mapping below
    relabelled = [type(q)(q.path, "bags", q.external_id) for q in queries]
    evaluation = report.run(service, relabelled, {"bags": ["Backpacks", "Heels"]}, k=5, progress=False)
    summary = report.summarise(evaluation, service.store.category_counts(), service.model.categories)
    assert summary["top1_category_accuracy"] == 1.0 and "sklearn" not in summary
    assert summary["retrieval"]["@5"]["precision"] == 1.0
    skipped = report.run(service, relabelled, {"bags": []}, progress=False)
    assert skipped.results == []


def test_instance_search_finds_altered_originals(service, fashion_slice):
    outcome = evaluate_instances(service, list_catalogue(fashion_slice), count=12, progress=False)
    assert outcome.queries == 12
    for whole in (False, True):
        assert 0.5 <= outcome.found(1, whole) <= outcome.found(5, whole) <= outcome.found(10, whole) <= 1.0
    held_out = set(service.model.card.training["instance_held_out"])
    assert held_out and len(held_out) < 48  # the card names the products kept out of the instance objective
    chosen = [f.key in held_out for f in list_catalogue(fashion_slice)]
    assert sum(outcome.held_out) <= sum(chosen)
    assert "| all products | 12 |" in outcome.markdown() and "safety net fired" in outcome.markdown()


def test_instance_search_skips_files_that_are_no_stored_product(service, fashion_slice, tmp_path):
    folder = copy_slice(tmp_path / "mixed", ("Watches",), per_category=3)
    (folder / "Watches" / "broken.jpg").write_bytes(b"not a picture")  # ingest would have rejected it
    outcome = evaluate_instances(service, list_catalogue(folder), progress=False)
    assert outcome.queries == 3 and "- skipped: 1 files drawn whose picture is no stored product" in outcome.markdown()
    never = copy_slice(tmp_path / "never", ("Watches",), per_category=2, split="queries")
    with pytest.raises(ValueError, match="none of the 2 files drawn is the picture of a stored product: ingest"):
        evaluate_instances(service, list_catalogue(never), progress=False)


def test_evaluate_command_with_a_tau_sweep(monkeypatch, tmp_path, trained_model_path, fashion_slice):
    monkeypatch.setenv("LOOKALIKE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("LOOKALIKE_MODEL_PATH", str(trained_model_path))
    monkeypatch.setenv("LOOKALIKE_NARROW_MAX_CATEGORIES", "3")
    queries = copy_slice(tmp_path / "queries", SLICE_CATEGORIES[:2], per_category=3, split="queries")
    assert main(["db", "upgrade"]) == 0 and main(["ingest", str(fashion_slice)]) == 0
    assert main(["evaluate", str(queries), "--out", str(tmp_path / "sweep"), "--tau", "0,0.999999"]) == 0
    table = (tmp_path / "sweep" / "narrowing.md").read_text()
    assert "| 0 |" in table and "| 0.999999 |" in table and (tmp_path / "sweep" / "narrowing.png").is_file()
    wide = json.loads((tmp_path / "sweep" / "tau-0.999999" / "summary.json").read_text())
    assert 1 <= wide["mean_categories_searched"] <= 3 and wide["settings"]["max_categories"] == 3
    assert main(["evaluate", str(queries), "--out", str(tmp_path / "sweep")]) == 0  # no sweep this time
    assert {p.name for p in (tmp_path / "sweep").iterdir()} >= {"summary.json", "report.json"}
    assert not list((tmp_path / "sweep").glob("tau-*")) and not (tmp_path / "sweep" / "narrowing.md").exists()
    manifest = json.loads((tmp_path / "sweep" / "report.json").read_text())
    assert manifest["model"] == wide["settings"]["model"] and "summary.md" in manifest["files"]
    for command, folder in (("evaluate-instances", fashion_slice), ("evaluate-similarity", queries)):
        assert main([command, str(folder), "--out", str(tmp_path / command), "--count", "4"]) == 0
        assert json.loads((tmp_path / command / "report.json").read_text())["model"] == manifest["model"]


def test_evaluate_command_with_relevance_and_labels_to_warn_about(monkeypatch, tmp_path, trained_model_path,
                                                                  fashion_slice, capsys):
    monkeypatch.setenv("LOOKALIKE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("LOOKALIKE_MODEL_PATH", str(trained_model_path))
    queries = copy_slice(tmp_path / "queries", ("Watches", "Heels"), per_category=2, split="queries")
    (queries / "Sandals").mkdir()  # a label with no such catalogue category
    shutil.copy(sorted((queries / "Heels").iterdir())[0], queries / "Sandals" / "a.jpg")
    assert main(["db", "upgrade"]) == 0 and main(["ingest", str(fashion_slice)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(queries), "--out", str(tmp_path / "plain")]) == 0
    assert "note: no catalogue category named 'Sandals': its 1 queries can only miss" in capsys.readouterr().out
    relevance = tmp_path / "relevance.json"
    relevance.write_text(json.dumps({"Watches": ["Watches"], "Heels": ["Heels", "Flats"]}))
    assert main(["evaluate", str(queries), "--out", str(tmp_path / "r"), "--relevance", str(relevance)]) == 2
    assert "names categories the catalogue does not hold: Flats" in capsys.readouterr().err
    relevance.write_text(json.dumps({"Watches": ["Watches"], "Heels": ["Heels"]}))
    assert main(["evaluate", str(queries), "--out", str(tmp_path / "r"), "--relevance", str(relevance)]) == 0
    assert "note: 'Sandals' is not in the relevance map: its 1 queries are skipped" in capsys.readouterr().out
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["queries"] == 4
    (tmp_path / "afile").write_text("")
    with pytest.raises(SystemExit) as stop:  # refused by the parser, before any search
        main(["evaluate", str(queries), "--out", str(tmp_path / "afile")])
    assert stop.value.code == 2
    assert "afile is a file: give a folder for the report" in capsys.readouterr().err
    assert main(["evaluate", str(queries), "--out", str(tmp_path / "r"), "-k", "5"]) == 2
    assert "below the report's deepest rank" in capsys.readouterr().err


@pytest.mark.parametrize("text", ['["Tshirts"]', '{"t-shirt": "Tshirts"}', '{"t-shirt": [1]}'])
def test_a_relevance_map_of_another_shape_is_refused(tmp_path, text):
    path = tmp_path / "relevance.json"
    path.write_text(text)
    with pytest.raises(ValueError, match="give an object mapping each query label to a list of catalogue categories"):
        report.load_relevance(path)


@pytest.mark.parametrize("option, value", [("--tau", "1.5"), ("--tau", "nan"), ("--tau", "abc"), ("--tau", "-0.5"),
                                           ("--merge-weight", "-1"), ("--merge-weight", "inf")])
def test_sweep_values_out_of_range_are_refused_by_the_parser(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", str(tmp_path), "--out", str(tmp_path / "out"), option, value])
    assert stop.value.code == 2 and f"argument {option}: '{value}' is not a number" in capsys.readouterr().err


def test_grid_command_trains_and_tests_every_combination(tmp_path, fashion_slice, capsys):
    queries = copy_slice(tmp_path / "queries", per_category=3, split="queries")
    out = tmp_path / "grid"
    assert main(["grid", str(fashion_slice), "--test", str(queries), "--out", str(out), "--backbones",
                 "small_cnn:none", "--optimizers", "adam,rmsprop", "--learning-rates", "1e-3", "--epochs", "2",
                 "--input-size", "32", "--per-category", "8", "--note", "tiny"]) == 0
    rows = json.loads((out / "results.json").read_text())
    assert [(r["optimizer"], r["learning_rate"]) for r in rows] == [("adam", 0.001), ("rmsprop", 0.001)]
    assert all(r["epochs_run"] == 2 and 0 <= r["test_accuracy"] <= 1 and r["note"] == "tiny" for r in rows)
    assert (out / "curves-small_cnn-adam-0.001.png").is_file()
    assert "| small_cnn | none | rmsprop | 0.001 |" in capsys.readouterr().out
    refused = tmp_path / "refused"  # a bad last rate is refused before the first run trains, not hours later
    assert main(["grid", str(fashion_slice), "--test", str(queries), "--out", str(refused), "--backbones",
                 "small_cnn:none", "--learning-rates", "1e-3,0", "--epochs", "2"]) == 2
    assert "learning_rate must be a number above 0" in capsys.readouterr().err and not refused.exists()


def test_unseen_photos_compare_the_embedding_with_the_pooled_features(trained_keras, tmp_path):
    unseen = copy_slice(tmp_path / "unseen", SLICE_CATEGORIES, per_category=4, split="queries")
    outcome = compare_on_unseen(trained_keras, list_catalogue(unseen), DEFAULTS.max_image_pixels, count=16)
    assert outcome.photos == 16 and set(outcome.found) == {"embedding", "backbone's pooled features"}
    for shares in outcome.found.values():
        assert 0.3 <= shares[1] <= shares[5] <= 1.0  # among 16 photos, chance finds 1 in 16
    assert "| embedding |" in outcome.markdown("unseen")
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    with pytest.raises(ValueError, match="0 readable photos of 1 files: the comparison needs two at least"):
        compare_on_unseen(trained_keras, [CatalogueFile(tmp_path / "broken.jpg", "x", "broken")],
                          DEFAULTS.max_image_pixels)

"""Serving on ONNX Runtime: the exported graph answers like the Keras network, and serving never loads TensorFlow."""
import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from catalogue.folder import list_catalogue
from images.decoding import to_array
from model.card import ModelCard, onnx_path
from model.inference import ACTIVATION_MAP, INPUT_NAME, OUTPUT_NAMES, OnnxNetwork, load_network
from model.training import read_pictures
from search.ranking import rank
from tests.conftest import ROOT, copy_slice

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def real_images(tmp_path_factory, trained_keras):
    """45 real photos the model never trained on (the slice's categories, from the query split)."""
    folder = copy_slice(tmp_path_factory.mktemp("queries"), per_category=12, split="queries")
    return _arrays(list_catalogue(folder)[:45], trained_keras.input_size)


def _arrays(files, size: int) -> np.ndarray:
    pictures, _, _ = read_pictures(files, size)
    return np.stack([to_array(p, size) for p in pictures])


def test_graph_has_named_input_and_outputs(trained_model):
    assert [i.name for i in trained_model.session.get_inputs()] == [INPUT_NAME]
    assert sorted(o.name for o in trained_model.session.get_outputs()) == sorted((*OUTPUT_NAMES, ACTIVATION_MAP))
    assert trained_model.session.get_inputs()[0].shape[0] not in (1, 32)  # a dynamic batch axis


@pytest.mark.parametrize("count,batch_size", [(1, 1), (32, 32), (45, 32)], ids=["batch-1", "batch-32", "ragged"])
def test_onnx_runtime_matches_keras(trained_keras, trained_model, real_images, count, batch_size):
    images = real_images[:count]
    onnx = OnnxNetwork(trained_model.session, trained_model.card, batch_size).predict(images)
    keras = trained_keras.predict(images)
    assert onnx.probabilities.shape == keras.probabilities.shape == (count, 4)
    assert np.abs(onnx.probabilities - keras.probabilities).max() <= TOLERANCE
    assert np.abs(onnx.embeddings - keras.embeddings).max() <= TOLERANCE
    assert onnx.activation_maps.shape == keras.activation_maps.shape == (count, 3, 3)  # 96 px input
    assert np.abs(onnx.activation_maps - keras.activation_maps).max() <= TOLERANCE * keras.activation_maps.max()
    assert (onnx.probabilities.argmax(1) == keras.probabilities.argmax(1)).all()


def test_both_runtimes_rank_the_same_products(trained_keras, trained_model, fashion_slice, real_images):
    catalogue = _arrays(list_catalogue(fashion_slice), trained_keras.input_size)
    rankings = []
    for network in (trained_keras, trained_model):
        vectors = network.predict(catalogue).embeddings
        queries = network.predict(real_images).embeddings
        rankings.append([rank(q, vectors, (vectors * vectors).sum(1), k=10).positions.tolist() for q in queries])
    assert rankings[0] == rankings[1]


def test_a_graph_that_is_not_the_models_is_refused(trained_model_path, tmp_path):
    copy = tmp_path / "model.keras"
    for source in (trained_model_path, onnx_path(trained_model_path), trained_model_path.with_suffix(".meta.json")):
        shutil.copy(source, tmp_path / source.name)
    with open(onnx_path(copy), "ab") as graph:
        graph.write(b"\0")
    with pytest.raises(ValueError, match="lookalike export"):
        load_network(copy)
    onnx_path(copy).unlink()
    with pytest.raises(FileNotFoundError, match="lookalike export"):
        load_network(copy)


def test_export_command_gives_an_old_model_its_graph(trained_model_path, tmp_path, monkeypatch, capsys):
    from cli.main import main

    old = tmp_path / "model.keras"
    shutil.copy(trained_model_path, old)
    card = json.loads(trained_model_path.with_suffix(".meta.json").read_text())
    del card["onnx_sha256"]  # saved before serving moved to ONNX Runtime
    old.with_suffix(".meta.json").write_text(json.dumps(card))
    monkeypatch.setenv("LOOKALIKE_MODEL_PATH", str(old))
    assert main(["export"]) == 0
    assert "exported model" in capsys.readouterr().out
    assert ModelCard.read(old).onnx_sha256 and load_network(old).version == card["version"]


def test_a_graph_without_the_map_serves_without_it_until_exported_again(trained_keras, trained_model_path, tmp_path,
                                                                       monkeypatch, real_images):
    from cli.main import main
    from model.export import export_onnx

    old = tmp_path / "model.keras"
    shutil.copy(trained_model_path, old)
    card = json.loads(trained_model_path.with_suffix(".meta.json").read_text())
    card["onnx_sha256"] = export_onnx(trained_keras.network, onnx_path(old))  # the graph exported before the map
    old.with_suffix(".meta.json").write_text(json.dumps(card))
    before = load_network(old).predict(real_images[:2])
    assert before.activation_maps is None and before.embeddings.shape == (2, 512)
    monkeypatch.setenv("LOOKALIKE_MODEL_PATH", str(old))
    assert main(["export"]) == 0
    after = load_network(old).predict(real_images[:2])
    assert after.activation_maps.shape == (2, 3, 3)
    assert np.abs(after.embeddings - before.embeddings).max() <= TOLERANCE


def test_keras_runtime_can_be_chosen(trained_model_path):
    from model.network import KerasNetwork

    assert isinstance(load_network(trained_model_path, runtime="keras"), KerasNetwork)
    with pytest.raises(ValueError, match="onnx, keras"):
        load_network(trained_model_path, runtime="tflite")


@pytest.mark.parametrize("mode", ["resnet50", "vgg16", "mobilenet_v2"])
def test_preprocessing_is_keras_own(mode):
    import keras

    from model.preprocessing import preprocess

    images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    expected = getattr(keras.applications, mode).preprocess_input(images.astype(np.float32))
    np.testing.assert_allclose(preprocess(images, mode), expected, rtol=1e-6, atol=1e-5)


def test_serving_never_imports_tensorflow(trained_model_path, fashion_slice, tmp_path):
    """The web app, ``lookalike ingest`` and ``lookalike search`` in a fresh interpreter: no TensorFlow, no Keras, nor
    the evaluation's libraries (the ``serving`` extra has none of them)."""
    query = sorted((fashion_slice / "Watches").glob("*.jpg"))[0]
    script = textwrap.dedent(f"""
        import os, sys
        os.environ.update(LOOKALIKE_DATA_DIR={str(tmp_path)!r}, LOOKALIKE_MODEL_PATH={str(trained_model_path)!r})
        from cli.main import main
        assert main(["db", "upgrade"]) == 0
        assert main(["ingest", {str(fashion_slice)!r}]) == 0
        assert main(["search", {str(query)!r}, "-k", "3"]) == 0
        from webapp import create_app
        client = create_app().test_client()
        with open({str(query)!r}, "rb") as f:
            assert client.post("/api/search", data={{"image": (f, "q.jpg")}}).status_code == 200
        loaded = sorted(m for m in sys.modules
                        if m.split(".")[0] in ("tensorflow", "keras", "tf2onnx", "onnx", "sklearn", "matplotlib"))
        print("TRAINING-STACK:", loaded[:5])
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "TRAINING-STACK: []" in done.stdout, done.stdout[-2000:]

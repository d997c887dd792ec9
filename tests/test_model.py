"""The backbone registry, the two-output network, saving and loading, and short training runs."""
import json

import numpy as np
import pytest

from ingest.catalogue import list_catalogue
from model.backbones import get_backbone, list_backbones
from model.card import ModelCard, card_path
from model.network import KerasNetwork, assemble, build_head
from model.training import TrainConfig, load_images, train
from tests.conftest import DEMO_WEIGHTS


@pytest.mark.parametrize("name", list_backbones())
def test_every_backbone_builds_and_gives_unit_embeddings(name):
    backbone = get_backbone(name).create("none", input_size=32)
    assert not backbone.trainable
    network = assemble(backbone, build_head(backbone.output_shape[-1], 3))
    card = ModelCard(backbone=name, weights="none", input_size=32, preprocessing=get_backbone(name).preprocessing,
                     categories=["a", "b", "c"], version="test")
    images = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    prediction = KerasNetwork(network, card).predict(images)
    assert prediction.probabilities.shape == (4, 3) and prediction.embeddings.shape == (4, 512)
    np.testing.assert_allclose(prediction.probabilities.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(prediction.embeddings, axis=1), 1.0, rtol=1e-5)


def test_unknown_backbone_names_the_valid_ones():
    with pytest.raises(ValueError, match="mobilenet_v2, resnet50, small_cnn, vgg16"):
        get_backbone("resnet18")


def test_small_cnn_has_no_imagenet_weights():
    with pytest.raises(ValueError, match="no ImageNet weights"):
        get_backbone("small_cnn").create("imagenet")


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.h5"):
        get_backbone("mobilenet_v2").create(str(tmp_path / "nothere.h5"))


def test_saved_model_gives_identical_outputs(trained_keras, trained_model_path, fashion_slice):
    images, _, _ = load_images(list_catalogue(fashion_slice)[:8], trained_keras.input_size)
    reloaded = KerasNetwork.load(trained_model_path)
    before, after = trained_keras.predict(images), reloaded.predict(images)
    np.testing.assert_array_equal(before.probabilities, after.probabilities)
    np.testing.assert_array_equal(before.embeddings, after.embeddings)
    card = json.loads(card_path(trained_model_path).read_text())
    assert card["categories"] == ["Backpacks", "Heels", "Sunglasses", "Watches"]
    assert card["backbone"] == "mobilenet_v2" and card["input_size"] == 96 and card["version"]
    assert len(card["onnx_sha256"]) == 64  # the ONNX export beside it, for serving


@pytest.mark.parametrize("augment", [False, True])
def test_short_training_run(fashion_slice, tmp_path, augment):
    config = TrainConfig(backbone="small_cnn", weights="none", input_size=32, epochs=2, batch_size=8,
                         validation_split=0.25, augment=augment, optimizer="rmsprop")
    result = train(list_catalogue(fashion_slice), config, checkpoint_path=tmp_path / "best.weights.h5",
                   progress=False)
    assert result.epochs_run == 2 and (tmp_path / "best.weights.h5").is_file()
    assert set(result.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert result.model.categories == ["Backpacks", "Heels", "Sunglasses", "Watches"]
    assert result.model.version.startswith("small_cnn-")


def test_training_skips_unreadable_files(fashion_slice, tmp_path):
    from tests.conftest import copy_slice
    catalogue = copy_slice(tmp_path / "c", categories=("Backpacks", "Heels"), per_category=4)
    (catalogue / "Heels" / "bad.jpg").write_bytes(b"nope")
    result = train(list_catalogue(catalogue), TrainConfig(backbone="small_cnn", weights="none", input_size=32,
                                                          epochs=1, validation_split=0), progress=False)
    assert [path.rsplit("/", 1)[-1] for path, _ in result.rejected] == ["bad.jpg"]


def test_unknown_optimizer_is_refused(fashion_slice):
    with pytest.raises(ValueError, match="adam, rmsprop"):
        train(list_catalogue(fashion_slice), TrainConfig(backbone="small_cnn", optimizer="sgd"), progress=False)


def test_frozen_backbone_with_cached_augmented_copies_and_fine_tuning(fashion_slice, tmp_path):
    config = TrainConfig(backbone="mobilenet_v2", weights=str(DEMO_WEIGHTS), input_size=32, epochs=2,
                         batch_size=16, validation_split=0.25, augment=True, augment_copies=1,
                         fine_tune_layers=10, fine_tune_epochs=1)
    result = train(list_catalogue(fashion_slice), config, checkpoint_path=tmp_path / "best.weights.h5",
                   progress=False)
    assert result.epochs_run == 3  # two head epochs, one fine-tuning epoch
    assert (tmp_path / "best.fine-tune.weights.h5").is_file()
    assert not result.model.network.layers[1].trainable  # the backbone is frozen again for serving
    assert result.model.card.training["images"] == 48


def test_feature_cache_is_shared_between_runs(fashion_slice):
    from model.training import labelled_images, train_on

    data = labelled_images(list_catalogue(fashion_slice), 32, 0.25, seed=0)
    cache: dict = {}
    for optimizer in ("adam", "rmsprop"):
        train_on(data, TrainConfig(backbone="mobilenet_v2", weights=str(DEMO_WEIGHTS), input_size=32,
                                   epochs=1, optimizer=optimizer), progress=False, feature_cache=cache)
    assert len(cache) == 1
    x_train, y_train, x_val = next(iter(cache.values()))
    assert len(x_train) == len(y_train) == 36 and len(x_val) == 12

"""The backbone registry, the two-output network, saving and loading, and short training runs."""
import json

import numpy as np
import pytest

from catalogue.folder import list_catalogue
from images.decoding import to_array
from model.backbones import get_backbone, list_backbones
from model.calibration import min_similarity
from model.card import ModelCard, card_path
from model.network import KerasNetwork, assemble, build_head
from model.training import TrainConfig, read_pictures, train
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


def test_imagenet_weights_that_cannot_be_fetched_say_what_to_do(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):  # what Keras raises when the weights are not cached and there is no internet
        raise Exception("URL fetch failure on https://storage.googleapis.com/x.h5: None -- [Errno -2] Name or "
                        "service not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(RuntimeError, match="the ImageNet weights of resnet50 are not in the Keras cache .*"
                                           "--backbone mobilenet_v2 --weights .*mobilenet_v2_imagenet"):
        get_backbone("resnet50").create("imagenet", input_size=32)


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.h5"):
        get_backbone("mobilenet_v2").create(str(tmp_path / "nothere.h5"))


def test_saved_model_gives_identical_outputs(trained_keras, trained_model_path, fashion_slice):
    pictures, _, _ = read_pictures(list_catalogue(fashion_slice)[:8], trained_keras.input_size)
    images = np.stack([to_array(p, trained_keras.input_size) for p in pictures])
    reloaded = KerasNetwork.load(trained_model_path)
    before, after = trained_keras.predict(images), reloaded.predict(images)
    np.testing.assert_array_equal(before.probabilities, after.probabilities)
    np.testing.assert_array_equal(before.embeddings, after.embeddings)
    card = json.loads(card_path(trained_model_path).read_text())
    assert card["categories"] == ["Backpacks", "Heels", "Sunglasses", "Watches"]
    assert card["backbone"] == "mobilenet_v2" and card["input_size"] == 96 and card["version"]
    assert len(card["onnx_sha256"]) == 64  # the ONNX export beside it, for serving


def test_training_calibrates_the_weak_match_threshold_on_its_own_pictures(trained_keras, fashion_slice):
    """The threshold training computed from its cached features is the one the trained network itself gives."""
    files = list_catalogue(fashion_slice)
    pictures, kept, _ = read_pictures(files, trained_keras.input_size)
    images = np.stack([to_array(p, trained_keras.input_size) for p in pictures])
    labels = np.array([trained_keras.categories.index(f.category) for f in kept])
    assert 0 < trained_keras.min_similarity < 100
    assert trained_keras.min_similarity == pytest.approx(
        min_similarity(trained_keras.predict(images).embeddings, labels), abs=0.5)  # the cache is half precision


def test_short_training_run_of_a_backbone_without_pretrained_weights(fashion_slice):
    config = TrainConfig(backbone="small_cnn", weights="none", input_size=32, epochs=2, views=1,
                         validation_split=0.25, optimizer="rmsprop")
    result = train(list_catalogue(fashion_slice), config, progress=False)
    assert result.epochs_run == 2
    assert set(result.history) >= {"loss", "probabilities_accuracy", "identity_cosines_loss", "val_loss"}
    assert result.model.categories == ["Backpacks", "Heels", "Sunglasses", "Watches"]
    assert result.model.version.startswith("small_cnn-")
    assert 0 < result.model.card.min_similarity < 100  # calibrated through the whole network, from the pixels


def test_training_skips_unreadable_files(fashion_slice, tmp_path):
    from tests.conftest import copy_slice
    catalogue = copy_slice(tmp_path / "c", categories=("Backpacks", "Heels"), per_category=4)
    (catalogue / "Heels" / "bad.jpg").write_bytes(b"nope")
    result = train(list_catalogue(catalogue), TrainConfig(backbone="small_cnn", weights="none", input_size=32,
                                                          epochs=1, views=0, validation_split=0), progress=False)
    assert [path.rsplit("/", 1)[-1] for path, _ in result.rejected] == ["bad.jpg"]


@pytest.mark.parametrize("setting, value, message", [
    ("epochs", 0, "epochs must be a whole number of 1 or more, not 0"),
    ("top_epochs", -1, "top_epochs must be a whole number of 0 or more"),
    ("epochs", 2.5, "epochs must be a whole number"),
    ("instance_holdout", 1.5, "instance_holdout must be a share from 0 up to 1 (not 1), not 1.5"),
    ("validation_split", 1.0, "validation_split must be a share"),
    ("learning_rate", 0.0, "learning_rate must be a number above 0"),
    ("top_learning_rate", float("nan"), "top_learning_rate must be a number above 0"),
    ("neighbourhood_weight", -1.0, "neighbourhood_weight must be a number of 0 or more"),
    ("views", True, "views must be a whole number"),
    ("learning_rate", "fast", "learning_rate must be a number above 0, not 'fast'"),  # improve --train's text
])
def test_training_settings_no_training_can_run_with_are_refused(setting, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**{setting: value})


def test_unknown_optimizer_is_refused(fashion_slice):
    with pytest.raises(ValueError, match="adam, rmsprop"):
        train(list_catalogue(fashion_slice), TrainConfig(backbone="small_cnn", optimizer="sgd"), progress=False)


def test_pretrained_backbone_trains_head_then_top_on_cached_views(fashion_slice):
    """The default recipe, small: views cached below the split, the head stage, then the top stage."""
    config = TrainConfig(backbone="mobilenet_v2", weights=str(DEMO_WEIGHTS), input_size=32, epochs=2, top_epochs=1,
                         views=2, validation_split=0.25)
    backbone = get_backbone("mobilenet_v2").create(str(DEMO_WEIGHTS), 32)
    top_layer = backbone.get_layer("Conv_1")  # above the split: trained in the second stage
    below = backbone.get_layer("block_1_expand")  # below the split: frozen throughout
    result = train(list_catalogue(fashion_slice), config, progress=False)
    trained = result.model.network.layers[1]
    assert result.epochs_run == 3  # two head epochs, one top epoch
    # The neighbourhood objective's target is the frozen backbone's pooled features, in both stages.
    assert len(result.history["neighbourhood_loss"]) == len(result.history["val_neighbourhood_loss"]) == 3
    assert not np.allclose(trained.get_layer("Conv_1").get_weights()[0], top_layer.get_weights()[0])
    np.testing.assert_array_equal(trained.get_layer("block_1_expand").get_weights()[0], below.get_weights()[0])
    bn = trained.get_layer("Conv_1_bn")  # BatchNorm keeps the folded statistics of the offline weights
    np.testing.assert_array_equal(bn.get_weights()[2], backbone.get_layer("Conv_1_bn").get_weights()[2])
    assert not trained.trainable  # frozen again for serving
    assert 0 < result.model.card.min_similarity < 100  # calibrated through the trained top and the head
    card = result.model.card.training
    assert card["images"] == 48 and 0 < card["instance_identities"] < 36  # 12 validation images, some held out


def test_resnet50_trains_its_last_block_over_the_frozen_rest(fashion_slice, tmp_path):
    """The product's default backbone through the default stages, from a weights file (random here: ImageNet's
    cannot be fetched offline): the cache is cut at conv5_block2_out, so only the last block trains with the head,
    BatchNorm frozen, the neighbourhood objective in both stages."""
    weights = tmp_path / "resnet50.weights.h5"
    get_backbone("resnet50").create("none", 32).save_weights(weights)
    backbone = get_backbone("resnet50").create(str(weights), 32)
    config = TrainConfig(backbone="resnet50", weights=str(weights), input_size=32, epochs=1, views=1)
    result = train(list_catalogue(fashion_slice), config, progress=False)
    trained = result.model.network.layers[1]
    stages = config.epochs + config.top_epochs  # one head epoch, then the default top epochs
    assert result.epochs_run == stages and len(result.history["neighbourhood_loss"]) == stages
    assert not np.allclose(trained.get_layer("conv5_block3_3_conv").get_weights()[0],
                           backbone.get_layer("conv5_block3_3_conv").get_weights()[0])
    for frozen in ("conv5_block2_3_conv", "conv5_block3_3_bn"):  # below the split; BatchNorm above it
        for ours, theirs in zip(trained.get_layer(frozen).get_weights(), backbone.get_layer(frozen).get_weights()):
            np.testing.assert_array_equal(ours, theirs)


def test_training_set_holds_out_products_from_the_instance_objective(fashion_slice):
    from model.losses import NOT_AN_IDENTITY
    from model.training import training_set

    data = training_set(list_catalogue(fashion_slice), TrainConfig(instance_holdout=0.5, validation_split=0.25), 32)
    trained = data.identities != NOT_AN_IDENTITY
    assert not trained[data.val_idx].any()  # validation pictures are not trained on at all
    assert 0 < trained.sum() < len(data.train_idx)
    assert sorted(data.identities[trained]) == list(range(trained.sum()))  # one identity per product


def test_views_differ_from_the_photo_and_from_each_other(fashion_slice):
    import random

    from PIL import Image

    from images.decoding import to_array
    from model.views import view

    photo = Image.open(sorted((fashion_slice / "Watches").glob("*.jpg"))[0]).convert("RGB")
    rng = random.Random(0)
    views = [to_array(view(photo, rng), 64).astype(int) for _ in range(3)]
    original = to_array(photo, 64).astype(int)
    assert all(np.abs(v - original).mean() > 3 for v in views)
    assert np.abs(views[0] - views[1]).mean() > 3


def test_cosface_counts_only_trained_identities():
    from model.losses import NOT_AN_IDENTITY, CosFaceLoss

    cosines = np.array([[0.9, 0.1], [0.1, 0.9], [0.5, 0.5]], np.float32)
    loss = CosFaceLoss(scale=10, margin=0.2)
    confident = float(loss(np.array([0, 1, NOT_AN_IDENTITY]), cosines))
    assert confident == pytest.approx(float(loss(np.array([0, 1]), cosines[:2])))
    assert float(loss(np.array([1, 0, NOT_AN_IDENTITY]), cosines)) > confident + 5
    assert float(loss(np.array([NOT_AN_IDENTITY] * 3), cosines)) == 0.0


def test_neighbourhood_loss_is_zero_when_the_embedding_keeps_the_backbones_neighbours():
    from model.losses import NeighbourhoodLoss

    rng = np.random.default_rng(0)
    centre = np.full(6, 2.0, np.float32)
    directions = rng.normal(size=(8, 6)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    pooled = centre + 3 * directions  # the backbone's features: the centre plus a direction each
    loss = NeighbourhoodLoss(centre, temperature=0.1)
    assert float(loss(pooled, directions)) == pytest.approx(0.0, abs=1e-5)
    assert float(loss(pooled, directions[::-1].copy())) > 1.0  # every photo's neighbours changed
    # Without the centre every raw feature looks alike; the loss reads the centred ones.
    assert float(NeighbourhoodLoss(np.zeros(6, np.float32), 0.1)(pooled, directions)) > 0.01

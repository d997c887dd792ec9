"""The backbone registry: every feature extractor the network can be built on, by name.

Each entry carries its own input size and preprocessing, so no caller repeats them by hand.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras

from config.settings import DEMO_WEIGHTS


@dataclass(frozen=True)
class Backbone:
    """A registered feature extractor.

    Attributes:
        name: registry key.
        input_size: default side of the square input.
        preprocessing: key of ``model.preprocessing.PREPROCESSORS`` that maps 0–255 RGB to what the network expects.
        has_imagenet: whether Keras can provide ImageNet weights for it.
        split: the layer whose output ends the part that stays frozen when a pretrained backbone is
            trained: the layers above it (the last block or two) are trained with the head.
    """

    name: str
    input_size: int
    preprocessing: str
    has_imagenet: bool
    split: str
    _build: Callable[[tuple[int, int, int], str | None], keras.Model]

    def create(self, weights: str = "none", input_size: int = 0) -> keras.Model:
        """Build the pooled feature extractor, frozen.

        Args:
            weights: ``imagenet`` (Keras's loader: its cache first, a download only where there is
                internet), ``none`` (random), or the path of a local weights file.
            input_size: input side; 0 means the backbone's default.
        """
        size = input_size or self.input_size
        shape = (size, size, 3)
        if weights == "none":
            model = self._build(shape, None)
        elif weights == "imagenet":
            if not self.has_imagenet:
                raise ValueError(f"backbone {self.name!r} has no ImageNet weights: use weights 'none' or a file")
            try:
                model = self._build(shape, "imagenet")
            except Exception as e:  # Keras raises a bare Exception when it cannot fetch them
                if "URL fetch failure" not in str(e):
                    raise
                raise RuntimeError(
                    f"the ImageNet weights of {self.name} are not in the Keras cache (KERAS_HOME, by default "
                    f"~/.keras/models) and could not be downloaded: put them there, give a weights file (--weights "
                    f"FILE), or use the offline MobileNetV2 weights (--backbone mobilenet_v2 --weights "
                    f"{DEMO_WEIGHTS}; for the demo, leave LOOKALIKE_DEMO_BACKBONE unset)") from e
        else:
            path = Path(weights)
            if not path.is_file():
                raise FileNotFoundError(f"weights file not found: {path} (expected 'imagenet', 'none' or a file)")
            model = self._build(shape, None)
            model.load_weights(str(path))
        model.trainable = False  # frozen: BatchNorm runs in inference mode and keeps its statistics
        return model


def _application(constructor) -> Callable[[tuple[int, int, int], str | None], keras.Model]:
    def build(shape, weights):
        return constructor(include_top=False, weights=weights, input_shape=shape, pooling="avg")
    return build


def _small_cnn(shape, weights):
    """A small network trained from scratch: four 3×3 conv layers (16/32/64/128 filters), each with max-pooling."""
    inputs = keras.Input(shape)
    x = inputs
    for filters in (16, 32, 64, 128):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name="small_cnn")


_REGISTRY: dict[str, Backbone] = {
    b.name: b for b in (
        Backbone("resnet50", 224, "resnet50", True, "conv5_block2_out", _application(keras.applications.ResNet50)),
        Backbone("mobilenet_v2", 224, "mobilenet_v2", True, "block_13_project_BN",
                 _application(keras.applications.MobileNetV2)),
        Backbone("vgg16", 224, "vgg16", True, "block5_conv2", _application(keras.applications.VGG16)),
        Backbone("small_cnn", 128, "unit", False, "", _small_cnn),
    )
}


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def get_backbone(name: str) -> Backbone:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of: {', '.join(list_backbones())}") from None

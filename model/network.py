"""The Lookalike network in Keras, the training runtime: a frozen backbone with one head that both
classifies and embeds.

One forward pass gives the class probabilities (softmax), the embedding (the L2-normalised output
of the 512-unit embedding layer) and, for serving, the predicted class's activation map (``model.activation``).
Saving writes the ``.keras`` file, its ONNX export for serving and the model card (``model.card``).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from config import DEFAULTS
from model.activation import localising
from model.card import EMBEDDING_DIM, ModelCard, onnx_path
from model.export import export_onnx
from model.inference import ACTIVATION_MAP, OUTPUT_NAMES, Network


def build_head(feature_dim: int, n_classes: int, dropout: float = 0.3) -> keras.Model:
    """Dense 512 ReLU → BN → Dropout → Dense 512 (embedding) → BN → Dropout → softmax.

    BatchNorm momentum is 0.9, not Keras's 0.99, so its moving statistics settle within the few hundred
    steps a head trains for; at 0.99 a small catalogue ends training with statistics still near their
    initial values, and inference disagrees with training.
    """
    features = keras.Input((feature_dim,), name="features")
    x = keras.layers.Dense(512, activation="relu")(features)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.Dropout(dropout)(x)
    embedding = keras.layers.Dense(EMBEDDING_DIM, name="embedding")(x)
    x = keras.layers.BatchNormalization(momentum=0.9)(embedding)
    x = keras.layers.Dropout(dropout)(x)
    probabilities = keras.layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    normalised = keras.layers.UnitNormalization(name="embedding_l2")(embedding)
    return keras.Model(features, [probabilities, normalised], name="head")


def assemble(backbone: keras.Model, head: keras.Model) -> keras.Model:
    """Image in, [probabilities, embedding] out."""
    image = keras.Input(backbone.input_shape[1:], name="image")
    return keras.Model(image, head(backbone(image, training=False)), name="lookalike")


class KerasNetwork(Network):
    """The network on TensorFlow: what training produces, and a serving runtime on request.

    Args:
        network: the assembled Keras model (image → [probabilities, embedding]).
        card: its model card.
        batch_size: images per forward pass.
    """

    def __init__(self, network: keras.Model, card: ModelCard, batch_size: int = DEFAULTS.batch_size):
        super().__init__(card, batch_size)
        self.network = network
        # The graph the ONNX export holds (the activation map too), traced instead of Model.predict: no per-call
        # setup, so a single query is cheap too.
        served = localising(network)
        self._traced = tf.function(lambda x: served(x, training=False), reduce_retracing=True)

    def _forward(self, batch):
        probabilities, embeddings, maps = self._traced(tf.constant(batch))
        return probabilities.numpy(), embeddings.numpy(), maps.numpy()

    def pooled_features(self, images: np.ndarray) -> np.ndarray:
        """The backbone's pooled features of a uint8 batch: what the head starts from (for evaluation)."""
        backbone = self.network.layers[1]  # the assembled network: image input, backbone, head
        inputs = self.preprocess(images)
        return np.concatenate([backbone.predict_on_batch(inputs[start:start + self.batch_size])
                               for start in range(0, len(inputs), self.batch_size)])

    def save(self, path: Path) -> None:
        """Write ``path`` (``.keras``), its ONNX export beside it, and the card with the export's checksum."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.network.save(path)
        self.export(path)

    def export(self, path: Path) -> None:
        """(Re-)export the ONNX graph of the model saved at ``path`` and record its checksum in the card."""
        self.card = replace(self.card, onnx_sha256=export_onnx(localising(self.network), onnx_path(path),
                                                               OUTPUT_NAMES + (ACTIVATION_MAP,)))
        self.card.write(path)

    @classmethod
    def load(cls, path: Path, batch_size: int = DEFAULTS.batch_size) -> KerasNetwork:
        path = Path(path)
        card = ModelCard.read(path)
        if not path.is_file():
            raise FileNotFoundError(f"no trained model at {path}: run 'lookalike train' first")
        return cls(keras.models.load_model(path, compile=False), card, batch_size)

"""The Lookalike network: a frozen backbone with one head that both classifies and embeds.

One forward pass gives the class probabilities (softmax) and the embedding (the L2-normalised output
of the 512-unit embedding layer). A saved model is one ``.keras`` file plus a ``.meta.json`` card
beside it that says how to use it again without guessing.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from model.backbones import preprocess

EMBEDDING_DIM = 512


@dataclass(frozen=True)
class ModelCard:
    """Everything needed to use a saved model: what it was built on and what its outputs mean."""

    backbone: str
    weights: str
    input_size: int
    preprocessing: str
    categories: list[str]
    embedding_dim: int = EMBEDDING_DIM
    version: str = ""
    training: dict = field(default_factory=dict)

    @staticmethod
    def new_version(backbone: str) -> str:
        return f"{backbone}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Prediction:
    probabilities: np.ndarray  # (n, categories), rows sum to 1
    embeddings: np.ndarray  # (n, EMBEDDING_DIM), unit length


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


class EmbeddingModel:
    """A trained network ready to serve: batched forward passes on uint8 RGB arrays.

    Args:
        network: the assembled Keras model (image → [probabilities, embedding]).
        card: its model card.
        batch_size: images per forward pass.
    """

    def __init__(self, network: keras.Model, card: ModelCard, batch_size: int = 32):
        self.network = network
        self.card = card
        self.batch_size = batch_size
        # A traced graph instead of Model.predict: no per-call setup, so a single query is cheap too.
        self._forward = tf.function(lambda x: network(x, training=False), reduce_retracing=True)

    @property
    def version(self) -> str:
        return self.card.version

    @property
    def categories(self) -> list[str]:
        return self.card.categories

    @property
    def input_size(self) -> int:
        return self.card.input_size

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        return preprocess(images, self.card.preprocessing)

    def predict(self, images: np.ndarray) -> Prediction:
        """Probabilities and embeddings for a uint8 batch of shape (n, size, size, 3)."""
        return self.predict_preprocessed(self.preprocess(images))

    def predict_preprocessed(self, inputs: np.ndarray) -> Prediction:
        probabilities, embeddings = [], []
        for start in range(0, len(inputs), self.batch_size):
            p, e = self._forward(tf.constant(inputs[start:start + self.batch_size]))
            probabilities.append(p.numpy())
            embeddings.append(e.numpy())
        if not probabilities:
            return Prediction(np.zeros((0, len(self.categories)), np.float32),
                              np.zeros((0, self.card.embedding_dim), np.float32))
        return Prediction(np.concatenate(probabilities), np.concatenate(embeddings))

    def warm_up(self) -> None:
        """Trace the forward pass for one image now, so the first shopper does not wait for it."""
        self.predict(np.zeros((1, self.input_size, self.input_size, 3), np.uint8))

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.network.save(path)
        card_path(path).write_text(json.dumps(asdict(self.card), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path, batch_size: int = 32) -> "EmbeddingModel":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no trained model at {path}: run 'lookalike train' first")
        card = ModelCard(**json.loads(card_path(path).read_text()))
        return cls(keras.models.load_model(path, compile=False), card, batch_size)


def card_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".meta.json")

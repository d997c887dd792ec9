"""Training the head on a catalogue folder (category = folder name), with the backbone frozen.

Without augmentation the frozen backbone's output never changes between epochs, so it is computed once
and the head trains on those cached features: an epoch then costs milliseconds instead of a pass of
the whole network over every image. With augmentation every epoch sees new pixels, so images flow
through augmentation layers and the whole network.
"""
from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from ingest.catalogue import CatalogueFile
from model.backbones import PREPROCESSORS, get_backbone, preprocess
from model.images import ImageError, decode_image, to_array
from model.network import EmbeddingModel, ModelCard, assemble, build_head

OPTIMIZERS = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``input_size`` 0 means the backbone's default."""

    backbone: str = "resnet50"
    weights: str = "imagenet"
    input_size: int = 0
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    epochs: int = 30
    batch_size: int = 32
    validation_split: float = 0.2
    patience: int = 5
    augment: bool = False
    dropout: float = 0.3
    seed: int = 0


@dataclass
class TrainResult:
    model: EmbeddingModel
    history: dict[str, list[float]]
    epochs_run: int
    seconds_per_epoch: float
    rejected: list[tuple[str, str]] = field(default_factory=list)


def load_images(files: Sequence[CatalogueFile], size: int, max_pixels: int = 40_000_000,
                workers: int = 2) -> tuple[np.ndarray, list[CatalogueFile], list[tuple[str, str]]]:
    """Decode files to a uint8 (n, size, size, 3) array; unreadable ones are returned with the reason."""
    def load(entry: CatalogueFile):
        try:
            return to_array(decode_image(entry.path.read_bytes(), max_pixels).rgb, size)
        except (ImageError, OSError) as e:
            return str(e)

    with ThreadPoolExecutor(workers) as pool:
        loaded = list(pool.map(load, files))
    kept = [(f, a) for f, a in zip(files, loaded) if not isinstance(a, str)]
    rejected = [(str(f.path), a) for f, a in zip(files, loaded) if isinstance(a, str)]
    arrays = np.stack([a for _, a in kept]) if kept else np.zeros((0, size, size, 3), np.uint8)
    return arrays, [f for f, _ in kept], rejected


def _augmentation(seed: int) -> keras.Sequential:
    """Flips, small rotation and zoom, brightness and contrast, on 0–255 pixels (as the seeds did)."""
    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(0.05, fill_mode="constant", fill_value=255.0, seed=seed),
        keras.layers.RandomZoom(0.1, fill_mode="constant", fill_value=255.0, seed=seed),
        keras.layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed),
        keras.layers.RandomContrast(0.2, seed=seed),
    ], name="augmentation")


def backbone_features(backbone: keras.Model, images: np.ndarray, preprocessing: str, batch_size: int,
                      progress: bool = False) -> np.ndarray:
    """The frozen backbone's pooled output for every image, computed batch by batch."""
    forward = tf.function(lambda x: backbone(x, training=False), reduce_retracing=True)
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc="features", disable=not progress):
        out.append(forward(tf.constant(preprocess(images[start:start + batch_size], preprocessing))).numpy())
    return np.concatenate(out) if out else np.zeros((0, backbone.output_shape[-1]), np.float32)


def train(files: Sequence[CatalogueFile], config: TrainConfig, checkpoint_path: Path | None = None,
          progress: bool = True) -> TrainResult:
    """Train the classifier+embedding head on catalogue files and return the assembled model.

    Args:
        files: labelled images (``CatalogueFile.category`` is the label).
        config: backbone, weights, optimizer, learning rate, epochs, augmentation, ….
        checkpoint_path: where the best weights so far are kept (``*.weights.h5``); a temporary file if None.
        progress: print per-epoch lines and progress bars.

    Example:
        >>> result = train(list_catalogue(Path("demo/catalogue")), TrainConfig(backbone="mobilenet_v2"))
        >>> result.model.save(Path("var/model.keras"))
    """
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
    keras.utils.set_random_seed(config.seed)
    spec = get_backbone(config.backbone)
    backbone = spec.create(config.weights, config.input_size)
    size = backbone.input_shape[1]
    images, kept, rejected = load_images(files, size)
    categories = sorted({f.category for f in kept})
    if len(categories) < 2:
        raise ValueError(f"training needs at least 2 categories with readable images, found {categories}")
    labels = np.array([categories.index(f.category) for f in kept])
    train_idx, val_idx = _split(labels, config.validation_split, config.seed)

    head = build_head(backbone.output_shape[-1], len(categories), config.dropout)
    if config.augment:
        classifier = keras.Model(backbone.input, head(backbone.output)[0])
        train_data = _augmented_dataset(images[train_idx], labels[train_idx], spec.preprocessing, config)
        val_inputs = preprocess(images[val_idx], spec.preprocessing)
    else:
        classifier = keras.Model(head.input, head.outputs[0])
        features = backbone_features(backbone, images, spec.preprocessing, config.batch_size, progress)
        train_data = tf.data.Dataset.from_tensor_slices((features[train_idx], labels[train_idx])) \
            .shuffle(len(train_idx), seed=config.seed).batch(config.batch_size)
        val_inputs = features[val_idx]
    classifier.compile(optimizer=OPTIMIZERS[config.optimizer](learning_rate=config.learning_rate),
                       loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    monitor = "val_loss" if len(val_idx) else "loss"
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = Path(checkpoint_path or Path(scratch) / "best.weights.h5")
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        callbacks = [
            keras.callbacks.EarlyStopping(monitor=monitor, mode="min", patience=config.patience),
            keras.callbacks.ModelCheckpoint(str(checkpoint), monitor=monitor, mode="min",
                                            save_best_only=True, save_weights_only=True),
        ]
        started = time.perf_counter()
        history = classifier.fit(
            train_data, epochs=config.epochs, callbacks=callbacks, verbose=2 if progress else 0, shuffle=False,
            validation_data=(val_inputs, labels[val_idx]) if len(val_idx) else None)
        elapsed = time.perf_counter() - started
        classifier.load_weights(str(checkpoint))  # the best epoch, not the last one

    epochs_run = len(history.history["loss"])
    card = ModelCard(backbone=spec.name, weights=config.weights, input_size=size,
                     preprocessing=spec.preprocessing, categories=categories,
                     version=ModelCard.new_version(spec.name),
                     training={**asdict(config), "images": len(kept), "epochs_run": epochs_run,
                               "best_" + monitor: float(min(history.history[monitor])),
                               **({"best_val_accuracy": float(max(history.history["val_accuracy"]))}
                                  if len(val_idx) else {})})
    model = EmbeddingModel(assemble(backbone, head), card, config.batch_size)
    return TrainResult(model, {k: [float(v) for v in vs] for k, vs in history.history.items()},
                       epochs_run, elapsed / max(epochs_run, 1), rejected)


def _split(labels: np.ndarray, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/validation indices (no validation when the split is 0)."""
    indices = np.arange(len(labels))
    if validation_split <= 0:
        return indices, indices[:0]
    return train_test_split(indices, test_size=validation_split, random_state=seed, stratify=labels)


def _augmented_dataset(images: np.ndarray, labels: np.ndarray, preprocessing: str,
                       config: TrainConfig) -> tf.data.Dataset:
    augment = _augmentation(config.seed)

    def transform(x, y):
        return PREPROCESSORS[preprocessing](augment(tf.cast(x, tf.float32), training=True)), y

    return (tf.data.Dataset.from_tensor_slices((images, labels))
            .shuffle(len(labels), seed=config.seed).batch(config.batch_size)
            .map(transform, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))

"""Training the network on a catalogue folder (category = folder name).

A pretrained backbone stays frozen, so its output for an image never changes between epochs: it is
computed once (for each augmented copy too) and the head trains on those cached features, an epoch
then costing milliseconds instead of a pass of the whole network. A backbone without pretrained
weights (the thesis's own CNN) trains end to end on images, augmented on the fly. An optional
fine-tuning stage then unfreezes the top of a pretrained backbone and trains end to end at a low rate.
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
from model.backbones import get_backbone
from model.card import ModelCard
from model.images import ImageError, decode_image, to_array
from model.network import KerasNetwork, assemble, build_head
from model.preprocessing import PREPROCESSORS, preprocess

OPTIMIZERS = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``input_size`` 0 means the backbone's default.

    ``augment_copies`` is how many augmented copies of each training image a frozen backbone embeds
    (with ``augment``); ``fine_tune_layers`` > 0 unfreezes that many top layers of a pretrained
    backbone for a second stage of ``fine_tune_epochs`` at ``fine_tune_learning_rate``.
    """

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
    augment_copies: int = 2
    dropout: float = 0.3
    fine_tune_layers: int = 0
    fine_tune_epochs: int = 5
    fine_tune_learning_rate: float = 1e-5
    seed: int = 0

    @property
    def frozen(self) -> bool:
        return self.weights != "none"


@dataclass
class TrainResult:
    model: KerasNetwork
    history: dict[str, list[float]]
    epochs_run: int
    seconds_per_epoch: float
    rejected: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class LabelledImages:
    """Decoded catalogue images with their labels and a stratified train/validation split."""

    images: np.ndarray  # uint8 (n, size, size, 3)
    labels: np.ndarray
    categories: list[str]
    train_idx: np.ndarray
    val_idx: np.ndarray
    rejected: list[tuple[str, str]]


def load_images(files: Sequence[CatalogueFile], size: int, max_pixels: int = 40_000_000,
                workers: int = 2) -> tuple[np.ndarray, list[CatalogueFile], list[tuple[str, str]]]:
    """Decode files to a uint8 (n, size, size, 3) array; unreadable ones are returned with the reason."""
    def load(entry: CatalogueFile):
        try:
            return to_array(decode_image(entry.path.read_bytes(), max_pixels, size).rgb, size)
        except (ImageError, OSError) as e:
            return str(e)

    with ThreadPoolExecutor(workers) as pool:
        loaded = list(pool.map(load, files))
    kept = [(f, a) for f, a in zip(files, loaded) if not isinstance(a, str)]
    rejected = [(str(f.path), a) for f, a in zip(files, loaded) if isinstance(a, str)]
    arrays = np.stack([a for _, a in kept]) if kept else np.zeros((0, size, size, 3), np.uint8)
    return arrays, [f for f, _ in kept], rejected


def labelled_images(files: Sequence[CatalogueFile], size: int, validation_split: float, seed: int) -> LabelledImages:
    images, kept, rejected = load_images(files, size)
    categories = sorted({f.category for f in kept})
    if len(categories) < 2:
        raise ValueError(f"training needs at least 2 categories with readable images, found {categories}")
    labels = np.array([categories.index(f.category) for f in kept])
    indices = np.arange(len(labels))
    if validation_split <= 0:
        train_idx, val_idx = indices, indices[:0]
    else:
        train_idx, val_idx = train_test_split(indices, test_size=validation_split, random_state=seed, stratify=labels)
    return LabelledImages(images, labels, categories, train_idx, val_idx, rejected)


def augmentation(seed: int) -> keras.Sequential:
    """Flips, small rotation and zoom, brightness and contrast, on 0–255 pixels (as the seeds did)."""
    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(0.05, fill_mode="constant", fill_value=255.0, seed=seed),
        keras.layers.RandomZoom(0.1, fill_mode="constant", fill_value=255.0, seed=seed),
        keras.layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed),
        keras.layers.RandomContrast(0.2, value_range=(0, 255), seed=seed),
    ], name="augmentation")


def backbone_features(backbone: keras.Model, images: np.ndarray, preprocessing: str, batch_size: int,
                      progress: bool = False, augment: keras.Sequential | None = None) -> np.ndarray:
    """The frozen backbone's pooled output for every image (optionally augmented first), batch by batch."""
    def forward(x):
        if augment is not None:
            x = tf.clip_by_value(augment(tf.cast(x, tf.float32), training=True), 0.0, 255.0)
        return backbone(PREPROCESSORS[preprocessing](tf.cast(x, tf.float32)), training=False)

    forward = tf.function(forward, reduce_retracing=True)
    out = [forward(tf.constant(images[start:start + batch_size])).numpy()
           for start in tqdm(range(0, len(images), batch_size), desc="features", disable=not progress)]
    return np.concatenate(out) if out else np.zeros((0, backbone.output_shape[-1]), np.float32)


def train(files: Sequence[CatalogueFile], config: TrainConfig, checkpoint_path: Path | None = None,
          progress: bool = True) -> TrainResult:
    """Train the classifier+embedding network on catalogue files and return it assembled.

    Args:
        files: labelled images (``CatalogueFile.category`` is the label).
        config: backbone, weights, optimizer, learning rate, epochs, augmentation, fine-tuning, ….
        checkpoint_path: where the best weights so far are kept (``*.weights.h5``); a temporary file if None.
        progress: print per-epoch lines and progress bars.

    Example:
        >>> result = train(list_catalogue(Path("demo/catalogue")), TrainConfig(backbone="mobilenet_v2"))
        >>> result.model.save(Path("var/model.keras"))
    """
    size = config.input_size or get_backbone(config.backbone).input_size
    data = labelled_images(files, size, config.validation_split, config.seed)
    return train_on(data, config, checkpoint_path, progress)


def train_on(data: LabelledImages, config: TrainConfig, checkpoint_path: Path | None = None,
             progress: bool = True, feature_cache: dict | None = None) -> TrainResult:
    """Train on already decoded images; ``feature_cache`` shares frozen-backbone features between runs."""
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
    keras.utils.set_random_seed(config.seed)
    spec = get_backbone(config.backbone)
    backbone = spec.create(config.weights, data.images.shape[1])
    backbone.trainable = not config.frozen  # a backbone without pretrained weights learns with the head
    head = build_head(backbone.output_shape[-1], len(data.categories), config.dropout)
    y_train, y_val = data.labels[data.train_idx], data.labels[data.val_idx]

    if config.frozen:
        x_train, y_train_all, x_val = _cached_features(data, config, backbone, spec.preprocessing, progress,
                                                       feature_cache)
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = Path(checkpoint_path or Path(scratch) / "best.weights.h5")
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()  # epochs only: cached features are a one-off cost
        if config.frozen:
            history = _fit(keras.Model(head.input, head.outputs[0]), x_train, y_train_all, x_val, y_val,
                           config, config.learning_rate, config.epochs, checkpoint, progress)
        else:
            history = _fit_images(backbone, head, data, spec.preprocessing, config, config.learning_rate,
                                  config.epochs, checkpoint, progress)
        if config.fine_tune_layers and config.frozen:
            _unfreeze_top(backbone, config.fine_tune_layers)
            tuned = _fit_images(backbone, head, data, spec.preprocessing, config, config.fine_tune_learning_rate,
                                config.fine_tune_epochs, checkpoint, progress, fine_tune=True)
            history = {k: history[k] + tuned.get(k, []) for k in history}
        elapsed = time.perf_counter() - started

    epochs_run = len(history["loss"])
    monitor = "val_loss" if len(data.val_idx) else "loss"
    card = ModelCard(backbone=spec.name, weights=config.weights, input_size=data.images.shape[1],
                     preprocessing=spec.preprocessing, categories=data.categories,
                     version=ModelCard.new_version(spec.name),
                     training={**asdict(config), "images": len(data.labels), "epochs_run": epochs_run,
                               "best_" + monitor: float(min(history[monitor])),
                               **({"best_val_accuracy": float(max(history["val_accuracy"]))}
                                  if len(data.val_idx) else {})})
    backbone.trainable = False
    model = KerasNetwork(assemble(backbone, head), card, config.batch_size)
    return TrainResult(model, history, epochs_run, elapsed / max(epochs_run, 1), data.rejected)


def _cached_features(data: LabelledImages, config: TrainConfig, backbone: keras.Model, preprocessing: str,
                     progress: bool, cache: dict | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training features (plus those of augmented copies) and validation features of a frozen backbone."""
    key = (config.backbone, config.weights, data.images.shape[1], config.augment and config.augment_copies,
           config.seed)
    if cache is not None and key in cache:
        return cache[key]
    features = backbone_features(backbone, data.images, preprocessing, config.batch_size, progress)
    x_train, y_train = [features[data.train_idx]], [data.labels[data.train_idx]]
    if config.augment:
        augment = augmentation(config.seed)
        for _ in range(config.augment_copies):
            x_train.append(backbone_features(backbone, data.images[data.train_idx], preprocessing,
                                             config.batch_size, progress, augment))
            y_train.append(data.labels[data.train_idx])
    result = np.concatenate(x_train), np.concatenate(y_train), features[data.val_idx]
    if cache is not None:
        cache[key] = result
    return result


def _fit(classifier: keras.Model, x_train, y_train, x_val, y_val, config: TrainConfig, learning_rate: float,
         epochs: int, checkpoint: Path, progress: bool) -> dict[str, list[float]]:
    """Fit with EarlyStopping, keeping the best epoch's weights (from the checkpoint) at the end."""
    classifier.compile(optimizer=OPTIMIZERS[config.optimizer](learning_rate=learning_rate),
                       loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    monitor = "val_loss" if len(y_val) else "loss"
    callbacks = [
        keras.callbacks.EarlyStopping(monitor=monitor, mode="min", patience=config.patience),
        keras.callbacks.ModelCheckpoint(str(checkpoint), monitor=monitor, mode="min", save_best_only=True,
                                        save_weights_only=True),
    ]
    if isinstance(x_train, tf.data.Dataset):
        fit_args = {"x": x_train, "shuffle": False}  # the dataset shuffles itself
    else:
        fit_args = {"x": x_train, "y": y_train, "batch_size": config.batch_size, "shuffle": True}
    history = classifier.fit(**fit_args, epochs=epochs, callbacks=callbacks, verbose=2 if progress else 0,
                             validation_data=(x_val, y_val) if len(y_val) else None)
    classifier.load_weights(str(checkpoint))  # the best epoch, not the last one
    return {k: [float(v) for v in vs] for k, vs in history.history.items()}


def _fit_images(backbone: keras.Model, head: keras.Model, data: LabelledImages, preprocessing: str,
                config: TrainConfig, learning_rate: float, epochs: int, checkpoint: Path, progress: bool,
                fine_tune: bool = False) -> dict[str, list[float]]:
    """End-to-end training on images, augmented on the fly when asked."""
    classifier = keras.Model(backbone.input, head(backbone.output)[0])
    augment = augmentation(config.seed) if config.augment else None

    def transform(x, y):
        x = tf.cast(x, tf.float32)
        if augment is not None:
            x = tf.clip_by_value(augment(x, training=True), 0.0, 255.0)
        return PREPROCESSORS[preprocessing](x), y

    train_data = (tf.data.Dataset.from_tensor_slices((data.images[data.train_idx], data.labels[data.train_idx]))
                  .shuffle(len(data.train_idx), seed=config.seed).batch(config.batch_size)
                  .map(transform, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
    val_inputs = preprocess(data.images[data.val_idx], preprocessing)
    if fine_tune:
        # Start from the head stage's best weights; the checkpoint now tracks the fine-tuned model.
        checkpoint = checkpoint.with_name(checkpoint.name.replace(".weights.h5", ".fine-tune.weights.h5"))
    return _fit(classifier, train_data, None, val_inputs, data.labels[data.val_idx], config, learning_rate, epochs,
                checkpoint, progress)


def _unfreeze_top(backbone: keras.Model, layers: int) -> None:
    """Make the top ``layers`` layers trainable; BatchNorm stays frozen so its statistics are kept."""
    backbone.trainable = True
    for layer in backbone.layers[:-layers]:
        layer.trainable = False
    for layer in backbone.layers[-layers:]:
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)

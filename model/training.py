"""Training the network on a catalogue folder (category = folder name).

One network, three objectives: the category (cross-entropy with label smoothing), the product (CosFace over
product identities on the unit-length embedding, ``model.losses``): every training photo is its own identity,
and its positives are augmented views of it (``model.views``); and the frozen backbone's neighbours
(``NeighbourhoodLoss``), so photos unlike the catalogue's are still told apart. A share of the products is kept
out of the instance objective, so the figures can show how products ingested after training are found.

The lower part of a pretrained backbone stays frozen, so its output for a view never changes: it is computed
once per view, through ONNX Runtime, into a cache on disk, cut at the registry's ``split`` layer (after pooling
when ``top_epochs`` is 0). The head trains first on the pooled features of the still-frozen top (an epoch takes
seconds); then the top blocks train with the head at a lower rate, BatchNorm kept frozen, the neighbourhood
objective still reading the frozen top's pooled features: the top learns the catalogue's products without
forgetting what the pretrained network told apart (docs/quality.md measures the trade). A backbone without
pretrained weights trains whole on the cached views.
"""
from __future__ import annotations

import math
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
from PIL import Image
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from catalogue.folder import CatalogueFile, ahead
from config import DEFAULTS
from config.choices import Optimizer
from images.decoding import ImageError, decode_image, to_array
from model.backbones import get_backbone
from model.calibration import min_similarity
from model.card import ModelCard
from model.export import export_onnx
from model.gallery import GALLERY_VIEWS
from model.inference import onnx_session
from model.losses import NOT_AN_IDENTITY, CosFaceLoss, IdentityCosines, NeighbourhoodLoss
from model.network import KerasNetwork, assemble, build_head
from model.preprocessing import PREPROCESSORS, preprocess
from model.views import view

OPTIMIZERS = {Optimizer.ADAM: keras.optimizers.Adam, Optimizer.RMSPROP: keras.optimizers.RMSprop}


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``input_size`` 0 means the backbone's default.

    Attributes:
        learning_rate, epochs: the head stage (cosine decay from ``learning_rate``).
        top_learning_rate, top_epochs: the stage that trains the backbone's top with the head (0: none).
        views: augmented views cached per training image, besides the image itself.
        instance_weight: weight of the instance objective beside the category's.
        instance_holdout: share of products kept out of the instance objective.
        neighbourhood_weight, neighbourhood_temperature: the objective that keeps the pooled features'
            neighbours, in the head stage (0: none).
        validation_split: share of images kept out of training, to report validation figures.
        patience: stop a stage when the validation loss has not improved for this many epochs and keep its best
            epoch (0: run every epoch; the learning rate decays to zero by the last).
        batch_size: images per forward pass while caching; ``train_batch_size``: rows per training step.
    """

    backbone: str = DEFAULTS.backbone
    weights: str = DEFAULTS.weights
    input_size: int = DEFAULTS.input_size
    optimizer: str = Optimizer.ADAM
    learning_rate: float = 1e-3
    epochs: int = 20
    top_learning_rate: float = 3e-4
    top_epochs: int = 2
    views: int = 8
    instance_weight: float = 1.0
    instance_holdout: float = 0.2
    neighbourhood_weight: float = 1.0
    neighbourhood_temperature: float = 0.1
    label_smoothing: float = 0.1
    cosface_scale: float = 24.0
    cosface_margin: float = 0.2
    dropout: float = 0.3
    validation_split: float = 0.0
    patience: int = 0
    batch_size: int = DEFAULTS.batch_size
    train_batch_size: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse a setting no training can run with, before any work (``lookalike train``, ``improve --train``)."""
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
        for name, (whole, fits, what) in _BOUNDS.items():
            value = getattr(self, name)
            number = isinstance(value, int if whole else int | float) and not isinstance(value, bool)
            if not (number and math.isfinite(value) and fits(value)):
                raise ValueError(f"training setting {name} must be {what}, not {value!r}")

    @property
    def frozen(self) -> bool:
        """A pretrained backbone keeps its lower part frozen; a random one trains whole."""
        return self.weights != "none"


# What each number of TrainConfig may be: (whole number only, test, what the test asks for).
_BOUNDS: dict[str, tuple[bool, Callable[[float], bool], str]] = {
    **{name: (True, lambda v: v >= 0, "a whole number of 0 or more")
       for name in ("input_size", "top_epochs", "views", "patience", "seed")},
    **{name: (True, lambda v: v >= 1, "a whole number of 1 or more")
       for name in ("epochs", "batch_size", "train_batch_size")},
    **{name: (False, lambda v: v > 0, "a number above 0")
       for name in ("learning_rate", "top_learning_rate", "neighbourhood_temperature", "cosface_scale")},
    **{name: (False, lambda v: 0 <= v < 1, "a share from 0 up to 1 (not 1)")
       for name in ("instance_holdout", "validation_split", "label_smoothing", "dropout")},
    **{name: (False, lambda v: v >= 0, "a number of 0 or more")
       for name in ("instance_weight", "neighbourhood_weight", "cosface_margin")},
}


@dataclass
class TrainResult:
    model: KerasNetwork
    history: dict[str, list[float]]
    epochs_run: int
    seconds_per_epoch: float
    rejected: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class TrainingSet:
    """The readable training images with their labels, identities and split.

    Attributes:
        pictures: upright RGB pictures at their own size (views are cut from them).
        files: the catalogue file of each picture.
        labels: category index per picture.
        identities: instance identity per picture, ``NOT_AN_IDENTITY`` for the held-out products.
        train_idx, val_idx: the stratified split of pictures.
    """

    pictures: list[Image.Image]
    files: list[CatalogueFile]
    labels: np.ndarray
    identities: np.ndarray
    categories: list[str]
    train_idx: np.ndarray
    val_idx: np.ndarray
    rejected: list[tuple[str, str]]

    @property
    def trained_identities(self) -> int:
        return int(self.identities.max()) + 1 if len(self.identities) else 0

    @property
    def held_out(self) -> list[str]:
        """``category/external_id`` of the products kept out of the instance objective, for the evaluation."""
        return sorted(f.key for f, identity in zip(self.files, self.identities) if identity == NOT_AN_IDENTITY)


def read_pictures(files: Sequence[CatalogueFile], size: int, max_pixels: int = DEFAULTS.max_image_pixels,
                  workers: int = 2) -> tuple[list[Image.Image], list[CatalogueFile], list[tuple[str, str]]]:
    """Decode files, each at most twice the network's input side (a view's crop keeps enough pixels);
    unreadable ones are returned with the reason instead."""
    def load(entry: CatalogueFile) -> Image.Image | str:
        try:
            picture = decode_image(entry.path.read_bytes(), max_pixels, 2 * size).rgb
        except (ImageError, OSError) as e:
            return str(e)
        picture.thumbnail((2 * size, 2 * size))
        return picture

    with ThreadPoolExecutor(workers) as pool:
        loaded = list(pool.map(load, files))
    kept = [(f, p) for f, p in zip(files, loaded) if not isinstance(p, str)]
    rejected = [(str(f.path), p) for f, p in zip(files, loaded) if isinstance(p, str)]
    return [p for _, p in kept], [f for f, _ in kept], rejected


def training_set(files: Sequence[CatalogueFile], config: TrainConfig, size: int) -> TrainingSet:
    pictures, kept, rejected = read_pictures(files, size)
    categories = sorted({f.category for f in kept})
    if len(categories) < 2:
        raise ValueError(f"training needs at least 2 categories with readable images, found {categories}")
    labels = np.array([categories.index(f.category) for f in kept])
    indices = np.arange(len(labels))
    if config.validation_split <= 0:
        train_idx, val_idx = indices, indices[:0]
    else:
        train_idx, val_idx = train_test_split(indices, test_size=config.validation_split, random_state=config.seed,
                                              stratify=labels)
    held_out = np.random.default_rng(config.seed).random(len(labels)) < config.instance_holdout
    held_out[val_idx] = True  # validation images are not trained on at all
    identities = np.full(len(labels), NOT_AN_IDENTITY)
    identities[~held_out] = np.arange(int((~held_out).sum()))
    return TrainingSet(pictures, kept, labels, identities, categories, np.sort(train_idx), np.sort(val_idx), rejected)


def cache_views(pictures: Sequence[Image.Image], views: int, size: int, encode, scratch: Path, seed: int,
                batch_size: int, progress: bool) -> np.ndarray:
    """Every picture and ``views`` augmented views of it, encoded, in an array on disk.

    Returns:
        a memory-mapped array of shape (views + 1, pictures, *encoded shape): index 0 holds the pictures
        themselves. ``encode`` maps a uint8 batch (n, size, size, 3) to what training reads.
    """
    def prepare(job: tuple[int, int]) -> np.ndarray:
        v, start = job
        rng = random.Random(f"{seed}-{v}-{start}")
        batch = pictures[start:start + batch_size]
        return np.stack([to_array(p if v == 0 else view(p, rng), size) for p in batch])

    jobs = [(v, start) for v in range(views + 1) for start in range(0, len(pictures), batch_size)]
    cache = None
    for (v, start), arrays in tqdm(zip(jobs, ahead(prepare, jobs)), total=len(jobs), desc="views",
                                   disable=not progress):
        encoded = encode(arrays)
        if cache is None:
            cache = np.lib.format.open_memmap(scratch / "views.npy", "w+", encoded.dtype,
                                              (views + 1, len(pictures), *encoded.shape[1:]))
        cache[v, start:start + len(encoded)] = encoded
    assert cache is not None, "no pictures to cache"
    return cache


class CachedViews(keras.utils.PyDataset):
    """Shuffled training batches from the view cache: (rows, (one-hot category, identity)), and the rows'
    ``teacher`` features as a third target when given (views + 1, pictures, features)."""

    def __init__(self, cache: np.ndarray, rows: np.ndarray, labels: np.ndarray, identities: np.ndarray,
                 classes: int, batch_size: int, seed: int, shuffle: bool = True, teacher: np.ndarray | None = None):
        super().__init__()
        self.cache, self.labels, self.identities, self.teacher = cache, labels, identities, teacher
        self.classes, self.batch_size, self.shuffle = classes, batch_size, shuffle
        self.rows = rows  # (view, picture) pairs
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(rows)) if shuffle else np.arange(len(rows))

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size)

    def __getitem__(self, index: int):
        chosen = self.rows[np.sort(self.order[index * self.batch_size:(index + 1) * self.batch_size])]
        x = self.cache[chosen[:, 0], chosen[:, 1]].astype(np.float32)
        pictures = chosen[:, 1]
        targets = (np.eye(self.classes, dtype=np.float32)[self.labels[pictures]], self.identities[pictures])
        if self.teacher is None:
            return x, targets
        return x, (*targets, self.teacher[chosen[:, 0], chosen[:, 1]])

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.order = self.rng.permutation(len(self.rows))


def train(files: Sequence[CatalogueFile], config: TrainConfig, progress: bool = True) -> TrainResult:
    """Train the classifier+embedding network on catalogue files and return it assembled.

    Args:
        files: labelled images (``CatalogueFile.category`` is the label).
        config: backbone, weights, views, stages, objectives, ….
        progress: print per-epoch lines and progress bars.

    Example:
        >>> result = train(list_catalogue(Path("demo/catalogue")), TrainConfig(backbone="mobilenet_v2"))
        >>> result.model.save(Path("var/model.keras"))
    """
    keras.utils.set_random_seed(config.seed)
    spec = get_backbone(config.backbone)
    size = config.input_size or spec.input_size
    backbone = spec.create(config.weights, size)  # first: weights that cannot be had stop it before the reading
    data = training_set(files, config, size)
    # Where the cache is cut: below the top blocks when they will train, else after pooling (the head alone trains).
    split = (spec.split if config.top_epochs else backbone.layers[-1].name) if config.frozen else ""
    head = build_head(backbone.output_shape[-1], len(data.categories), config.dropout)
    cosines = IdentityCosines(max(data.trained_identities, 1), name="identity_cosines")(head.outputs[1])
    objectives = keras.Model(head.input, [head.outputs[0], cosines], name="objectives")

    with tempfile.TemporaryDirectory(prefix="lookalike-train-") as scratch:
        if split:
            lower = keras.Model(backbone.input, backbone.get_layer(split).output, name="lower")
            top = keras.Model(backbone.get_layer(split).output, backbone.output, name="top") if config.top_epochs \
                else None
            graph = Path(scratch) / "lower.onnx"
            export_onnx(lower, graph, output_names=("features",))
            session = onnx_session(graph)

            def encode(arrays):  # the frozen lower part, once per view; half precision halves the cache
                return session.run(["features"], {"image": preprocess(arrays, spec.preprocessing)})[0].astype(
                    np.float16)
        else:
            _unfreeze(backbone)
            top = _preprocessed(backbone, spec.preprocessing)  # the whole network trains on the cached pixels

            def encode(arrays):
                return arrays

        cache = cache_views(data.pictures, config.views, size, encode, Path(scratch), config.seed,
                            config.batch_size, progress)
        started = time.perf_counter()
        if split:
            pooled = _pooled(top, cache, config)
            history = _fit_head(objectives, pooled, data, config, progress)
            if config.top_epochs:
                _unfreeze(top)
                tuned = _fit_stack(top, objectives, cache, data, config, config.top_learning_rate,
                                   config.top_epochs, progress, pooled)
                history = {k: history[k] + tuned.get(k, []) for k in history}
        else:
            history = _fit_stack(top, objectives, cache, data, config, config.learning_rate, config.epochs, progress)
        elapsed = time.perf_counter() - started
        threshold = min_similarity(_embeddings(head, top, cache[0], config.train_batch_size), data.labels)

    epochs_run = len(history["loss"])
    backbone.trainable = False
    card = ModelCard(backbone=spec.name, weights=config.weights, input_size=size, preprocessing=spec.preprocessing,
                     categories=data.categories, version=ModelCard.new_version(spec.name), min_similarity=threshold,
                     gallery_views=GALLERY_VIEWS,
                     training={**asdict(config), "images": len(data.labels), "epochs_run": epochs_run,
                               "instance_identities": data.trained_identities, "instance_held_out": data.held_out,
                               **{f"final_{k}": v[-1] for k, v in history.items()}})
    model = KerasNetwork(assemble(backbone, head), card, config.batch_size)
    return TrainResult(model, history, epochs_run, elapsed / max(epochs_run, 1), data.rejected)


def _embeddings(head: keras.Model, top: keras.Model | None, pictures: np.ndarray, batch_size: int) -> np.ndarray:
    """The trained network's embeddings of the cached pictures themselves, from where the cache was cut: through
    ``top`` (None: the cache holds the head's input), then the head; batched."""
    batches = (pictures[start:start + batch_size].astype(np.float32) for start in range(0, len(pictures), batch_size))
    return np.concatenate([head.predict_on_batch(batch if top is None else top.predict_on_batch(batch))[1]
                           for batch in batches])


def _rows(data: TrainingSet, views: int) -> np.ndarray:
    """(view, picture) pairs of the training pictures: the pictures themselves and every view of them."""
    return np.array([(v, i) for v in range(views + 1) for i in data.train_idx], dtype=np.int64).reshape(-1, 2)


def _compile(model: keras.Model, config: TrainConfig, learning_rate: float, steps: int,
             neighbourhood: NeighbourhoodLoss | None = None) -> None:
    """Category, product and, given ``neighbourhood`` (for a model with a third output, the embedding), the
    neighbourhood objective."""
    losses = [keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
              CosFaceLoss(config.cosface_scale, config.cosface_margin)]
    weights, metrics = [1.0, config.instance_weight], [["accuracy"], []]
    if neighbourhood:
        losses.append(neighbourhood)
        weights.append(config.neighbourhood_weight)
        metrics.append([])
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, max(steps, 1))
    model.compile(optimizer=OPTIMIZERS[Optimizer(config.optimizer)](learning_rate=schedule), loss=losses,
                  loss_weights=weights, metrics=metrics)


def _callbacks(data: TrainingSet, config: TrainConfig) -> list[keras.callbacks.Callback]:
    if not len(data.val_idx) or not config.patience:
        return []
    return [keras.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=config.patience,
                                          restore_best_weights=True)]


def _validation(features: np.ndarray, data: TrainingSet) -> tuple | None:
    """The validation pictures themselves (no views), with their targets; none when there is no split."""
    if not len(data.val_idx):
        return None
    classes = len(data.categories)
    return (features, (np.eye(classes, dtype=np.float32)[data.labels[data.val_idx]],
                       data.identities[data.val_idx]))


def _pooled(top: keras.Model | None, cache: np.ndarray, config: TrainConfig) -> np.ndarray:
    """The frozen backbone's pooled features of every cached row, (views + 1, pictures, features): the head
    stage's input and, in both stages, the neighbourhood objective's target. The cache itself when it holds them
    (``top`` None)."""
    if top is None:
        return np.asarray(cache, dtype=np.float32)
    pooled = np.concatenate([top.predict_on_batch(cache[v, i:i + config.train_batch_size].astype(np.float32))
                             for v in range(config.views + 1)
                             for i in range(0, cache.shape[1], config.train_batch_size)])
    return pooled.reshape(config.views + 1, cache.shape[1], -1)


def _neighbourhood(pooled: np.ndarray, data: TrainingSet, config: TrainConfig) -> NeighbourhoodLoss | None:
    """The neighbourhood objective, centred on the training pictures' pooled features (None when switched off)."""
    if config.neighbourhood_weight <= 0:
        return None
    return NeighbourhoodLoss(pooled[0, data.train_idx].mean(axis=0), config.neighbourhood_temperature)


def _with_embedding(objectives: keras.Model) -> keras.Model:
    """``objectives`` with the (unit-length) embedding as a third output, the neighbourhood objective's."""
    embedding = keras.layers.Identity(name="neighbourhood")(objectives.get_layer("embedding_l2").output)
    return keras.Model(objectives.input, [*objectives.outputs, embedding], name=objectives.name)


def _fit_head(objectives: keras.Model, pooled: np.ndarray, data: TrainingSet,
              config: TrainConfig, progress: bool) -> dict[str, list[float]]:
    """The head alone, on the frozen backbone's pooled features of every cached row."""
    rows = _rows(data, config.views)
    features = pooled[rows[:, 0], rows[:, 1]]
    pictures = rows[:, 1]
    targets: tuple[np.ndarray, ...] = (np.eye(len(data.categories), dtype=np.float32)[data.labels[pictures]],
                                       data.identities[pictures])
    validation = _validation(pooled[0, data.val_idx], data)
    steps = math.ceil(len(rows) / config.train_batch_size) * config.epochs
    neighbourhood = _neighbourhood(pooled, data, config)
    if neighbourhood:  # the pooled features are both the input and the neighbourhood's target
        objectives = _with_embedding(objectives)
        targets += (features,)
        if validation:
            validation = (validation[0], (*validation[1], validation[0]))
    _compile(objectives, config, config.learning_rate, steps, neighbourhood)
    history = objectives.fit(features, targets, batch_size=config.train_batch_size, epochs=config.epochs,
                             shuffle=True, verbose=2 if progress else 0, validation_data=validation,
                             callbacks=_callbacks(data, config))
    return _floats(history)


def _fit_stack(top: keras.Model, objectives: keras.Model, cache: np.ndarray, data: TrainingSet, config: TrainConfig,
               learning_rate: float, epochs: int, progress: bool,
               pooled: np.ndarray | None = None) -> dict[str, list[float]]:
    """The trainable part of the backbone with the head, on the cached rows. Given the frozen backbone's
    ``pooled`` features, the neighbourhood objective keeps the tuned top's neighbours close to the frozen one's:
    the top learns the catalogue's products without forgetting what tells other photos apart."""
    neighbourhood = None if pooled is None else _neighbourhood(pooled, data, config)
    teacher = pooled if neighbourhood else None
    if neighbourhood:
        objectives = _with_embedding(objectives)
    inputs = keras.Input(cache.shape[2:], name="cached")
    # Named like the objectives' own outputs, so both stages' histories share their keys.
    stack = keras.Model(inputs, [keras.layers.Identity(name=name)(output) for name, output in
                                 zip(objectives.output_names, objectives(top(inputs)))], name="stack")
    batches = CachedViews(cache, _rows(data, config.views), data.labels, data.identities, len(data.categories),
                          config.train_batch_size, config.seed, teacher=teacher)
    _compile(stack, config, learning_rate, len(batches) * epochs, neighbourhood)
    validation = _validation(cache[0, data.val_idx].astype(np.float32), data)
    if validation and teacher is not None:
        validation = (validation[0], (*validation[1], teacher[0, data.val_idx]))
    history = stack.fit(batches, epochs=epochs, verbose=2 if progress else 0, validation_data=validation,
                        callbacks=_callbacks(data, config))
    return _floats(history)


def _preprocessed(network: keras.Model, preprocessing: str) -> keras.Model:
    """``network`` behind its preprocessing, for training on cached 0–255 views."""
    pixels = keras.Input(network.input_shape[1:], name="pixels")
    prepared = keras.layers.Lambda(PREPROCESSORS[preprocessing], name="preprocessing")(pixels)
    return keras.Model(pixels, network(prepared), name="preprocessed")


def _unfreeze(network: keras.Model) -> None:
    """Make ``network`` trainable except its BatchNorm layers, which keep their (folded) statistics."""
    network.trainable = True
    for layer in network.layers:  # one by one: a sub-model cut out of a frozen backbone does not pass it on
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)


def _floats(history: keras.callbacks.History) -> dict[str, list[float]]:
    return {k: [float(v) for v in vs] for k, vs in history.history.items()}

"""The thesis's model comparison: backbones × optimizers × learning rates, trained and tested alike.

Every run trains with EarlyStopping and a best checkpoint, and is tested on a separate labelled folder.
Frozen-backbone features are computed once per backbone and shared by all of its runs.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ingest.catalogue import CatalogueFile
from model.backbones import get_backbone
from model.training import TrainConfig, labelled_images, load_images, train_on


@dataclass(frozen=True)
class GridRun:
    backbone: str
    weights: str
    optimizer: str
    learning_rate: float
    epochs_run: int
    best_epoch: int
    train_accuracy: float
    val_accuracy: float
    test_accuracy: float
    seconds_per_epoch: float
    note: str


def run_grid(train_files: Sequence[CatalogueFile], test_files: Sequence[CatalogueFile], base: TrainConfig,
             backbones: Sequence[tuple[str, str]], optimizers: Sequence[str], learning_rates: Sequence[float],
             out: Path, note: str = "", progress: bool = True) -> list[GridRun]:
    """Train and test every combination; write ``results.json``, ``results.md`` and one curve picture per run.

    Args:
        backbones: (name, weights) pairs, weights as for ``TrainConfig.weights``.
        base: everything else of the training configuration (epochs, patience, augmentation, …).
        note: said in every row (for example "small run: 64 px, 10 categories").
    """
    from evaluation.figures import training_curves

    out.mkdir(parents=True, exist_ok=True)
    runs: list[GridRun] = []
    for name, weights in backbones:
        size = base.input_size or get_backbone(name).input_size
        data = labelled_images(train_files, size, base.validation_split, base.seed)
        test_images, kept, _ = load_images(test_files, size)
        test_labels = np.array([data.categories.index(f.category) for f in kept])
        cache: dict = {}
        for optimizer, rate in itertools.product(optimizers, learning_rates):
            config = replace(base, backbone=name, weights=weights, optimizer=optimizer, learning_rate=rate,
                             input_size=size)
            tag = f"{name}-{optimizer}-{rate:g}"
            result = train_on(data, config, out / "checkpoints" / f"{tag}.weights.h5", progress, cache)
            predicted = result.model.predict(test_images).probabilities.argmax(axis=1)
            history = result.history
            best = int(np.argmin(history["val_loss"])) if "val_loss" in history else len(history["loss"]) - 1
            runs.append(GridRun(
                backbone=name, weights="imagenet (offline)" if weights not in ("none", "imagenet") else weights,
                optimizer=optimizer, learning_rate=rate, epochs_run=result.epochs_run, best_epoch=best + 1,
                train_accuracy=history["accuracy"][best], val_accuracy=history.get("val_accuracy", [np.nan])[best],
                test_accuracy=float((predicted == test_labels).mean()), seconds_per_epoch=result.seconds_per_epoch,
                note=note))
            training_curves(history, out / f"curves-{tag}.png", tag)
            (out / "results.json").write_text(json.dumps([asdict(r) for r in runs], indent=2) + "\n")
            (out / "results.md").write_text(table(runs))
    return runs


def table(runs: Sequence[GridRun]) -> str:
    lines = ["| backbone | weights | optimizer | learning rate | epochs (best) | train acc | val acc | test acc "
             "| s/epoch | note |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.backbone} | {r.weights} | {r.optimizer} | {r.learning_rate:g} | {r.epochs_run} ({r.best_epoch}) "
              f"| {r.train_accuracy:.3f} | {r.val_accuracy:.3f} | {r.test_accuracy:.3f} | {r.seconds_per_epoch:.2f} "
              f"| {r.note} |" for r in runs]
    return "\n".join(lines) + "\n"

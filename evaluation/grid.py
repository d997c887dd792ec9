"""The model comparison: backbones × optimizers × learning rates, trained and tested alike.

Every run trains with the default recipe (``model.training``) apart from what the grid varies, keeps its
best epoch by validation loss, and is tested on a separate labelled folder.
"""
from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from catalogue.folder import CatalogueFile
from evaluation.tables import markdown_table
from images.decoding import to_array
from model.backbones import get_backbone
from model.training import TrainConfig, read_pictures, train


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
        base: everything else of the training configuration (epochs, patience, views, …).
        note: said in every row (for example "small run: 64 px, 10 categories").
    """
    from evaluation.figures import training_curves

    # Every run's configuration first: a bad name or value is refused before hours of training, not after.
    grid = {(name, weights): [replace(base, backbone=name, weights=weights, optimizer=optimizer, learning_rate=rate,
                                      input_size=base.input_size or get_backbone(name).input_size)
                              for optimizer, rate in itertools.product(optimizers, learning_rates)]
            for name, weights in backbones}
    out.mkdir(parents=True, exist_ok=True)
    runs: list[GridRun] = []
    for (name, weights), configs in grid.items():
        size = configs[0].input_size
        pictures, kept, _ = read_pictures(test_files, size)
        test_images = np.stack([to_array(p, size) for p in pictures])
        for config in configs:
            optimizer, rate = config.optimizer, config.learning_rate
            tag = f"{name}-{optimizer}-{rate:g}"
            result = train(train_files, config, progress)
            test_labels = np.array([result.model.categories.index(f.category) for f in kept])
            predicted = result.model.predict(test_images).probabilities.argmax(axis=1)
            history = result.history
            best = int(np.argmin(history["val_loss"])) if "val_loss" in history else len(history["loss"]) - 1
            runs.append(GridRun(
                backbone=name, weights="imagenet (offline)" if weights not in ("none", "imagenet") else weights,
                optimizer=optimizer, learning_rate=rate, epochs_run=result.epochs_run, best_epoch=best + 1,
                train_accuracy=history["probabilities_accuracy"][best],
                val_accuracy=history.get("val_probabilities_accuracy", [np.nan])[best],
                test_accuracy=float((predicted == test_labels).mean()), seconds_per_epoch=result.seconds_per_epoch,
                note=note))
            training_curves(history, out / f"curves-{tag}.png", tag)
            (out / "results.json").write_text(json.dumps([asdict(r) for r in runs], indent=2) + "\n")
            (out / "results.md").write_text(table(runs))
    return runs


def table(runs: Sequence[GridRun]) -> str:
    return markdown_table(["backbone", "weights", "optimizer", "learning rate", "epochs (best)", "train acc", "val acc",
                           "test acc", "s/epoch", "note"],
                          [(r.backbone, r.weights, r.optimizer, f"{r.learning_rate:g}",
                            f"{r.epochs_run} ({r.best_epoch})", f"{r.train_accuracy:.3f}", f"{r.val_accuracy:.3f}",
                            f"{r.test_accuracy:.3f}", f"{r.seconds_per_epoch:.2f}", r.note) for r in runs]) + "\n"

"""The model every benchmark serves: MobileNetV2 at 224 px on the offline ImageNet weights.

Its head is trained quickly on a few images per category (no augmented views, the backbone frozen, a few
epochs): speed, not accuracy, is measured here.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from catalogue.folder import CatalogueFile
from model.training import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "demo" / "weights" / "mobilenet_v2_imagenet_1.0_224_notop.weights.h5"


def train_served_model(files: list[CatalogueFile], per_category: int, path: Path, batch_size: int) -> None:
    """Train the head on the first ``per_category`` files of each category and save it at ``path``."""
    by_category: dict[str, list[CatalogueFile]] = defaultdict(list)
    for entry in files:
        by_category[entry.category].append(entry)
    subset = [entry for group in by_category.values() for entry in group[:per_category]]
    config = TrainConfig(backbone="mobilenet_v2", weights=str(WEIGHTS), input_size=224, epochs=5, top_epochs=0,
                         views=0, validation_split=0.0, batch_size=batch_size)
    train(subset, config, progress=False).model.save(path)

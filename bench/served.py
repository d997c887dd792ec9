"""The model every benchmark serves: MobileNetV2 at 224 px on the offline ImageNet weights.

Its head is trained quickly on a few images per category (no augmented views, the backbone frozen, a few
epochs): speed, not accuracy, is measured here.
"""
from __future__ import annotations

from pathlib import Path

from catalogue.folder import CatalogueFile, per_category
from config.settings import DEMO_WEIGHTS
from model.training import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent


def train_served_model(files: list[CatalogueFile], count: int, path: Path, batch_size: int) -> None:
    """Train the head on the first ``count`` files of each category and save it at ``path``."""
    config = TrainConfig(backbone="mobilenet_v2", weights=str(DEMO_WEIGHTS), input_size=224, epochs=5, top_epochs=0,
                         views=0, validation_split=0.0, batch_size=batch_size)
    train(per_category(files, count), config, progress=False).model.save(path)

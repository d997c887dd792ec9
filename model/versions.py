"""Saved models kept side by side, one folder per version: ``MODELS_DIR/<version>/model.keras`` (+ ``.onnx``,
``.meta.json``).

Every serving process loads the active version from here when it is activated, so a model's files must
stay put for as long as the version is registered; ``lookalike train`` may overwrite its own output at
any time, so registering a model copies its files in.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from model.card import ModelCard, card_path, onnx_path

MODEL_FILE = "model.keras"


class ModelFiles:
    """The folder of saved models by version.

    Args:
        root: the folder (``LOOKALIKE_MODELS_DIR``).
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, version: str) -> Path:
        """The ``.keras`` path of a version (its card and ONNX graph beside it)."""
        return self.root / version / MODEL_FILE

    def has(self, version: str) -> bool:
        path = self.path(version)
        return card_path(path).is_file() and onnx_path(path).is_file()

    def add(self, model_path: Path) -> ModelCard:
        """Copy a saved model's files in under its version; returns its card.

        The files land in a temporary folder first and are renamed into place, so a serving process never
        sees half a model.
        """
        card = ModelCard.read(model_path)
        if not onnx_path(model_path).is_file() or not card.onnx_sha256:
            raise FileNotFoundError(f"the model at {model_path} has no ONNX graph: run 'lookalike export' first")
        if self.has(card.version):
            return card
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".adding-", dir=self.root))
        target = staging / MODEL_FILE
        for source, copy in ((model_path, target), (onnx_path(model_path), onnx_path(target)),
                             (card_path(model_path), card_path(target))):
            if Path(source).is_file():  # the .keras file is needed only to serve on Keras
                shutil.copy2(source, copy)
        self.remove(card.version)  # what an interrupted copy left
        staging.rename(self.root / card.version)
        return card

    def remove(self, version: str) -> None:
        shutil.rmtree(self.root / version, ignore_errors=True)

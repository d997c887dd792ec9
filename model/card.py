"""The model card: the ``.meta.json`` beside a saved model that says how to use it without guessing.

A saved model is three files side by side: ``model.keras`` (the training runtime's network),
``model.onnx`` (the same network for serving) and ``model.meta.json`` (this card).
"""
from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

EMBEDDING_DIM = 512


@dataclass(frozen=True)
class ModelCard:
    """What a saved model was built on and what its outputs mean.

    Attributes:
        onnx_sha256: checksum of the ONNX graph exported from this very ``.keras`` file; empty for a model
            saved before serving moved to ONNX Runtime (``lookalike export`` adds it).
        min_similarity: the weak-match threshold (percent) calibrated on the training pictures
            (``model.calibration``); None for a model trained before it was.
        gallery_views: augmented views of each catalogue photo in its stored vector (``model.gallery``); 0 for a
            model trained before they were, whose vectors stay its photos' embeddings alone.
    """

    backbone: str
    weights: str
    input_size: int
    preprocessing: str
    categories: list[str]
    embedding_dim: int = EMBEDDING_DIM
    version: str = ""
    training: dict = field(default_factory=dict)
    onnx_sha256: str = ""
    min_similarity: float | None = None
    gallery_views: int = 0

    @staticmethod
    def new_version(backbone: str) -> str:
        return f"{backbone}-{uuid.uuid4().hex[:12]}"

    def write(self, model_path: Path) -> None:
        card_path(model_path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, model_path: Path) -> ModelCard:
        path = card_path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"no trained model at {model_path} (no {path.name}): run 'lookalike train' first")
        return cls(**json.loads(path.read_text()))


def card_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".meta.json")


def onnx_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".onnx")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

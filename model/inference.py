"""Running a saved network: one interface, two runtimes.

ONNX Runtime serves by default (about 3× TensorFlow's CPU throughput, a fraction of its memory); Keras
stays the training runtime and can be chosen for serving with a setting. This module imports neither
TensorFlow nor Keras, so a serving process (web app, ``lookalike search``, ``ingest``) never loads them.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from config import DEFAULTS
from config.choices import Runtime
from images.decoding import to_array
from model.card import ModelCard, file_sha256, onnx_path
from model.preprocessing import preprocess

INPUT_NAME = "image"
OUTPUT_NAMES = ("probabilities", "embedding")
# The predicted class's Grad-CAM over the last feature map (model.activation); graphs exported before it lack it.
ACTIVATION_MAP = "activation_map"


@dataclass(frozen=True)
class Prediction:
    probabilities: np.ndarray  # (n, categories), rows sum to 1
    embeddings: np.ndarray  # (n, embedding_dim), unit length
    activation_maps: np.ndarray | None = None  # (n, h, w), ≥ 0; None from a graph without the map


class Network:
    """A trained network ready to serve: batched forward passes on uint8 RGB arrays.

    Subclasses provide ``_forward`` (one preprocessed batch → probabilities, embeddings, activation maps or None).
    """

    def __init__(self, card: ModelCard, batch_size: int = DEFAULTS.batch_size):
        self.card = card
        self.batch_size = batch_size

    @property
    def version(self) -> str:
        return self.card.version

    @property
    def categories(self) -> list[str]:
        return self.card.categories

    @property
    def min_similarity(self) -> float | None:
        """The weak-match threshold calibrated when the model was trained (None for older models)."""
        return self.card.min_similarity

    @property
    def input_size(self) -> int:
        return self.card.input_size

    def arrays(self, pictures: Sequence[Image.Image]) -> np.ndarray:
        """RGB pictures as this network's uint8 input batch (n, size, size, 3)."""
        return np.stack([to_array(p, self.input_size) for p in pictures])

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        return preprocess(images, self.card.preprocessing)

    def predict(self, images: np.ndarray) -> Prediction:
        """Probabilities and embeddings for a uint8 batch of shape (n, size, size, 3)."""
        return self.predict_preprocessed(self.preprocess(images))

    def predict_preprocessed(self, inputs: np.ndarray) -> Prediction:
        probabilities, embeddings, maps = [], [], []
        for start in range(0, len(inputs), self.batch_size):
            p, e, m = self._forward(inputs[start:start + self.batch_size])
            probabilities.append(p)
            embeddings.append(e)
            if m is not None:
                maps.append(m)
        if not probabilities:
            return Prediction(np.zeros((0, len(self.categories)), np.float32),
                              np.zeros((0, self.card.embedding_dim), np.float32))
        return Prediction(np.concatenate(probabilities), np.concatenate(embeddings),
                          np.concatenate(maps) if maps else None)

    def warm_up(self) -> None:
        """Run one image now, so the first shopper does not pay for the runtime's lazy set-up."""
        self.predict(np.zeros((1, self.input_size, self.input_size, 3), np.uint8))

    def _forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        raise NotImplementedError


class OnnxNetwork(Network):
    """The network on ONNX Runtime; outputs are looked up by name, never by position."""

    def __init__(self, session, card: ModelCard, batch_size: int = DEFAULTS.batch_size):
        super().__init__(card, batch_size)
        self.session = session
        self.outputs = OUTPUT_NAMES + ((ACTIVATION_MAP,) if ACTIVATION_MAP in
                                       {o.name for o in session.get_outputs()} else ())

    def _forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        probabilities, embeddings, *maps = self.session.run(self.outputs, {INPUT_NAME: batch})
        return probabilities, embeddings, maps[0] if maps else None


def default_threads() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def onnx_session(path: Path, threads: int = DEFAULTS.threads, arena: bool = True):
    """An ONNX Runtime CPU session: full graph optimisation, ``threads`` intra-op threads (0: every core
    the process may use), and no busy-waiting, so idle serving threads leave the cores to other work.

    ``arena`` keeps ONNX Runtime's memory arena: batches of 32 run about 1.5× faster with it, but it holds on
    to its peak (about 360 MiB after one batch of 32 at 224 px), so a serving process, which runs single
    images, goes without it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = arena
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_network(model_path: Path, runtime: str = DEFAULTS.runtime, threads: int = DEFAULTS.threads,
                 batch_size: int = DEFAULTS.batch_size,
                 arena: bool = True) -> Network:
    """Load a saved model for inference, once per process.

    Args:
        model_path: the ``.keras`` file; its card and ONNX graph sit beside it.
        runtime: ``onnx`` (default) or ``keras`` (imports TensorFlow).
        threads: intra-op threads of ONNX Runtime; 0 means the cores this process may use.
        arena: keep ONNX Runtime's memory arena (see ``onnx_session``): on for batch work, off for serving.

    Raises:
        FileNotFoundError: no trained model, or no ONNX graph for it.
        ValueError: unknown runtime, or an ONNX graph that is not the one exported from this model.
    """
    if runtime not in Runtime.values():
        raise ValueError(f"unknown runtime {runtime!r}; choose one of: {', '.join(Runtime)}")
    model_path = Path(model_path)
    card = ModelCard.read(model_path)
    if runtime == Runtime.KERAS:
        from model.network import KerasNetwork

        return KerasNetwork.load(model_path, batch_size)
    graph = onnx_path(model_path)
    if not graph.is_file() or not card.onnx_sha256:
        raise FileNotFoundError(f"no ONNX graph for the model at {model_path}: run 'lookalike export' "
                                "(models trained before serving moved to ONNX Runtime lack one)")
    if file_sha256(graph) != card.onnx_sha256:
        raise ValueError(f"{graph} is not the graph exported from {model_path.name} (checksum differs): "
                         "run 'lookalike export' to export it again")
    return OnnxNetwork(onnx_session(graph, threads, arena), card, batch_size)

"""Exporting a trained Keras network to ONNX, the serving runtime's format.

Keras exports the graph itself (through tf2onnx, needed only here); the graph's tensors are then renamed
so that callers look the outputs up by name (``image`` in; ``probabilities`` and ``embedding`` out)
instead of relying on the order tf2onnx happens to give them; ``model.network`` adds ``activation_map``.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import keras
import onnx

from model.card import file_sha256
from model.inference import INPUT_NAME, OUTPUT_NAMES


def export_onnx(network: keras.Model, path: Path, output_names: tuple[str, ...] = OUTPUT_NAMES) -> str:
    """Write ``network`` (image batch → its outputs, in order) as an ONNX graph with a dynamic batch axis.

    Returns:
        the file's SHA-256, recorded in the model card so a serving process can tell a stale or
        damaged graph from the one that belongs to the ``.keras`` file.
    """
    path = Path(path)
    spec = keras.InputSpec(shape=(None, *network.input_shape[1:]), dtype="float32")
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "raw.onnx"
        network.export(str(raw), format="onnx", input_signature=[spec], verbose=False)
        graph = onnx.load(str(raw))
    _rename(graph.graph, {graph.graph.input[0].name: INPUT_NAME,
                          **{out.name: name for out, name in zip(graph.graph.output, output_names, strict=True)}})
    onnx.checker.check_model(graph)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(graph, str(path))
    return file_sha256(path)


def _rename(graph: onnx.GraphProto, names: dict[str, str]) -> None:
    for node in graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]
    for value in (*graph.input, *graph.output, *graph.value_info):
        value.name = names.get(value.name, value.name)

"""Benchmark 1: the bare forward pass, its FLOPs counted from the TensorFlow graph, and batch-1 paths."""
from __future__ import annotations

import statistics
import time

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from model.network import EmbeddingModel


def graph_flops(model: EmbeddingModel) -> int:
    """FLOPs of one image through the whole network, as TensorFlow's profiler counts them in the frozen graph
    (a multiply-add is two FLOPs)."""
    size = model.input_size
    concrete = tf.function(lambda x: model.network(x, training=False)).get_concrete_function(
        tf.TensorSpec((1, size, size, 3), tf.float32))
    graph = convert_variables_to_constants_v2(concrete).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder(
        tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()).with_empty_output().build()
    return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops


def median_seconds(call, repeats: int) -> float:
    """Median wall time of ``call()`` after one untimed warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _inputs(model: EmbeddingModel, batch: int) -> np.ndarray:
    pixels = np.random.default_rng(0).integers(0, 256, (batch, model.input_size, model.input_size, 3), np.uint8)
    return model.preprocess(pixels)


def throughput(model: EmbeddingModel, batch_sizes: tuple[int, ...], images: int) -> dict[int, float]:
    """Images per second of the served forward pass (preprocessed input → both outputs) per batch size,
    from the median of repeated passes over about ``images`` images."""
    rates = {}
    for batch in batch_sizes:
        inputs = _inputs(model, batch)
        forward = EmbeddingModel(model.network, model.card, batch_size=batch)
        rates[batch] = batch / median_seconds(lambda: forward.predict_preprocessed(inputs),
                                              max(3, images // batch))
    return rates


def batch_one_paths(model: EmbeddingModel, repeats: int) -> dict[str, float]:
    """Seconds per single-image forward pass: the served compiled function against Keras's ``predict``
    and an XLA-compiled function."""
    inputs = _inputs(model, 1)
    xla = tf.function(lambda x: model.network(x, training=False), jit_compile=True)
    tensor = tf.constant(inputs)
    return {
        "tf.function (served)": median_seconds(lambda: model.predict_preprocessed(inputs), repeats),
        "Keras Model.predict": median_seconds(lambda: model.network.predict(inputs, verbose=0), repeats),
        "tf.function + XLA": median_seconds(lambda: [t.numpy() for t in xla(tensor)], max(3, repeats // 4)),
    }

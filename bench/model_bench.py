"""The bare forward pass on both runtimes, its FLOPs counted from the TensorFlow graph."""
from __future__ import annotations

import statistics
import time
from functools import partial

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from model.inference import Network
from model.network import KerasNetwork


def graph_flops(model: KerasNetwork) -> int:
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


def _inputs(model: Network, batch: int) -> np.ndarray:
    pixels = np.random.default_rng(0).integers(0, 256, (batch, model.input_size, model.input_size, 3), np.uint8)
    return model.preprocess(pixels)


def throughput(model: Network, batch_sizes: tuple[int, ...], images: int) -> dict[int, float]:
    """Images per second of the forward pass (preprocessed input → both outputs) per batch size, from the
    median of repeated passes over about ``images`` images. ``model.batch_size`` must be the largest size."""
    rates = {}
    for batch in batch_sizes:
        inputs = _inputs(model, batch)
        rates[batch] = batch / median_seconds(partial(model.predict_preprocessed, inputs), max(3, images // batch))
    return rates


def batch_one(model: Network, repeats: int) -> float:
    """Seconds per single-image forward pass."""
    inputs = _inputs(model, 1)
    return median_seconds(lambda: model.predict_preprocessed(inputs), repeats)


def keras_predict_one(model: KerasNetwork, repeats: int) -> float:
    """Seconds per single image through Keras's ``Model.predict``, the per-image way of the baselines."""
    inputs = _inputs(model, 1)
    return median_seconds(lambda: model.network.predict(inputs, verbose=0), repeats)

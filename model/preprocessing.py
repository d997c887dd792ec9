"""Each backbone's input preprocessing, without TensorFlow or Keras.

The serving process must not import the training stack, so the Keras applications' ``preprocess_input``
modes are written out here once; they work on NumPy arrays and on TensorFlow tensors alike, so training
(inside a traced function) and serving share them. A test checks them against Keras's own functions.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

# ImageNet channel means in BGR order, subtracted by the "caffe" mode of Keras's preprocess_input.
_CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def caffe(x):
    """RGB → BGR, then each channel zero-centred by the ImageNet mean (ResNet50, VGG16)."""
    return x[..., ::-1] - _CAFFE_BGR_MEAN


def tf_mode(x):
    """Pixels scaled to [-1, 1] (MobileNetV2)."""
    return x / 127.5 - 1.0


def unit(x):
    """Pixels scaled to [0, 1] (the small CNN trained from scratch)."""
    return x / 255.0


PREPROCESSORS: dict[str, Callable] = {
    "resnet50": caffe,
    "vgg16": caffe,
    "mobilenet_v2": tf_mode,
    "unit": unit,
}


def preprocess(images: np.ndarray, preprocessing: str) -> np.ndarray:
    """Map a uint8 NHWC batch to the network's float32 input."""
    return np.ascontiguousarray(PREPROCESSORS[preprocessing](images.astype(np.float32)), dtype=np.float32)

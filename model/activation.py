"""The class activation map: where in the photo the network found the evidence for the category it predicts.

The head is not linear (Dense → ReLU → BatchNorm → Dense → BatchNorm → softmax), so the plain CAM (the last
convolutional feature map weighted by one layer's class weights) does not exist for it. Grad-CAM does: each
channel of the feature map is weighted by the gradient of the predicted class's score (the logit, before the
softmax) with respect to that channel's pooled value. In inference the head is piecewise linear (BatchNorm and
Dropout are affine, ReLU is linear on either side of 0), so that gradient is exact and has a closed form: the
class's weights carried back through the layers, with the ReLUs that were off at this photo's pooled features
masked out. It is written out here in Keras operations, so it becomes part of the exported ONNX graph and the
serving process (which never loads TensorFlow) gets the map from the same forward pass, at the cost of a
(7 × 7 × 1,280) · 1,280 product. Each map cell is then that location's share of the class score: the cells'
mean, before the ReLU that keeps only the positive evidence, is the score's input-dependent part.
"""
from __future__ import annotations

import keras
from keras import ops

from model.inference import ACTIVATION_MAP


class GradCam(keras.layers.Layer):
    """(feature map, pooled features, probabilities) → the predicted class's Grad-CAM, (n, h, w), ≥ 0.

    Reads the head's current weights at every call, so it follows a head that is still training.
    """

    def __init__(self, head: keras.Model, **kwargs):
        super().__init__(**kwargs)
        dense = [layer for layer in head.layers if isinstance(layer, keras.layers.Dense)]
        norms = [layer for layer in head.layers if isinstance(layer, keras.layers.BatchNormalization)]
        if len(dense) != 3 or len(norms) != 2:
            names = [layer.name for layer in head.layers]
            raise ValueError(f"expected the Lookalike head (3 Dense, 2 BatchNorm), got {names}")
        self.hidden, self.embedding, self.classifier = dense
        self.norms = norms

    def call(self, feature_map, pooled, probabilities):
        # Plain ops only (max and where, not Keras's argmax, whose sign-of-zero handling becomes a Bitcast that
        # ONNX does not have). The predicted class as a one-hot row:
        predicted = ops.where(probabilities >= ops.max(probabilities, axis=-1, keepdims=True), 1.0, 0.0)
        # d logit_c / d (second BatchNorm's input): the class's weights scaled by that BatchNorm.
        grad = ops.matmul(predicted, ops.transpose(self.classifier.kernel)) * _scale(self.norms[1])
        grad = ops.matmul(grad, ops.transpose(self.embedding.kernel)) * _scale(self.norms[0])
        hidden = ops.matmul(pooled, self.hidden.kernel) + self.hidden.bias
        grad = ops.where(hidden > 0, grad, 0.0)  # the ReLUs that were off pass nothing back
        grad = ops.matmul(grad, ops.transpose(self.hidden.kernel))  # (n, channels)
        cells = feature_map.shape[1] * feature_map.shape[2]
        return ops.relu(ops.einsum("nhwk,nk->nhw", feature_map, grad) / cells)


def _scale(norm: keras.layers.BatchNormalization):
    """BatchNorm's multiplier in inference: γ / √(moving variance + ε)."""
    gamma = norm.gamma if norm.scale else 1.0
    return gamma / ops.sqrt(norm.moving_variance + norm.epsilon)


def localising(network: keras.Model) -> keras.Model:
    """The assembled network (image → [probabilities, embedding]) with the activation map as a third output.

    The backbone must end in global average pooling (every registered one does): its input is the last
    convolutional feature map.
    """
    _, backbone, head = network.layers  # the assembled network: image input, backbone, head
    pooling = backbone.layers[-1]
    if not isinstance(pooling, keras.layers.GlobalAveragePooling2D):
        raise ValueError(f"backbone {backbone.name} does not end in global average pooling")
    features = keras.Model(backbone.input, [pooling.input, backbone.output], name="features")
    image = keras.Input(network.input_shape[1:], name="image")
    feature_map, pooled = features(image, training=False)
    probabilities, embedding = head(pooled, training=False)
    activation = GradCam(head, name=ACTIVATION_MAP)(feature_map, pooled, probabilities)
    return keras.Model(image, [probabilities, embedding, activation], name="lookalike_localising")

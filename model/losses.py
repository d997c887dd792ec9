"""The instance objective: every catalogue photo is its own identity, recognised through its augmented views;
and the neighbourhood objective, which keeps what the backbone knew about photos unlike the catalogue's.

CosFace (large-margin cosine loss, Wang et al. 2018): the unit-length embedding is compared with one
learned unit-length centre per identity; the true identity's cosine must beat every other by a margin
``m``, and the cosines are scaled by ``s`` before the softmax. It pulls the views of one product
together and pushes different products apart, which a category loss alone never asks for: it would
pull every product of a category to one point. Only training uses it; the served network ends at the
embedding.
"""
from __future__ import annotations

import keras
from keras import ops

NOT_AN_IDENTITY = -1  # a training image outside the instance objective (held out, or not a product)


class IdentityCosines(keras.layers.Layer):
    """Cosines between unit-length embeddings and one learned centre per identity."""

    def __init__(self, identities: int, **kwargs):
        super().__init__(**kwargs)
        self.identities = identities

    def build(self, input_shape):
        self.centres = self.add_weight(shape=(input_shape[-1], self.identities), initializer="glorot_uniform",
                                       name="centres")

    def call(self, embeddings):
        return ops.matmul(embeddings, ops.normalize(self.centres, axis=0))


class CosFaceLoss(keras.losses.Loss):
    """Softmax cross-entropy over ``s × (cosine − m·[true identity])``; rows labelled ``NOT_AN_IDENTITY``
    contribute nothing, and the mean is over the rows that count.

    Args:
        scale: ``s``, the sharpness of the softmax over cosines.
        margin: ``m``, how much the true identity's cosine must win by.
    """

    def __init__(self, scale: float = 24.0, margin: float = 0.2, name: str = "cosface"):
        super().__init__(name=name, reduction="sum")
        self.scale = scale
        self.margin = margin

    def call(self, y_true, cosines):
        identities = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        counted = ops.cast(identities != NOT_AN_IDENTITY, cosines.dtype)
        target = ops.one_hot(ops.maximum(identities, 0), ops.shape(cosines)[-1], dtype=cosines.dtype)
        logits = self.scale * (cosines - self.margin * target)
        losses = keras.losses.categorical_crossentropy(target, logits, from_logits=True)
        return losses * counted / ops.maximum(ops.sum(counted), 1.0)


class NeighbourhoodLoss(keras.losses.Loss):
    """Keep the backbone's sense of which photos look alike: for each row of a batch, the softmax over the
    other rows of the backbone's cosines (the target) and of the embedding's should agree (KL divergence).

    CosFace learns only the catalogue's products, so on photos of other kinds the embedding forgets what the
    backbone could tell apart; this objective asks it to keep the backbone's neighbours, for any photo.

    Args:
        centre: the mean pooled feature of the training photos. The pooled features are non-negative, so
            their raw cosines are all high; centred, they say which photos are alike.
        temperature: the sharpness of both softmaxes.
    """

    def __init__(self, centre, temperature: float = 0.1, name: str = "neighbourhood"):
        super().__init__(name=name, reduction="sum_over_batch_size")
        self.centre = centre
        self.temperature = temperature

    def call(self, pooled, embeddings):
        teacher = ops.normalize(pooled - self.centre, axis=-1)
        itself = 1e9 * ops.eye(ops.shape(embeddings)[0], dtype=embeddings.dtype)  # a row is not its own neighbour
        target = ops.matmul(teacher, ops.transpose(teacher)) / self.temperature - itself
        student = ops.matmul(embeddings, ops.transpose(embeddings)) / self.temperature - itself
        return ops.sum(ops.softmax(target) * (ops.log_softmax(target) - ops.log_softmax(student)), axis=-1)

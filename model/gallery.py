"""A catalogue product's stored vector: its photo's embedding with the mean of its augmented views'.

A shopper's photo of a catalogued product is never the catalogue's own photo: it is cropped, turned, lit and
compressed another way. The stored vector is the photo's embedding plus the mean embedding of a few views of it
(``model.views``: the alterations training teaches the embedding to see through), made unit length again. It
lies nearer to every such photo than the photo's embedding alone, above all for products the model never trained
on (docs/quality.md measures it). Eight views find the exact product first more often than four: their mean strays
less from the one all views would give. The photo counts as much as all its views together: more weight on the
views finds the exact product hardly more often. The neighbours' vote for the query's category reads the photo's
own embedding, stored beside the vector: voting on the vectors with views costs about a point of category. Only
ingest pays: 1 + ``GALLERY_VIEWS`` forward passes a product, none more for a search. The views are seeded by the
photo's SHA-256, so re-embedding a product gives the same vectors. The model card says how many views its vectors
take: 4 for models trained before 2026-12-08, none for older ones (both vectors are then the photo's embedding).
"""
from __future__ import annotations

import random

import numpy as np
from PIL import Image

from images.decoding import to_array
from model.inference import Network
from model.views import view

# What a newly trained model's card asks for; a model keeps the number it was trained with, so all its vectors
# are made alike.
GALLERY_VIEWS = 8


def gallery_inputs(picture: Image.Image, size: int, sha256: str, views: int) -> np.ndarray:
    """The photo and ``views`` views of it as network inputs: uint8 (1 + views, size, size, 3). The first k views
    are the same whatever ``views`` is, so one stack serves models that ask for fewer."""
    rng = random.Random(sha256)
    return np.stack([to_array(picture, size), *(to_array(view(picture, rng), size) for _ in range(views))])


def gallery_vectors(model: Network, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stored vectors (n, dim), unit length, of stacked ``gallery_inputs`` (n, 1 + views, size, size, 3): the
    photo and the first views the model's card asks for, in one batched forward pass; and the photos' own
    embeddings (n, dim), which the neighbours' vote reads."""
    inputs = inputs[:, :1 + model.card.gallery_views]
    n, looks = inputs.shape[:2]
    embeddings = model.predict(inputs.reshape(n * looks, *inputs.shape[2:])).embeddings.reshape(n, looks, -1)
    photos = embeddings[:, 0]
    if looks == 1:
        return photos, photos  # the very same vectors: a serving process caches them once
    vectors = photos + embeddings[:, 1:].mean(axis=1)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), photos

"""A product's stored vector: its photo's embedding with its views', seeded by the photo."""
import random

import numpy as np
from PIL import Image

from evaluation.instances import alter
from images.decoding import to_array
from model.card import ModelCard
from model.gallery import gallery_inputs, gallery_vectors
from model.inference import Network


class MeanColour(Network):
    """Embeds a picture as its unit-length mean colour; counts its forward passes."""

    def __init__(self, gallery_views: int = 4):
        super().__init__(ModelCard("fake", "none", 16, "unit", ["a", "b"], version="fake-1",
                                   gallery_views=gallery_views), batch_size=64)
        self.passes = 0

    def _forward(self, batch):
        self.passes += 1
        colour = batch.mean(axis=(1, 2)) + 1.0
        return np.full((len(batch), 2), 0.5, np.float32), colour / np.linalg.norm(colour, axis=1, keepdims=True), None


def photo(seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 255, (40, 30, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_inputs_are_the_photo_then_views_seeded_by_its_hash():
    picture = photo(0)
    inputs = gallery_inputs(picture, 16, "ab12", views=3)
    assert inputs.shape == (4, 16, 16, 3) and inputs.dtype == np.uint8
    assert (inputs[0] == to_array(picture, 16)).all()
    assert (gallery_inputs(picture, 16, "ab12", views=3) == inputs).all()  # re-embedding gives the same vector
    assert not (gallery_inputs(picture, 16, "cd34", views=3)[1:] == inputs[1:]).all()
    assert (gallery_inputs(picture, 16, "ab12", views=1) == inputs[:2]).all()  # fewer views: the first ones


def test_vector_is_the_photo_plus_the_mean_view_in_one_batched_pass():
    model = MeanColour()
    inputs = np.stack([gallery_inputs(photo(i), 16, str(i), views=4) for i in range(3)])
    vectors, photos = gallery_vectors(model, inputs)
    assert model.passes == 1
    each = model.predict(inputs.reshape(15, 16, 16, 3)).embeddings.reshape(3, 5, -1)
    expected = each[:, 0] + each[:, 1:].mean(axis=1)
    assert np.allclose(vectors, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)
    assert np.allclose(photos, each[:, 0], atol=1e-6)  # the photo's own embedding, for the neighbours' vote
    fewer, _ = gallery_vectors(MeanColour(gallery_views=1), inputs)  # a card asking fewer views takes the first
    expected = each[:, 0] + each[:, 1]
    assert np.allclose(fewer, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)
    for stored in gallery_vectors(MeanColour(gallery_views=0), inputs):  # no views: both are the photo's
        assert np.allclose(stored, each[:, 0], atol=1e-6)


def test_altered_photos_lie_nearer_their_products_vectors(trained_model, fashion_slice):
    """On the slice's model: an altered catalogue photo (the instance evaluation's alteration) is nearer its
    product's vector with views than to its photo's embedding alone, on average over the slice."""
    photos = [Image.open(p).convert("RGB") for p in sorted(fashion_slice.glob("*/*.jpg"))]
    size = trained_model.input_size
    assert trained_model.card.gallery_views > 0  # a newly trained model asks for views
    inputs = np.stack([gallery_inputs(p, size, str(i), trained_model.card.gallery_views) for i, p in enumerate(photos)])
    rng = random.Random(0)
    queries = trained_model.predict(np.stack([to_array(alter(p, rng), size) for p in photos])).embeddings
    with_views = np.linalg.norm(queries - gallery_vectors(trained_model, inputs)[0], axis=1)
    alone = np.linalg.norm(queries - trained_model.predict(inputs[:, 0]).embeddings, axis=1)
    assert with_views.mean() < alone.mean()

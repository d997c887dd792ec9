"""Augmented views of a product photo: the ways a shopper's picture of a catalogued product differs from
the catalogue's own, which training teaches the embedding to see through.

A view is a random crop (60–100 % of each side), a rotation (±20°, white fill like the catalogue's
background), a horizontal flip, a brightness and contrast change, a tinted background, and a JPEG
re-encoding (quality 30–90).
"""
from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageEnhance

WHITE = (255, 255, 255)
# Pixels this close to white in every channel count as the catalogue's background.
BACKGROUND_LEVEL = 235


def view(image: Image.Image, rng: random.Random) -> Image.Image:
    """One random view of an RGB picture (the same size or smaller)."""
    width, height = image.size
    keep_w, keep_h = rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)
    left, top = rng.uniform(0, 1 - keep_w) * width, rng.uniform(0, 1 - keep_h) * height
    image = image.crop((round(left), round(top), round(left + keep_w * width), round(top + keep_h * height)))
    image = image.rotate(rng.uniform(-20, 20), resample=Image.Resampling.BILINEAR, fillcolor=WHITE)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.5:
        image = tint_background(image, rng)
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.7, 1.3))
    image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.7, 1.3))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=rng.randint(30, 90))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def tint_background(image: Image.Image, rng: random.Random) -> Image.Image:
    """Lay a random light colour over the near-white background, as a table, a wall or a hand would."""
    pixels = np.asarray(image, dtype=np.uint8).copy()
    background = pixels.min(axis=2) >= BACKGROUND_LEVEL
    pixels[background] = [rng.randint(150, 255) for _ in range(3)]
    return Image.fromarray(pixels, "RGB")

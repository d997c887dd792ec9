"""Where the product is in a photo: a box from the network's class activation map, and the crop searched instead.

The map (``model.activation``: the predicted class's Grad-CAM, one cell per 32 × 32 px of the network input)
is scaled up to the input, thresholded at a share of its peak (the ``localise_threshold`` setting), and the box
is the bounding box of the largest connected region above it: the rule of the CAM paper (Zhou et al. 2016, 20 %
of the peak), which also keeps a stray hot cell far from the product out of the box. The network's input is the
whole photo squashed to a square, so the box maps back to the photo by scaling each axis.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image
from scipy import ndimage

from config import DEFAULTS

MARGIN = 0.1  # of the box's side, added on each side of the crop: the map's cells are coarse
CELL = 32  # a map cell's side once scaled up: what a cell of the 7 × 7 maps covers of a 224 px input


@dataclass(frozen=True)
class Box:
    """A rectangle in pixels of some picture: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h

    def share(self, size: tuple[int, int]) -> float:
        """The box's area over the picture's (``size`` = width, height)."""
        return self.w * self.h / (size[0] * size[1])

    def scaled(self, sx: float, sy: float, size: tuple[int, int]) -> Box:
        """The same region in a picture whose axes are ``sx`` and ``sy`` times this one's, of ``size``."""
        left, top = min(size[0] - 1, int(self.x * sx)), min(size[1] - 1, int(self.y * sy))
        right = min(size[0], max(left + 1, round(self.right * sx)))
        bottom = min(size[1], max(top + 1, round(self.bottom * sy)))
        return Box(left, top, right - left, bottom - top)

    def moved(self, dx: int, dy: int, size: tuple[int, int]) -> Box:
        """Shifted by (``dx``, ``dy``) and clipped to a picture of ``size`` (at least one pixel kept)."""
        left, top = min(size[0] - 1, max(0, self.x + dx)), min(size[1] - 1, max(0, self.y + dy))
        right, bottom = max(left + 1, min(size[0], self.right + dx)), max(top + 1, min(size[1], self.bottom + dy))
        return Box(left, top, right - left, bottom - top)

    def widened(self, margin: float, size: tuple[int, int]) -> Box:
        """Grown by ``margin`` of its side on every side, kept inside a picture of ``size``."""
        dx, dy = round(self.w * margin), round(self.h * margin)
        left, top = max(0, self.x - dx), max(0, self.y - dy)
        right, bottom = min(size[0], self.right + dx), min(size[1], self.bottom + dy)
        return Box(left, top, right - left, bottom - top)

    def crop(self, image: Image.Image) -> Image.Image:
        return image.crop((self.x, self.y, self.right, self.bottom))

    def iou(self, other: Box) -> float:
        w = max(0, min(self.right, other.right) - max(self.x, other.x))
        h = max(0, min(self.bottom, other.bottom) - max(self.y, other.y))
        inter = w * h
        return inter / (self.w * self.h + other.w * other.h - inter)

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.w},{self.h}"


@dataclass(frozen=True)
class Localisation:
    """The activation map of one photo and the box drawn from it.

    Attributes:
        heat: the map scaled to its peak (h, w), in [0, 1]; all zero when nothing argued for the class.
        box: the product's box in pixels of the photo the map was computed on; None without evidence.
        threshold: the share of the peak the box's region reaches.
        region: the part of the photo the network saw (a shopper's box), in the same pixels as ``box``; None:
            the whole photo.
    """

    heat: np.ndarray
    box: Box | None
    threshold: float = DEFAULTS.localise_threshold
    region: Box | None = None

    def within(self, region: Box, size: tuple[int, int]) -> Localisation:
        """This map of a crop, placed at ``region`` of the (width, height) photo it was cut from."""
        box = self.box.moved(region.x, region.y, size) if self.box else None
        return replace(self, box=box, region=region)

    def over(self, size: tuple[int, int]) -> np.ndarray:
        """The map scaled up bilinearly over the picture it covers, shown at ``size`` (width, height)."""
        return np.asarray(Image.fromarray(self.heat, mode="F").resize(size, Image.Resampling.BILINEAR))


def localise(activation: np.ndarray, size: tuple[int, int],
             threshold: float = DEFAULTS.localise_threshold) -> Localisation:
    """The box of the largest region where the map reaches ``threshold`` of its peak, in a (width, height) photo."""
    peak = float(activation.max())
    if not peak > 0:
        return Localisation(np.zeros_like(activation, np.float32), None, threshold)
    heat = (activation / peak).astype(np.float32)
    # Scaled up bilinearly to the network input's resolution (CELL px a cell), so box edges fall between cells.
    rows, cols = heat.shape
    fine = np.asarray(Image.fromarray(heat, mode="F").resize((cols * CELL, rows * CELL), Image.Resampling.BILINEAR))
    regions, count = ndimage.label(fine >= threshold)
    areas = ndimage.sum_labels(np.ones_like(fine), regions, range(1, count + 1))
    ys, xs = ndimage.find_objects((regions == 1 + int(np.argmax(areas))).astype(np.int32))[0]
    box = Box(xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start)
    return Localisation(heat, box.scaled(size[0] / fine.shape[1], size[1] / fine.shape[0], size), threshold)

"""The small pictures a search's pages show, made once when it runs: the upload, the activation map over it with
its boxes, and the crop that was embedded. Re-encoded small; the upload itself is never kept."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from search.localisation import Box
from search.service import SearchResult

THUMBNAIL_SIDE = 480
HEAT_OPACITY = 0.5
LOCALISED_COLOUR, SEARCHED_COLOUR = (255, 255, 255), (43, 108, 176)  # the map's box; the region searched


def jpeg(image: Image.Image, side: int = THUMBNAIL_SIDE) -> bytes:
    small = image.copy()
    small.thumbnail((side, side))
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def figures(result: SearchResult) -> dict[str, bytes]:
    """``heatmap`` when the network gave a map; ``crop`` when a box was searched."""
    made = {}
    if result.localisation is not None:
        made["heatmap"] = jpeg(heatmap(result), THUMBNAIL_SIDE)
    if result.crop is not None:
        made["crop"] = jpeg(result.crop, THUMBNAIL_SIDE // 2)
    return made


def heatmap(result: SearchResult) -> Image.Image:
    """The map scaled up over the photo, or over the shopper's box in it (blue: no evidence → red: the peak), the
    map's box in white and the region searched in blue."""
    photo = result.query.copy()
    photo.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    found = result.localisation
    scale = photo.width / result.query_size[0], photo.height / result.query_size[1]
    region = found.region.scaled(*scale, photo.size) if found.region else Box(0, 0, *photo.size)
    heat = found.over((region.w, region.h))
    # A jet-like colour scale, written out: each channel a tent over its part of [0, 1].
    colours = np.stack([np.clip(1.5 - np.abs(4 * heat - c), 0, 1) for c in (3, 2, 1)], axis=-1)
    blended = photo.copy()
    blended.paste(Image.blend(region.crop(photo), Image.fromarray((colours * 255).astype(np.uint8)), HEAT_OPACITY),
                  (region.x, region.y))
    draw = ImageDraw.Draw(blended)
    for box, colour in ((result.localisation.box, LOCALISED_COLOUR), (result.box, SEARCHED_COLOUR)):
        if box is not None:
            _outline(draw, box.scaled(*scale, photo.size), colour)
    return blended


def _outline(draw: ImageDraw.ImageDraw, box: Box, colour: tuple[int, int, int]) -> None:
    draw.rectangle((box.x, box.y, box.right - 1, box.bottom - 1), outline=colour, width=3)

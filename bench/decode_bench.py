"""The upload path for a large phone photo, decoded at reduced scale against a full decode."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from bench.model_bench import median_seconds
from images.decoding import decode_image, to_array

PHONE_SIZE = (4000, 3000)  # 12 megapixels, a phone camera's photo


@dataclass(frozen=True)
class DecodeTimes:
    megapixels: float
    jpeg_bytes: int
    reduced: float  # seconds: decode_image at reduced scale, then resize to the network input
    full: float  # seconds: decode every pixel, then resize


def phone_photo(path: Path) -> bytes:
    """A shared product photo upscaled to 12 MP and saved as a camera would (JPEG quality 92, 4:2:0)."""
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").resize(PHONE_SIZE, Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def full_decode(data: bytes, size: int):
    """The upload path without reduced-scale decoding: every pixel decoded, upright, RGB, resized."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    return to_array(image.convert("RGB"), size)


def upload_decode(photos: list[Path], size: int, max_pixels: int, repeats: int = 10) -> DecodeTimes:
    """Median seconds per photo of both upload paths, over large photos made from ``photos``."""
    large = [phone_photo(path) for path in photos]
    reduced = median_seconds(lambda: [to_array(decode_image(d, max_pixels, size).rgb, size) for d in large], repeats)
    full = median_seconds(lambda: [full_decode(d, size) for d in large], repeats)
    return DecodeTimes(PHONE_SIZE[0] * PHONE_SIZE[1] / 1e6, sum(map(len, large)) // len(large),
                       reduced / len(large), full / len(large))

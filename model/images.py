"""Turning untrusted image bytes into the RGB arrays the network reads.

Ingest, training and search all call these functions, so a catalogue photo and a shopper's upload are
prepared exactly alike.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


class ImageError(ValueError):
    """The bytes are not an image we can use; the message says why, in words for a person."""


class ImageTooLarge(ImageError):
    """The image declares more pixels than allowed (a decompression bomb, or simply too big)."""


@dataclass(frozen=True)
class DecodedImage:
    rgb: Image.Image
    content_type: str
    width: int
    height: int


def decode_image(data: bytes, max_pixels: int) -> DecodedImage:
    """Decode image bytes to an upright 8-bit RGB picture.

    EXIF orientation is applied, the first frame of an animation is used, transparency is laid on
    white (the catalogue's background), 16-bit and CMYK pictures are converted.

    Raises:
        ImageError: empty, unknown format, truncated or corrupt data, or more than ``max_pixels`` pixels.
    """
    if not data:
        raise ImageError("the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > max_pixels:
                raise ImageTooLarge(f"the image is too large: {image.width}×{image.height} pixels "
                                 f"(the limit is {max_pixels:,} pixels)")
            content_type = Image.MIME.get(image.format or "", "application/octet-stream")
            image.seek(0)
            image.load()
            image = ImageOps.exif_transpose(image)
            rgb = _to_rgb(image)
    except ImageError:
        raise
    except UnidentifiedImageError as e:
        raise ImageError("not a readable image (the format is unknown or the file is not a picture)") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageTooLarge(f"the image is too large to decode safely (limit {max_pixels:,} pixels)") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"the image data is truncated or corrupt ({e})") from e
    return DecodedImage(rgb=rgb, content_type=content_type, width=rgb.width, height=rgb.height)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit and float greyscale: scale to 8 bits instead of clipping everything above 255 to white.
        values = np.asarray(image, dtype=np.float64)
        top = values.max() or 1.0
        image = Image.fromarray((values * (255.0 / top)).clip(0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def to_array(image: Image.Image, size: int) -> np.ndarray:
    """Resize to the square network input (the Keras ``load_img`` way) as a uint8 HxWx3 array."""
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)

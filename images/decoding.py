"""Turning untrusted image bytes into the RGB arrays the network reads.

Ingest, training and search all call these functions, so a catalogue photo and a shopper's upload are
prepared exactly alike.

Decoding has a budget, checked on the file's header before any pixel is decoded: only the web's photo formats
(their decoders are the ones browsers harden; the others Pillow knows fail in ways of their own), at most
``max_pixels`` pixels and no side longer than ``MAX_SIDE``, and no JPEG with more than ``MAX_JPEG_SCANS`` scans
(each scan of a progressive JPEG is a pass over every block, however few bytes it takes).
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow format name -> the content type stored and served. MPO is a JPEG with extra pictures after it
# (cameras write it); Pillow opens it as JPEG and browsers show it as one.
CONTENT_TYPES = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp",
                 "GIF": "image/gif"}
ACCEPTED = "JPEG, PNG, WebP or GIF"
# A picture's lines cost memory of their own: a 1 × 39,000,000 PNG needs 12 bytes a pixel instead of 4.
MAX_SIDE = 20_000
# Photos have 1 scan (baseline) or about 10 (progressive); a few hundred bytes can declare thousands.
MAX_JPEG_SCANS = 100
JPEG_START_OF_SCAN = b"\xff\xda"  # in entropy-coded data 0xFF is always followed by 0x00 or a restart marker
SCALES = (8, 4, 2, 1)  # the reduced scales JPEG's DCT decodes at; other formats are reduced to the same

# Pillow keeps pictures in blocks of at most 16 MiB; once freed, glibc keeps blocks under 32 MiB in the freeing
# thread's heap, so every serving thread that once decoded a huge picture held on to its hundreds of MiB. Blocks
# of 64 MiB are mapped and unmapped whole. (The documented way is PILLOW_BLOCK_SIZE, read once at import.)
Image.core.set_block_size(64 * 1024 * 1024)

# Our pixel limit, checked as soon as a file is opened, replaces Pillow's warning (its error, at twice its own
# limit, still counts as too large). Set once here: catching warnings per call is not thread-safe.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageError(ValueError):
    """The bytes are not an image we can use; the message says why, in words for a person."""


class NotAnImage(ImageError):
    """The bytes are in no image format we read (a text file, a PDF, …), as opposed to a damaged picture."""


class ImageTooLarge(ImageError):
    """The image declares more pixels than allowed (a decompression bomb, or simply too big)."""


@dataclass(frozen=True)
class DecodedImage:
    """An upright RGB picture, and what the original was.

    Attributes:
        rgb: the picture, possibly at reduced scale (see ``scale``).
        content_type: from the bytes, never from a file name.
        width, height: the original picture's size, upright (after EXIF orientation).
        scale: each side of ``rgb`` is the original's divided by this (rounded up): 1, 2, 4 or 8.
    """

    rgb: Image.Image
    content_type: str
    width: int
    height: int
    scale: int = 1


def decode_image(data: bytes, max_pixels: int, target_size: int | None = None) -> DecodedImage:
    """Decode image bytes to an upright 8-bit RGB picture.

    EXIF orientation is applied, the first frame of an animation is used, transparency is laid on
    white (the catalogue's background), 16-bit and CMYK pictures are converted.

    Args:
        data: the untrusted bytes.
        max_pixels: larger pictures are refused before they are decoded.
        target_size: the side of the square the picture will be resized to. When given, large pictures are
            decoded (JPEG) or kept (other formats) at the smallest of the scales 1/2, 1/4, 1/8 whose both
            sides are still at least this long, so a huge upload costs little memory.

    Raises:
        ImageTooLarge: more than ``max_pixels`` pixels, or a side over ``MAX_SIDE``.
        ImageError: empty, a format we do not accept, a JPEG with too many scans, truncated or corrupt data.

    Example:
        >>> decode_image(open("photo.jpg", "rb").read(), 40_000_000, target_size=224).rgb.mode
        'RGB'
    """
    if not data:
        raise ImageError("the file is empty")
    try:
        image: Image.Image = Image.open(io.BytesIO(data), formats=("JPEG", "PNG", "WEBP", "GIF"))
        assert image.format is not None  # opening with ``formats`` names the one that matched
        content_type = CONTENT_TYPES[image.format]
        width, height = image.size
        _check_budget(image, data, max_pixels)
        image.seek(0)
        scale = 1
        if target_size and image.format in ("JPEG", "MPO") and (drafted := image.draft("RGB", (target_size,) * 2)):
            scale = round(width / drafted[1][2])  # the box of the original the decoded picture covers
        image.load()
        if target_size and scale == 1:
            image, scale = _reduce(image, target_size)
        loaded = image.size
        ImageOps.exif_transpose(image, in_place=True)
        rgb = _to_rgb(image)
    except ImageError:
        raise
    except UnidentifiedImageError as e:
        raise NotAnImage(f"the file is no {ACCEPTED} picture") from e
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(f"the image is too large to decode safely (limit {max_pixels:,} pixels)") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"the image data is truncated or corrupt ({e})") from e
    if rgb.size != loaded:  # turned a quarter by its EXIF orientation
        width, height = height, width
    return DecodedImage(rgb, content_type, width, height, scale)


def _check_budget(image: Image.Image, data: bytes, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(f"the image is too large: {width}×{height} pixels (the limit is {max_pixels:,} pixels)")
    if max(width, height) > MAX_SIDE:
        raise ImageTooLarge(f"the image is too large: {width}×{height} pixels (no side may be over "
                            f"{MAX_SIDE:,} pixels)")
    if image.format in ("JPEG", "MPO") and (scans := data.count(JPEG_START_OF_SCAN)) > MAX_JPEG_SCANS:
        raise ImageError(f"the JPEG has {scans:,} scans, more than the {MAX_JPEG_SCANS} we decode "
                         "(a photo has one, or about ten when progressive)")


def _reduce(image: Image.Image, target_size: int) -> tuple[Image.Image, int]:
    """The picture at the smallest of JPEG's scales whose both sides are at least ``target_size``."""
    fits = min(image.size) // target_size
    scale = next((s for s in SCALES if fits >= s), 1)
    if scale == 1:
        return image, 1
    # Box-averaging works on plain channels; palette and 1-bit pictures are expanded first.
    if image.mode == "P":
        image = image.convert("RGBA")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")
    return image.reduce(scale), scale


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit and float greyscale: scale to 8 bits instead of clipping everything above 255 to white.
        values = np.asarray(image, dtype=np.float32)
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

"""Decoding untrusted bytes: every odd or hostile input becomes an upright RGB picture or a clear ImageError."""
import io

import numpy as np
import pytest
from PIL import Image

from model.images import ImageError, decode_image, to_array
from tests.images import encode, gradient, png_declaring

LIMIT = 40_000_000


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"hello, I am a text file", "not a readable image"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "not a readable image"),
    (b"<html><body>hi</body></html>", "not a readable image"),
    (encode(gradient(200, 200))[:300], "truncated or corrupt"),
    (png_declaring(30000, 30000), "too large"),
])
def test_bad_bytes_are_refused_with_a_reason(data, message):
    with pytest.raises(ImageError, match=message):
        decode_image(data, LIMIT)


def test_exif_rotated_photo_is_decoded_upright():
    image = gradient(40, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90° clockwise
    rotated = image.transpose(Image.Transpose.ROTATE_90)
    decoded = decode_image(encode(rotated, exif=exif.tobytes()), LIMIT)
    assert (decoded.width, decoded.height) == (40, 30)
    pixels = np.asarray(decoded.rgb)
    assert pixels[:, :10].mean() < 60 < 180 < pixels[:, -10:].mean()


@pytest.mark.parametrize("image, fmt, options", [
    (gradient().convert("CMYK"), "JPEG", {}),
    (gradient().convert("L"), "PNG", {}),
    (Image.fromarray((np.arange(1200, dtype=np.uint16).reshape(30, 40) * 50)), "PNG", {}),
    (gradient().convert("P"), "PNG", {"transparency": 0}),
    (gradient().convert("RGBA"), "WEBP", {}),
])
def test_unusual_modes_become_rgb(image, fmt, options):
    decoded = decode_image(encode(image, fmt, **options), LIMIT)
    assert decoded.rgb.mode == "RGB"
    assert to_array(decoded.rgb, 32).shape == (32, 32, 3)


def test_sixteen_bit_is_scaled_not_clipped():
    values = np.linspace(0, 65535, 1200).astype(np.uint16).reshape(30, 40)
    decoded = decode_image(encode(Image.fromarray(values), "PNG"), LIMIT)
    pixels = np.asarray(decoded.rgb)
    assert pixels.min() == 0 and pixels.max() == 255 and 100 < pixels.mean() < 155


def test_transparency_is_laid_on_white():
    clear = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    assert np.asarray(decode_image(encode(clear, "PNG"), LIMIT).rgb).min() == 255


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (20, 20), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    pixels = np.asarray(decode_image(buffer.getvalue(), LIMIT).rgb)
    assert pixels[..., 0].mean() > 200 and pixels[..., 2].mean() < 50


def test_content_type_comes_from_the_bytes_not_the_name():
    assert decode_image(encode(gradient(), "PNG"), LIMIT).content_type == "image/png"
    assert decode_image(encode(gradient(), "JPEG"), LIMIT).content_type == "image/jpeg"

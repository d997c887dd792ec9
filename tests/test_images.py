"""Decoding untrusted bytes: every odd or hostile input becomes an upright RGB picture or a clear ImageError."""
import io

import numpy as np
import pytest
from PIL import Image

from config import DEFAULTS
from images.decoding import MAX_JPEG_SCANS, MAX_SIDE, ImageError, ImageTooLarge, decode_image, to_array
from tests.images import (
    corrupt_avif,
    corrupt_blp,
    dds_with_unknown_flags,
    encode,
    gradient,
    png_declaring,
    progressive_jpeg,
)

LIMIT = DEFAULTS.max_image_pixels


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"hello, I am a text file", "no JPEG, PNG, WebP or GIF picture"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "no JPEG, PNG, WebP or GIF picture"),
    (b"<html><body>hi</body></html>", "no JPEG, PNG, WebP or GIF picture"),
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
    (Image.fromarray(np.arange(1200, dtype=np.uint16).reshape(30, 40) * 50), "PNG", {}),
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


# --- the decoding budget -------------------------------------------------------------------------------------

def test_large_jpegs_are_decoded_at_reduced_scale():
    photo = encode(gradient(4000, 3000), quality=90)
    decoded = decode_image(photo, LIMIT, target_size=224)
    assert (decoded.width, decoded.height, decoded.scale) == (4000, 3000, 8)
    assert decoded.rgb.size == (500, 375)  # the smallest DCT scale whose sides both stay ≥ 224
    assert decode_image(photo, LIMIT, target_size=400).rgb.size == (1000, 750)  # 1/8 would give 375 < 400
    full = decode_image(photo, LIMIT)
    assert (full.rgb.size, full.scale) == ((4000, 3000), 1)
    # the network sees the same picture either way
    difference = to_array(decoded.rgb, 224).astype(int) - to_array(full.rgb, 224).astype(int)
    assert np.abs(difference).mean() < 2


def test_reduced_scale_keeps_the_original_upright_size():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side
    for fmt in ("JPEG", "PNG", "WEBP"):
        decoded = decode_image(encode(gradient(3000, 2000).transpose(Image.Transpose.ROTATE_90), fmt,
                                      exif=exif.tobytes()), LIMIT, target_size=224)
        assert (decoded.width, decoded.height, decoded.scale) == (3000, 2000, 8), fmt
        assert decoded.rgb.size == (375, 250), fmt
        pixels = np.asarray(decoded.rgb)
        assert pixels[:, :40].mean() < 60 < 180 < pixels[:, -40:].mean(), fmt  # upright: dark left, light right


@pytest.mark.parametrize("mode", ["P", "1", "L", "LA", "RGBA", "I;16"])
def test_other_formats_are_kept_at_reduced_scale_in_every_mode(mode):
    image = gradient(2000, 1000).convert("L" if mode == "I;16" else mode)
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image, dtype=np.uint16) * 257)
    decoded = decode_image(encode(image, "PNG"), LIMIT, target_size=100)
    assert (decoded.rgb.mode, decoded.rgb.size, decoded.scale) == ("RGB", (250, 125), 8)
    pixels = np.asarray(decoded.rgb)
    assert pixels[:, :100].mean() < 60 and pixels[:, -100:].mean() > 180


def test_small_pictures_are_not_reduced():
    decoded = decode_image(encode(gradient(300, 200)), LIMIT, target_size=224)
    assert (decoded.rgb.size, decoded.scale) == ((300, 200), 1)


def test_a_jpeg_declaring_a_huge_picture_costs_little_memory():
    bomb = progressive_jpeg(6000, 6000)  # under 200 bytes
    assert len(bomb) < 200
    decoded = decode_image(bomb, LIMIT, target_size=224)
    assert (decoded.width, decoded.height, decoded.rgb.size) == (6000, 6000, (750, 750))


def test_jpegs_with_too_many_scans_are_refused_before_decoding():
    bomb = progressive_jpeg(4000, 4000, scans=MAX_JPEG_SCANS + 1)
    with pytest.raises(ImageError, match=f"{MAX_JPEG_SCANS + 1} scans"):
        decode_image(bomb, LIMIT)
    # a real progressive JPEG has about ten
    decode_image(encode(gradient(400, 300), progressive=True), LIMIT)
    assert decode_image(progressive_jpeg(400, 300, scans=MAX_JPEG_SCANS), LIMIT).rgb.size == (400, 300)


def test_a_side_longer_than_the_limit_is_refused():
    with pytest.raises(ImageTooLarge, match="no side may be over"):
        decode_image(png_declaring(1, MAX_SIDE + 1), LIMIT)


@pytest.mark.parametrize("data", [
    encode(gradient(), "TIFF"), encode(gradient(), "BMP"), encode(gradient(), "AVIF"),
    dds_with_unknown_flags(), corrupt_avif(), corrupt_blp(),
], ids=["tiff", "bmp", "avif", "dds with unknown flags", "corrupt avif", "corrupt blp"])
def test_only_the_web_formats_are_accepted(data):
    with pytest.raises(ImageError, match="the file is no JPEG, PNG, WebP or GIF picture"):
        decode_image(data, LIMIT)


def test_a_camera_mpo_is_a_jpeg():
    buffer = io.BytesIO()
    gradient().save(buffer, "MPO", save_all=True, append_images=[gradient()])
    assert decode_image(buffer.getvalue(), LIMIT).content_type == "image/jpeg"

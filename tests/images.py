"""Small pictures made on the fly, for tests of decoding and uploads."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def gradient(width: int = 40, height: int = 30) -> Image.Image:
    """A picture whose left half is dark and right half light, to tell orientation apart."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, width // 2:] = 230
    return Image.fromarray(pixels)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size (a decompression bomb)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def progressive_jpeg(width: int, height: int, scans: int = 1) -> bytes:
    """A grey progressive JPEG of any declared size in a few hundred bytes: a CPU and memory bomb.

    Each scan codes every block's AC coefficients as one long run of empty blocks (EOBRUN), so it takes ~35
    bytes however large the picture, yet a decoder passes over every block once per scan.
    """
    blocks = -(-width // 8) * -(-height // 8)
    # Huffman code '0' is EOB14 (run = 2**14 + the next 14 bits): '0' + fourteen 1s is a run of 32,767 blocks.
    bits = ("0" + "1" * 14) * -(-blocks // 32767)
    bits += "1" * (-len(bits) % 8)
    data = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)).replace(b"\xff", b"\xff\x00")
    header = (b"\xff\xd8" + _segment(0xDB, b"\x00" + b"\x01" * 64)  # quantisation table
              + _segment(0xC2, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")  # progressive frame
              + _segment(0xC4, b"\x10" + bytes([1] + [0] * 15) + b"\xe0"))  # AC table: one symbol, EOB14
    scan = _segment(0xDA, b"\x01\x01\x00\x01\x3f\x00") + data  # component 1, coefficients 1..63
    return header + scan * scans + b"\xff\xd9"


def _noise(mode: str = "RGB") -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)).convert(mode)


def dds_with_unknown_flags() -> bytes:
    """A DDS whose pixel-format flags are 0 (Pillow's DDS reader raises NotImplementedError)."""
    data = bytearray(encode(_noise(), "DDS"))
    data[80:84] = bytes(4)  # DDS_PIXELFORMAT.dwFlags
    return bytes(data)


def corrupt_avif() -> bytes:
    """An AVIF whose coded picture is zeroed (libavif fails with a RuntimeError)."""
    data = encode(_noise(), "AVIF")
    start = data.index(b"mdat") + 4
    return data[:start] + bytes(len(data) - start)


def corrupt_blp() -> bytes:
    """A BLP with an unknown compression (Pillow raises its own BLPFormatError)."""
    data = bytearray(encode(_noise("P"), "BLP"))
    data[4] = 0x7F
    return bytes(data)


def hostile_uploads() -> dict[str, tuple[bytes, int]]:
    """Small files that declare huge or costly pictures, with the status each gets under the default limits."""
    return {
        "JPEG declaring 6000×6000": (progressive_jpeg(6000, 6000), 200),
        "palette PNG of 8000×5000": (encode(Image.new("P", (8000, 5000)), "PNG"), 200),
        "RGBA PNG of 8000×5000": (encode(Image.new("RGBA", (8000, 5000)), "PNG"), 200),
        "PNG of 1×39,000,000": (encode(Image.new("1", (1, 39_000_000)), "PNG"), 413),
        "PNG declaring 30000×30000": (png_declaring(30000, 30000), 413),
        "JPEG of 4000×4000 with 2,000 scans": (progressive_jpeg(4000, 4000, scans=2000), 415),
        "corrupt AVIF": (corrupt_avif(), 415),
        "not a picture": (b"just some notes", 415),
    }

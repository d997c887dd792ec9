"""A mutation fuzz of the decoder path, bounded in time: whatever the bytes, a picture or an ImageError.

Seeds are small pictures in every format Pillow writes (the accepted ones in several modes, progressive,
animated and EXIF-rotated; the others must be refused as a whole), plus the hand-made bombs. Each round mutates
one seed (mostly of an accepted format) a few times (bit flips, random or boundary values, cuts, insertions,
truncation) and runs it through ``decode_image`` (full size and reduced scale) and ``to_array``. Any other
exception fails the test with the input that raised it. ``LOOKALIKE_FUZZ_SECONDS`` (default 45) bounds the run;
the seed is printed and ``LOOKALIKE_FUZZ_SEED`` replays it.
"""
from __future__ import annotations

import collections
import io
import os
import random
import secrets
import time
import traceback

import pytest
from PIL import Image

from images.decoding import ImageError, decode_image, to_array
from tests.images import encode, gradient, png_declaring, progressive_jpeg

FUZZ_SECONDS = float(os.environ.get("LOOKALIKE_FUZZ_SECONDS") or 45)
MAX_PIXELS = 4_000_000
ACCEPTED = ("JPEG", "MPO", "PNG", "WEBP", "GIF")
BOUNDARIES = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def seeds() -> dict[str, bytes]:
    picture = gradient(48, 32)
    found = {}
    Image.init()  # registers every plugin, so that SAVE lists them all
    for fmt in sorted(Image.SAVE):
        for mode in ("RGB", "RGBA", "L", "P", "1"):
            try:
                found[f"{fmt} {mode}"] = encode(picture.convert(mode), fmt)
            except (OSError, ValueError, KeyError, TypeError):
                continue  # the format cannot hold this mode
    exif = Image.Exif()
    exif[0x0112] = 6
    animated = io.BytesIO()
    picture.save(animated, "PNG", save_all=True, append_images=[picture.rotate(90)])
    webp = io.BytesIO()
    picture.save(webp, "WEBP", save_all=True, append_images=[picture.rotate(90)])
    return found | {
        "JPEG progressive": encode(picture, progressive=True),
        "JPEG EXIF-rotated": encode(picture, exif=exif.tobytes()),
        "PNG animated": animated.getvalue(),
        "WEBP animated": webp.getvalue(),
        "PNG declaring 30000x30000": png_declaring(30000, 30000),
        "JPEG declaring 1500x1500": progressive_jpeg(1500, 1500, scans=3),
    }


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4, 8))):
        if not out:
            break
        at = rng.randrange(len(out))
        match rng.randrange(6):
            case 0:
                out[at] ^= 1 << rng.randrange(8)
            case 1:
                out[at] = rng.randrange(256)
            case 2:
                size = rng.choice((1, 2, 4))
                value = rng.choice(BOUNDARIES) & ((1 << 8 * size) - 1)
                out[at:at + size] = value.to_bytes(size, rng.choice(("big", "little")))
            case 3:
                del out[at:at + rng.randrange(1, 64)]
            case 4:
                out[at:at] = rng.randbytes(rng.randrange(1, 16))
            case 5:
                del out[at:]
    return bytes(out)


def decode_path(data: bytes, target_size: int | None) -> None:
    """What ingest and search do with untrusted bytes."""
    decoded = decode_image(data, MAX_PIXELS, target_size)
    assert decoded.rgb.mode == "RGB" and decoded.width * decoded.height <= MAX_PIXELS
    assert to_array(decoded.rgb, 32).shape == (32, 32, 3)


@pytest.mark.slow
def test_mutated_images_decode_or_are_refused(capsys):
    # Not the random module's: the session's model training seeds it, which would fuzz the same inputs every run.
    seed = int(os.environ.get("LOOKALIKE_FUZZ_SEED") or secrets.randbits(32))
    rng = random.Random(seed)
    corpus = seeds()
    names = sorted(corpus)
    # The accepted formats' decoders get most of the rounds; the others only need to be refused as a whole.
    weights = [8 if name.split()[0] in ACCEPTED else 1 for name in names]
    outcomes: collections.Counter[str] = collections.Counter()
    failures: dict[str, str] = {}  # exception kind -> the first input's seed name and traceback
    slowest = (0.0, "")
    stop_at = time.monotonic() + FUZZ_SECONDS
    while time.monotonic() < stop_at:
        name = rng.choices(names, weights)[0]
        data = mutate(corpus[name], rng)
        target_size = rng.choice((None, 16))
        started = time.monotonic()
        try:
            decode_path(data, target_size)
            outcomes["decoded"] += 1
        except ImageError:
            outcomes["refused"] += 1
        except Exception as e:  # noqa: BLE001 (the point: anything but ImageError is a finding)
            kind = f"{name}: {e.__class__.__name__}"
            outcomes["failed"] += 1
            failures.setdefault(kind, f"{data[:64]!r}…\n{traceback.format_exc(limit=-3)}")
        slowest = max(slowest, (time.monotonic() - started, name))
    total = sum(outcomes.values())
    with capsys.disabled():
        print(f"\ndecoder fuzz (seed {seed}): {len(corpus)} seeds in {len({n.split()[0] for n in names})} formats, "
              f"{total:,} mutated inputs in {FUZZ_SECONDS:.0f} s: {outcomes['decoded']:,} decoded, "
              f"{outcomes['refused']:,} refused, {outcomes['failed']:,} other exceptions; "
              f"slowest {1000 * slowest[0]:.0f} ms ({slowest[1]})")
    assert total > 1000, "the fuzz ran too few inputs to mean anything"
    assert not failures, "\n\n".join(f"{kind}\n{detail}" for kind, detail in failures.items())

"""Hostile and broken uploads on the shopper's page and the API: each gets its status and a clear message, never a 500.

One table lists every case with the status it must get (odd but genuine pictures must be searched, upright and
in colour where they have it); the test sends each to both endpoints, prints the table's summary line, and then
checks that the server still searches normally.
"""
from __future__ import annotations

import html
import io
import json
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from tests.images import encode, png_declaring
from tests.webapp_fixtures import app, client, web_service, web_settings  # noqa: F401 (fixtures)

ENDPOINTS = {"page": "/search", "api": "/api/search"}
NOT_AN_IMAGE = "not a usable image"
NO_FILE = "multipart file field 'image'"


@dataclass(frozen=True)
class Case:
    """One request and what it must get.

    ``expect`` is a piece of the error message, or for a 200 the external id that must rank first (``""``: any
    results will do, for pictures that lose their colour).
    """

    name: str
    status: int
    expect: str
    files: dict = field(default_factory=dict)  # field name -> (bytes, file name)
    fields: dict = field(default_factory=dict)
    raw: tuple[str, bytes] | None = None  # (content type, body) sent as is instead of a form
    api_only: bool = False


def photo_case(name: str, status: int, expect: str, data: bytes, filename: str = "photo.jpg", **fields) -> Case:
    return Case(name, status, expect, files={"image": (data, filename)}, fields=fields)


def animated_gif(first: Image.Image, second: Image.Image) -> bytes:
    buffer = io.BytesIO()
    first.save(buffer, "GIF", save_all=True, append_images=[second.resize(first.size)], duration=100, loop=0)
    return buffer.getvalue()


def exif_rotated(image: Image.Image) -> bytes:
    """The picture stored on its side with the EXIF tag that tells viewers to turn it upright (as phones do)."""
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    return encode(image.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif.tobytes())


def sixteen_bit(image: Image.Image) -> Image.Image:
    return Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * 257)


def build_cases(photo, other_photo, max_upload_bytes: int) -> list[Case]:
    data = photo.read_bytes()
    rgb = Image.open(photo).convert("RGB")
    stem = photo.stem
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    return [
        # broken or disguised files
        photo_case("zero bytes", 415, "the file is empty", b""),
        photo_case("truncated JPEG", 415, "truncated or corrupt", data[:len(data) // 2]),
        photo_case("text file named .jpg", 415, NOT_AN_IMAGE, b"just some notes, not a picture\n"),
        photo_case("HTML named .png", 415, NOT_AN_IMAGE, b"<html><body><script>alert(1)</script></body></html>",
                   "page.png"),
        photo_case("SVG named .png", 415, NOT_AN_IMAGE,
                   b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'><circle r='9'/></svg>", "icon.png"),
        # too big
        photo_case("decompression bomb (PNG declaring 30000x30000)", 413, "too large", png_declaring(30000, 30000),
                   "bomb.png"),
        photo_case("real pixels over the pixel limit", 413, "too large", encode(rgb.resize((3000, 2000)), "PNG"),
                   "big.png"),
        photo_case("just over the upload limit", 413, "larger than the limit",
                   b"\xff\xd8" + b"x" * max_upload_bytes),
        photo_case("far over the request limit", 413, "larger than the limit", b"x" * (3 * max_upload_bytes // 2)),
        # odd but genuine pictures are searched
        photo_case("CMYK JPEG", 200, stem, encode(rgb.convert("CMYK"), "JPEG", quality=95)),
        photo_case("16-bit greyscale PNG", 200, "", encode(sixteen_bit(rgb), "PNG"), "deep.png"),
        photo_case("greyscale JPEG", 200, "", encode(rgb.convert("L"), "JPEG", quality=95)),
        photo_case("palette PNG with transparency", 200, stem,
                   encode(palette, "PNG", transparency=palette.getpixel((0, 0))), "palette.png"),
        photo_case("animated GIF (first frame searched)", 200, stem,
                   animated_gif(rgb, Image.open(other_photo).convert("RGB")), "anim.gif"),
        photo_case("EXIF-rotated photo (searched upright)", 200, stem, exif_rotated(rgb)),
        photo_case("file name with a path", 200, stem, data, "../../etc/passwd.jpg"),
        # malformed requests
        Case("multipart request without a file", 400, NO_FILE, fields={"k": "3"}),
        Case("file under another field name", 400, NO_FILE, files={"photo": (data, "photo.jpg")}),
        Case("plain-text body", 400, NO_FILE, raw=("text/plain", b"image=photo.jpg")),
        photo_case("unknown parameter", 400, "unknown parameter(s): colour", data, colour="red"),
        photo_case("k = 0", 400, "k must be between 1 and 500", data, k="0"),
        photo_case("k = 501", 400, "k must be between 1 and 500", data, k="501"),
        photo_case("k = -3", 400, "k must be between 1 and 500", data, k="-3"),
        photo_case("k = ten", 400, "k must be a whole number", data, k="ten"),
        photo_case("k = 2.5", 400, "k must be a whole number", data, k="2.5"),
        photo_case("unknown metric", 400, "metric must be one of", data, metric="manhattan"),
        photo_case("unknown scope", 400, "scope must be one of", data, scope="galaxy"),
        # JSON bodies (the API only)
        Case("JSON without image_url", 400, "'image_url' string", raw=("application/json", b'{"url": "x"}'),
             api_only=True),
        Case("malformed JSON", 400, "'image_url' string", raw=("application/json", b'{"image_url": '),
             api_only=True),
        Case("JSON array", 400, "'image_url' string", raw=("application/json", b'["http://example.com/a.jpg"]'),
             api_only=True),
        Case("JSON image_url not http(s)", 400, "http or https",
             raw=("application/json", b'{"image_url": "file:///etc/passwd"}'), api_only=True),
        Case("JSON with an unknown parameter", 400, "unknown parameter(s): colour",
             raw=("application/json", b'{"image_url": "http://example.com/a.jpg", "colour": "red"}'), api_only=True),
    ]


def send(client, url: str, case: Case):
    if case.raw:
        return client.post(url, data=case.raw[1], content_type=case.raw[0])
    form = {**case.fields, **{name: (io.BytesIO(data), filename) for name, (data, filename) in case.files.items()}}
    return client.post(url, data=form, content_type="multipart/form-data")


def problem(case: Case, endpoint: str, response) -> str | None:
    """What is wrong with the answer, or None."""
    text = response.get_data(as_text=True)
    if response.status_code != case.status:
        return f"status {response.status_code}, expected {case.status}: {text[:200]!r}"
    if "Traceback" in text:
        return "a stack trace in the answer"
    if endpoint == "api":
        if response.mimetype != "application/json":
            return f"answered {response.mimetype}, not JSON"
        body = response.get_json()
        if case.status == 200:
            first = body["results"][0]["external_id"] if body["results"] else None
            return None if first and case.expect in (first, "") else f"first result {first}, expected {case.expect}"
        if body["status"] != case.status or case.expect not in body["error"]:
            return f"error {body!r} does not say {case.expect!r}"
        return None
    if response.mimetype != "text/html":
        return f"answered {response.mimetype}, not a page"
    if case.status == 200:
        first = text.split('class="external-id">#', 1)[1].split("<", 1)[0] if 'class="external-id"' in text else None
        return None if first and case.expect in (first, "") else f"first result {first}, expected {case.expect}"
    message = html.unescape(text.split('id="error-message">', 1)[-1].split("</p>", 1)[0])
    return None if case.expect in message else f"error page does not say {case.expect!r}: {message!r}"


def test_hostile_and_broken_uploads(client, fashion_slice, web_settings, capsys):
    # A backpack whose photo, turned on its side without its EXIF tag, finds another backpack first.
    photo = sorted((fashion_slice / "Backpacks").glob("*.jpg"))[0]
    other = sorted((fashion_slice / "Heels").glob("*.jpg"))[0]
    cases = build_cases(photo, other, web_settings.max_upload_bytes)
    lines, failures, requests = [], [], 0
    for case in cases:
        for endpoint, url in ENDPOINTS.items():
            if case.api_only and endpoint == "page":
                continue
            requests += 1
            wrong = problem(case, endpoint, send(client, url, case))
            lines.append(f"  {case.name:<48} {endpoint:<4} {case.status}  {'ok' if wrong is None else wrong}")
            if wrong:
                failures.append(f"{case.name} ({endpoint}): {wrong}")
    summary = (f"hostile uploads: {len(cases)} cases, {requests} requests (page and API): "
               f"{requests - len(failures)} passed, {len(failures)} failed")
    with capsys.disabled():
        print("\n" + "\n".join(lines) + "\n" + summary)
    assert not failures, "\n".join(failures)

    # ... and the server still serves: health, and a plain search on both endpoints.
    assert client.get("/healthz").status_code == 200
    good = photo_case("plain photo", 200, photo.stem, photo.read_bytes())
    assert [problem(good, endpoint, send(client, url, good)) for endpoint, url in ENDPOINTS.items()] == [None, None]


def test_answers_never_repeat_a_forged_host(client, fashion_slice):
    photo = sorted((fashion_slice / "Heels").glob("*.jpg"))[0].read_bytes()
    forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    body = client.post("/api/search", data={"image": (io.BytesIO(photo), "a.jpg")}, headers=forged,
                       content_type="multipart/form-data").get_data(as_text=True)
    product = client.get("/api/products/1", headers=forged).get_data(as_text=True)
    assert "evil" not in body and "evil" not in product
    answer = json.loads(body)
    assert answer["review_url"].startswith("/review/")
    assert all(result["image_url"].startswith("/products/") for result in answer["results"])

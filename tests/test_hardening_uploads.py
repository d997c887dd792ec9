"""Hostile and broken uploads on the shopper's page and the API: each gets its status and a clear message, never a 500.

One table lists every case with the status it must get (odd but genuine pictures must be searched, upright and
in colour where they have it); the test sends each to both endpoints, prints the table's summary line, and then
checks that the server still searches normally. Then: product ids past the database's range, a forged Host
header, and ``k`` read alike from a form and from JSON.
"""
from __future__ import annotations

import html
import io
import json
from dataclasses import dataclass, field

import numpy as np
import pytest
from PIL import Image

from images.decoding import MAX_JPEG_SCANS, MAX_SIDE
from search.parameters import SearchError, SearchParameters
from tests.images import corrupt_avif, corrupt_blp, dds_with_unknown_flags, encode, png_declaring, progressive_jpeg

ENDPOINTS = {"page": "/search", "api": "/api/search"}
NOT_AN_IMAGE = "not a usable image"
NOT_ACCEPTED = "not a usable image: the file is no JPEG, PNG, WebP or GIF picture"
NO_FILE = "multipart file field 'image'"
WHOLE_NUMBER = "k must be a whole number"


@dataclass(frozen=True)
class Case:
    """One request and what it must get.

    ``expect`` is a piece of the error message, or for a 200 the external id that must rank first (``""``: any
    results will do, for pictures that lose their colour).
    """

    name: str
    status: int
    expect: str
    files: dict = field(default_factory=dict)  # field name -> [(bytes, file name), …]
    fields: dict = field(default_factory=dict)
    raw: tuple[str, bytes] | None = None  # (content type, body) sent as is instead of a form
    api_only: bool = False


def photo_case(name: str, status: int, expect: str, data: bytes, filename: str = "photo.jpg", **fields) -> Case:
    return Case(name, status, expect, files={"image": [(data, filename)]}, fields=fields)


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


def json_case(name: str, status: int, expect: str, body: str | bytes) -> Case:
    return Case(name, status, expect, raw=("application/json", body.encode() if isinstance(body, str) else body),
                api_only=True)


def url_case(name: str, expect: str, **params) -> Case:
    """A JSON search whose k is ``params['k']`` as JSON, or whose image_url is ``params['url']``."""
    url = params.pop("url", "http://example.com/a.jpg")
    extra = "".join(f', "{key}": {value}' for key, value in params.items())
    return json_case(name, 400, expect, f'{{"image_url": "{url}"{extra}}}')


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


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
        # formats outside the allow-list, among them files whose decoders raised errors of their own
        photo_case("TIFF", 415, NOT_ACCEPTED, encode(rgb, "TIFF"), "photo.tif"),
        photo_case("corrupt AVIF", 415, NOT_ACCEPTED, corrupt_avif(), "photo.avif"),
        photo_case("DDS with unknown pixel-format flags", 415, NOT_ACCEPTED, dds_with_unknown_flags(), "a.dds"),
        photo_case("corrupt BLP", 415, NOT_ACCEPTED, corrupt_blp(), "a.blp"),
        # costly to decode
        photo_case(f"progressive JPEG with {MAX_JPEG_SCANS + 1} scans", 415, f"{MAX_JPEG_SCANS + 1} scans",
                   progressive_jpeg(1000, 1000, scans=MAX_JPEG_SCANS + 1)),
        photo_case(f"PNG of 1×{MAX_SIDE + 1} (one side too long)", 413, "no side may be over",
                   encode(Image.new("1", (1, MAX_SIDE + 1)), "PNG"), "line.png"),
        # too big
        photo_case("decompression bomb (PNG declaring 30000x30000)", 413, "too large", png_declaring(30000, 30000),
                   "bomb.png"),
        photo_case("real pixels over the pixel limit", 413, "too large", encode(rgb.resize((3000, 2000)), "PNG"),
                   "big.png"),
        photo_case("just over the upload limit", 413, "larger than the limit",
                   b"\xff\xd8" + b"x" * max_upload_bytes),
        photo_case("far over the request limit", 413, "larger than the limit", b"x" * (3 * max_upload_bytes // 2)),
        Case("a form of 20 parts", 413, "more than 16 parts", files={"image": [(data, "photo.jpg")]},
             fields={f"field{i}": "x" for i in range(19)}),
        photo_case("a text field of 600 KB", 413, "a text field over 500,000 bytes", data, k="1" * 600_000),
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
        photo_case("JPEG declaring 1900×1900 in 200 bytes", 200, "", progressive_jpeg(1900, 1900)),
        # malformed requests
        Case("multipart request without a file", 400, NO_FILE, fields={"k": "3"}),
        Case("file under another field name", 400, NO_FILE, files={"photo": [(data, "photo.jpg")]}),
        Case("image sent as a text field", 400, NO_FILE, fields={"image": "photo.jpg"}),
        Case("two images in one search", 400, "one image a search: the request has 2",
             files={"image": [(data, "a.jpg"), (data, "b.jpg")]}),
        Case("plain-text body", 400, NO_FILE, raw=("text/plain", b"image=photo.jpg")),
        Case("multipart file name not UTF-8", 400, "the form could not be read ('utf-8' codec",
             raw=("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="image"; '
                  b'filename="caf\xe9.jpg"\r\nContent-Type: image/jpeg\r\n\r\n' + data + b"\r\n--b--\r\n")),
        Case("multipart without its boundary", 400, "the form could not be read",
             raw=("multipart/form-data", b"--b\r\n\r\n--b--\r\n")),
        photo_case("unknown parameter", 400, "unknown parameter(s): colour", data, colour="red"),
        photo_case("k = 0", 400, "k must be between 1 and 500", data, k="0"),
        photo_case("k = 501", 400, "k must be between 1 and 500", data, k="501"),
        photo_case("k = -3", 400, "k must be between 1 and 500", data, k="-3"),
        photo_case("k = ten", 400, "k must be a whole number", data, k="ten"),
        photo_case("k = 2.5", 400, "k must be a whole number", data, k="2.5"),
        photo_case("k in Arabic-Indic digits", 400, WHOLE_NUMBER, data, k="٣"),
        photo_case("k in full-width digits", 400, WHOLE_NUMBER, data, k="５"),
        photo_case("k with an underscore", 400, WHOLE_NUMBER, data, k="1_0"),
        photo_case("k with spaces", 400, WHOLE_NUMBER, data, k=" 7 "),
        photo_case("unknown metric", 400, "metric must be one of", data, metric="manhattan"),
        photo_case("k given twice", 400, "k given more than once", data, k=["3", "7"]),
        photo_case("unknown scope", 400, "scope must be one of", data, scope="galaxy"),
        # JSON bodies (the API only)
        Case("JSON without image_url", 400, "'image_url' string", raw=("application/json", b'{"url": "x"}'),
             api_only=True),
        Case("malformed JSON", 400, "'image_url' string", raw=("application/json", b'{"image_url": '),
             api_only=True),
        Case("JSON with an empty image_url", 400, "image_url is required",
             raw=("application/json", b'{"image_url": ""}'), api_only=True),
        Case("JSON array", 400, "'image_url' string", raw=("application/json", b'["http://example.com/a.jpg"]'),
             api_only=True),
        Case("JSON image_url not http(s)", 400, "http or https",
             raw=("application/json", b'{"image_url": "file:///etc/passwd"}'), api_only=True),
        Case("JSON with an unknown parameter", 400, "unknown parameter(s): colour",
             raw=("application/json", b'{"image_url": "http://example.com/a.jpg", "colour": "red"}'), api_only=True),
        url_case("JSON k = Infinity", "Infinity is not a JSON number", k="Infinity"),
        url_case("JSON k = -Infinity", "-Infinity is not a JSON number", k="-Infinity"),
        url_case("JSON k = NaN", "NaN is not a JSON number", k="NaN"),
        url_case("JSON k = 1e400", WHOLE_NUMBER, k="1e400"),
        url_case("JSON k = 2.5", WHOLE_NUMBER, k="2.5"),
        url_case("JSON k = true", WHOLE_NUMBER, k="true"),
        url_case("JSON k = \"٣\"", WHOLE_NUMBER, k='"٣"'),
        url_case("JSON k = 2**70", "k must be between 1 and 500", k=str(2**70)),
        url_case("JSON k nested 100,000 levels", "nested too deeply", k=nested(100_000)),
        url_case("JSON metric = []", "metric must be a string", metric="[]"),
        json_case("JSON body nested 100,000 levels", 400, "nested too deeply", nested(100_000)),
        url_case("image_url with port 99999", "invalid host or port", url="http://example.com:99999/a.jpg"),
        url_case("image_url with port -1", "invalid host or port", url="http://example.com:-1/a.jpg"),
        url_case("image_url with a backslash before @", "user name or password",
                 url="http://example.com\\\\@127.0.0.1/a.jpg"),
    ]


def send(client, url: str, case: Case):
    if case.raw:
        return client.post(url, data=case.raw[1], content_type=case.raw[0])
    form = {**case.fields, **{name: [(io.BytesIO(data), filename) for data, filename in uploads]
                              for name, uploads in case.files.items()}}
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


@pytest.mark.parametrize("product_id", [-10**30, -2**63 - 1, -2**63, -1, 0, 2**63 - 1, 2**63, 2**64, 10**30])
def test_product_ids_past_the_database_range_are_not_found(client, product_id):
    for url in (f"/api/products/{product_id}", f"/products/{product_id}/image"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.mimetype == ("application/json" if url.startswith("/api/") else "text/html")
        if -2**63 <= product_id < 2**63:  # an id the store could hold, looked up and not found
            assert f"no product {product_id}" in response.get_data(as_text=True), url


def test_a_product_id_in_other_digits_than_ascii_names_no_product(client, web_service):
    """Python reads "１２" (full-width) as 12: a link or an API client would reach a product by an id nobody wrote."""
    product_id = web_service.store.list_products(limit=1)[0].id
    assert client.get(f"/api/products/{product_id}").status_code == 200
    for spelled in (str(product_id).translate({ord("0") + d: 0xFF10 + d for d in range(10)}),  # full-width
                    str(product_id).translate({ord("0") + d: 0x0660 + d for d in range(10)})):  # Arabic-Indic
        for url in (f"/api/products/{spelled}", f"/products/{spelled}/image"):
            assert client.get(url).status_code == 404, url


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


@pytest.mark.parametrize("form, json_value, expected", [
    ("7", 7, 7), ("007", "007", 7), ("500", 500, 500),
    ("7.0", 7.0, None), ("2.5", 2.5, None), ("true", True, None), ("1_0", "1_0", None), ("٣", "٣", None),
    ("５", "５", None), (" 7", " 7", None), ("1e3", 1e3, None), ("0x10", "0x10", None),
])
def test_form_and_json_agree_on_k(form, json_value, expected):
    """The same k is accepted, or refused, whether it comes in a form (always text) or in JSON."""
    for value in (form, json_value):
        if expected is None:
            with pytest.raises(SearchError, match="k must be a whole number"):
                SearchParameters.read({"k": value})
        else:
            assert SearchParameters.read({"k": value}).given() == {"k": expected}

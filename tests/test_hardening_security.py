"""Web security: hostile names shown inert, SQL by parameters only, uploads kept off the disk, security headers,
no debug mode, secrets from the environment only, nothing admin-like over HTTP, a rate limit.

(URL search has its own file, test_hardening_urls.py.)"""
from __future__ import annotations

import ast
import csv
import io
import os
import re
import shutil
import sys
import uuid
from dataclasses import replace
from html.parser import HTMLParser

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from catalogue.folder import list_catalogue, load_metadata
from config import Settings
from ingest.loader import Loader
from search.service import SearchService
from tests.conftest import ROOT
from webapp import create_app

# --- hostile names in the catalogue --------------------------------------------------------------------------

CATEGORY = "Bags <img src=x onerror=alert(1)> 'single' \"double\"; DROP TABLE products; -- ñ"
STEM = "<svg onload=alert(2)> it's \"x\"; DELETE FROM features; -- Kāma 👜"
METADATA = {
    "story": "<script>alert('xss')</script> & <b>bold</b>",
    "colour": "Robert'); DROP TABLE categories;--",
    "quote": "\"quoted\", 'single', back\\slash, «guillemets» 👜",
}


class Page(HTMLParser):
    """A page as a browser would parse it: its elements with their attributes, and its text."""

    def __init__(self, markup: str):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def active_content(self) -> list[str]:
        """Anything that could run or restyle: inline scripts, event handlers, inline styles, svg, iframes."""
        found = []
        for tag, attrs in self.elements:
            if tag in ("svg", "iframe", "object", "embed", "style", "b") or (tag == "script" and not attrs.get("src")):
                found.append(tag)
            found += [f"{tag}[{name}]" for name in attrs if name.startswith("on") or name == "style"]
            if tag == "img" and attrs.get("src") == "x":
                found.append("img[src=x]")
        return found



@pytest.fixture
def hostile_catalogue(tmp_path, fashion_slice):
    """Two real photos under a hostile category and file names, with a CSV of hostile metadata."""
    folder = tmp_path / "catalogue" / CATEGORY
    folder.mkdir(parents=True)
    photos = [sorted((fashion_slice / c).glob("*.jpg"))[3] for c in ("Backpacks", "Watches")]
    names = [f"{STEM}.jpg", photos[1].name]
    for photo, name in zip(photos, names):
        shutil.copy(photo, folder / name)
    with open(tmp_path / "products.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", *METADATA])
        writer.writerow([names[0], *METADATA.values()])
    return tmp_path / "catalogue", tmp_path / "products.csv", folder / names[0]


def test_hostile_names_ingest_search_and_show_inert(store, trained_model, hostile_catalogue):
    catalogue, csv_path, photo = hostile_catalogue
    files = list_catalogue(catalogue)
    report = Loader(trained_model, store, progress=False).ingest(files, load_metadata(csv_path, files))
    assert report.added == 2 and not report.rejected
    settings = Settings(rate_limit="1000 per minute")
    client = create_app(settings, SearchService(trained_model, store)).test_client()

    upload = {"image": (io.BytesIO(photo.read_bytes()), photo.name), "scope": "all", "k": "2"}
    body = client.post("/api/search", data=dict(upload), content_type="multipart/form-data").get_json()
    first = body["results"][0]
    assert (first["external_id"], first["category"], first["metadata"]) == (STEM, CATEGORY, METADATA)
    product = client.get(f"/api/products/{first['product_id']}")
    assert product.mimetype == "application/json" and product.headers["X-Content-Type-Options"] == "nosniff"
    assert (product.get_json()["external_id"], product.get_json()["metadata"]) == (STEM, METADATA)
    assert CATEGORY in {c["name"] for c in client.get("/api/categories").get_json()["categories"]}

    upload["image"] = (io.BytesIO(photo.read_bytes()), photo.name)
    results = client.post("/search", data=upload, content_type="multipart/form-data").get_data(as_text=True)
    review = client.get(body["review_url"]).get_data(as_text=True)
    for markup in (results, review):
        page = Page(markup)
        text = "".join(page.text)
        assert page.active_content() == [] and STEM in text and CATEGORY in text
    assert all(value in "".join(Page(results).text) for value in METADATA.values())
    assert client.get(f"/products/{first['product_id']}/image").data == photo.read_bytes()


def _calls_with_built_strings(tree: ast.AST, names: set[str]) -> list[int]:
    """Lines where a SQL-running call gets a string built at run time (f-string, +, % or .format)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            first = node.args[0]
            built = isinstance(first, (ast.JoinedStr, ast.BinOp)) or (
                isinstance(first, ast.Call) and isinstance(first.func, ast.Attribute) and first.func.attr == "format")
            if name in names and built:
                found.append(node.lineno)
    return found


def source_files():
    return [p for d in ("cli", "config", "db", "ingest", "model", "search", "webapp", "migrations")
            for p in (ROOT / d).rglob("*.py")]


def test_sql_is_never_built_from_strings():
    sql_calls = {"text", "exec_driver_sql", "execute", "executescript"}
    offenders = {str(p.relative_to(ROOT)): lines for p in source_files()
                 if (lines := _calls_with_built_strings(ast.parse(p.read_text()), sql_calls))}
    assert offenders == {}


# --- uploads never touch the filesystem ----------------------------------------------------------------------

_FILE_EVENTS: list | None = None  # filled while a test records; audit hooks cannot be removed once added
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | getattr(os, "O_TMPFILE", 0)


def _record_file_events(event: str, args: tuple) -> None:
    if _FILE_EVENTS is None:
        return
    if event == "open":
        path, mode, flags = args
        if (mode and any(c in mode for c in "wax+")) or (flags or 0) & WRITE_FLAGS:
            _FILE_EVENTS.append((event, str(path)))
    elif event.startswith(("os.", "shutil.", "tempfile.")) and event not in ("os.listdir", "os.scandir"):
        _FILE_EVENTS.append((event, " ".join(map(str, args))))


sys.addaudithook(_record_file_events)


def test_uploads_and_their_names_never_touch_the_filesystem(client, fashion_slice):
    global _FILE_EVENTS
    token = f"probe-{uuid.uuid4().hex}"
    # A photo over 500 KB: Werkzeug would spool an upload that size to a temporary file.
    photo = sorted((fashion_slice / "Heels").glob("*.jpg"))[0]
    big = photo.read_bytes() + os.urandom(700 * 1024)  # JPEG decoders ignore what follows the end marker
    names = [f"../../{token}.jpg", f"/tmp/{token}.jpg", f"{token}\x00.jpg", f"..\\..\\{token}.jpg"]
    # Encoded beforehand: the test client would spool a big body to a temporary file of its own.
    bodies = [encode_multipart({"image": FileStorage(io.BytesIO(big), name)}) for name in names]
    _FILE_EVENTS = []
    try:
        answers = [client.post(url, data=body, content_type=f"multipart/form-data; boundary={boundary}")
                   for boundary, body in bodies for url in ("/api/search", "/search")]
        events = list(_FILE_EVENTS)
    finally:
        _FILE_EVENTS = None
    assert [a.status_code for a in answers] == [200] * len(answers)
    assert events == []


# --- headers, pages, debug mode, secrets, routes -------------------------------------------------------------

def test_security_headers_on_every_kind_of_answer(client, fashion_slice):
    photo = sorted((fashion_slice / "Watches").glob("*.jpg"))[0]
    body = client.post("/api/search", data={"image": (io.BytesIO(photo.read_bytes()), "a.jpg")},
                       content_type="multipart/form-data").get_json()
    answers = {
        "page": client.get("/"), "api": client.get("/api/categories"), "review": client.get(body["review_url"]),
        "image": client.get(f"/products/{body['results'][0]['product_id']}/image"),
        "static": client.get("/static/app.js"), "error page": client.get("/nowhere"),
        "error json": client.get("/api/products/999999"),
    }
    for kind, response in answers.items():
        policy = response.headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, kind
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, kind
        assert response.headers.get("X-Content-Type-Options") == "nosniff", kind
        assert response.headers.get("X-Frame-Options") == "DENY", kind


def test_pages_hold_no_inline_scripts_or_styles(client, fashion_slice):
    photo = sorted((fashion_slice / "Heels").glob("*.jpg"))[0]
    results = client.post("/search", data={"image": (io.BytesIO(photo.read_bytes()), "a.jpg")},
                          content_type="multipart/form-data").get_data(as_text=True)
    review_url = Page(results).elements
    review = next(attrs["href"] for tag, attrs in review_url if attrs.get("id") == "review-link")
    for markup in (client.get("/").get_data(as_text=True), results, client.get(review).get_data(as_text=True),
                   client.get("/nowhere").get_data(as_text=True)):
        assert Page(markup).active_content() == []


class Exploding(SearchService):
    """A service that fails inside, with internals in its message."""

    def search(self, *args, **kwargs):
        raise RuntimeError("internal detail: /srv/secret/path password=hunter2")


def test_no_debug_mode_and_no_stack_traces(monkeypatch, web_settings, web_service, fashion_slice):
    monkeypatch.setenv("FLASK_DEBUG", "1")  # must not switch debug mode on in the app
    app = create_app(web_settings, Exploding(web_service.model, web_service.store))
    assert app.debug is False
    client = app.test_client()
    photo = sorted((fashion_slice / "Heels").glob("*.jpg"))[0].read_bytes()
    for url in ("/api/search", "/search"):
        response = client.post(url, data={"image": (io.BytesIO(photo), "a.jpg")}, content_type="multipart/form-data")
        text = response.get_data(as_text=True)
        assert response.status_code == 500 and "something went wrong" in text
        assert "Traceback" not in text and "hunter2" not in text and "/srv/secret" not in text


def test_the_serve_command_never_runs_the_debugger(monkeypatch, app):
    import werkzeug.serving

    from cli import main as cli

    monkeypatch.setenv("FLASK_DEBUG", "1")
    options = {}
    monkeypatch.setattr(werkzeug.serving, "run_simple", lambda host, port, application, **kw: options.update(kw))
    monkeypatch.setattr("webapp.create_app", lambda settings: app)
    assert cli.main(["serve", "--port", "8123"]) == 0
    assert options["use_debugger"] is False and options["use_reloader"] is False


def _environment_reads(tree: ast.AST) -> list[int]:
    """Lines that read the environment: os.getenv(...), os.environ.get(...), os.environ[...]."""
    lines = []
    for node in ast.walk(tree):
        called = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
            node.func.attr == "getenv" or (node.func.attr == "get" and "environ" in ast.unparse(node.func.value)))
        indexed = isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and ast.unparse(
            node.value).endswith("environ")
        if called or indexed:
            lines.append(node.lineno)
    return lines


def test_settings_and_secrets_come_from_the_environment_only():
    readers = {str(p.relative_to(ROOT)) for p in source_files() if _environment_reads(ast.parse(p.read_text()))}
    assert readers == {"config/settings.py"}
    credentials = re.compile(r"""(://[^/\s:@'"]+:[^/\s@'"{$]+@|(password|passwd|secret|token)\s*=\s*['"][^'"]+['"])""",
                             re.IGNORECASE)
    leaks = {str(p.relative_to(ROOT)): m.group(0) for p in source_files() + [ROOT / "alembic.ini"]
             if (m := credentials.search(p.read_text()))}
    assert leaks == {}


# Every route the app has, and nothing else: anything that changes the catalogue is on the command line only.
PRODUCT = "<product_id:product_id>"  # webapp.shop.ProductIdConverter: the store's signed 64-bit ids
PUBLIC_ROUTES = {
    ("/", "GET"), ("/search", "GET"), ("/search", "POST"), (f"/products/{PRODUCT}/image", "GET"),
    ("/review/<trace_id>", "GET"), ("/review/<trace_id>/upload.jpg", "GET"),
    ("/review/<trace_id>/<any(heatmap, crop):name>.jpg", "GET"),
    ("/api/search", "POST"), (f"/api/products/{PRODUCT}", "GET"), ("/api/categories", "GET"),
    ("/healthz", "GET"), ("/api/openapi.json", "GET"), ("/static/<path:filename>", "GET"),
}


def test_nothing_admin_like_is_reachable_over_http(app, client):
    routes = {(rule.rule, method) for rule in app.url_map.iter_rules()
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == PUBLIC_ROUTES
    for path in ("/admin", "/ingest", "/api/ingest", "/train", "/api/train", "/reembed", "/api/reembed",
                 "/db/upgrade", "/api/db/upgrade", "/upgrade", "/console", "/api/products/1/delete"):
        for method in ("GET", "POST", "PUT", "DELETE"):
            assert client.open(path, method=method).status_code in (404, 405), (method, path)
    for method in ("PUT", "DELETE", "PATCH"):
        assert client.open("/api/products/1", method=method).status_code == 405
        assert client.open("/api/categories", method=method).status_code == 405


# --- rate limit ----------------------------------------------------------------------------------------------

def _search(client, fashion_slice, url="/api/search", **environ):
    photo = sorted((fashion_slice / "Sunglasses").glob("*.jpg"))[0]
    return client.post(url, data={"image": (io.BytesIO(photo.read_bytes()), "a.jpg")},
                       content_type="multipart/form-data", environ_base=environ)


def test_searches_are_rate_limited_per_client(web_settings, web_service, fashion_slice):
    client = create_app(replace(web_settings, rate_limit="3 per minute"), web_service).test_client()
    statuses = [_search(client, fashion_slice, url).status_code for url in ("/api/search", "/search", "/api/search")]
    assert statuses == [200, 200, 200]  # the page and the API share one budget
    refused = _search(client, fashion_slice)
    assert refused.status_code == 429 and "too many searches" in refused.get_json()["error"]
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    page = _search(client, fashion_slice, "/search")
    assert page.status_code == 429 and b'id="error-message"' in page.data and b"too many searches" in page.data
    # other clients, and the rest of the app, are not affected
    assert _search(client, fashion_slice, REMOTE_ADDR="192.0.2.7").status_code == 200
    assert client.get("/api/categories").status_code == 200 and client.get("/healthz").status_code == 200


def test_forwarded_addresses_count_only_behind_a_trusted_proxy(web_settings, web_service, fashion_slice):
    direct = create_app(replace(web_settings, rate_limit="1 per minute"), web_service).test_client()
    assert _search(direct, fashion_slice, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 200
    # a client cannot dodge the limit by claiming to be someone else
    assert _search(direct, fashion_slice, HTTP_X_FORWARDED_FOR="198.51.100.2").status_code == 429
    proxied = create_app(replace(web_settings, rate_limit="1 per minute", trusted_proxies=1), web_service).test_client()
    assert _search(proxied, fashion_slice, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 200
    assert _search(proxied, fashion_slice, HTTP_X_FORWARDED_FOR="198.51.100.2").status_code == 200
    assert _search(proxied, fashion_slice, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 429


def test_rate_limit_setting():
    assert Settings.from_env({}).rate_limit == "60 per minute"
    assert Settings.from_env({"LOOKALIKE_RATE_LIMIT": "5/second;100/hour"}).rate_limit == "5/second;100/hour"
    with pytest.raises(ValueError, match="LOOKALIKE_RATE_LIMIT"):
        Settings.from_env({"LOOKALIKE_RATE_LIMIT": "lots"})

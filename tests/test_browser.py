"""The shopper's and reviewer's pages in a real browser: Debian's Chromium driven headless by Playwright."""
import os
import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.conftest import ROOT
from tests.webapp_fixtures import app, web_service, web_settings  # noqa: F401 (fixtures)

CHROMIUM = os.environ.get("LOOKALIKE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = Path(os.environ.get("LOOKALIKE_TEST_OUTPUT") or ROOT / "test-output") / "browser"
# No background traffic: this machine has no network beyond loopback.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


@pytest.fixture(scope="module")
def live_url(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="module")
def page():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"no Chromium at {CHROMIUM}: the browser test must run in CI")
        pytest.skip(f"no Chromium at {CHROMIUM} (make test-deps installs it)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page(viewport={"width": 1200, "height": 900})
        browser.close()


@pytest.mark.slow
def test_search_by_photo_then_read_how_it_was_computed(page, live_url, fashion_slice):
    OUTPUT.mkdir(parents=True, exist_ok=True)
    photo = sorted((fashion_slice / "Backpacks").glob("*.jpg"))[5]
    page.goto(live_url + "/")
    page.set_input_files("#image", str(photo))
    page.wait_for_selector("#preview:not([hidden])")
    page.screenshot(path=str(OUTPUT / "1-shop-preview.png"), full_page=True)

    page.click("button[type=submit]")
    page.wait_for_selector("#results")
    assert page.inner_text("#predicted") == "Backpacks"
    cards = page.locator("#results .card")
    assert cards.count() == 12
    assert cards.first.locator(".external-id").inner_text() == f"#{photo.stem}"
    assert page.locator("#weak").count() == 0
    # every result image really loaded from the database (once the browser has finished fetching them)
    page.evaluate("Promise.all(Array.from(document.querySelectorAll('#results img')).map(i => i.complete ? null : "
                  "new Promise(done => { i.onload = i.onerror = done; })))")
    assert page.evaluate("Array.from(document.querySelectorAll('#results img')).every(i => i.naturalWidth > 0)")
    page.screenshot(path=str(OUTPUT / "2-shop-results.png"), full_page=True)

    page.click("#review-link")
    for step in range(1, 9):
        assert page.locator(f"#step-{step}").is_visible()
    assert "Backpacks" in page.inner_text("#step-3")
    assert "d = √(" in page.inner_text("#step-6")
    assert page.locator("#step-7 tbody tr").count() == 12
    page.screenshot(path=str(OUTPUT / "3-review.png"), full_page=True)


@pytest.mark.slow
def test_a_bad_upload_shows_the_reason(page, live_url, tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_text("this is not a picture")
    page.goto(live_url + "/")
    page.set_input_files("#image", str(bad))
    page.click("button[type=submit]")
    assert "not a usable image" in page.inner_text("#error-message")
    page.screenshot(path=str(OUTPUT / "4-bad-upload.png"), full_page=True)

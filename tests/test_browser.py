"""The shopper's and reviewer's pages in a real browser: Debian's Chromium driven headless by Playwright."""
import os
import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.conftest import ROOT

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
        yield browser.new_page(viewport={"width": 1200, "height": 900}, has_touch=True)
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
    assert "the whole photo" in page.inner_text("#searched-box")  # the web tests' service never crops by itself
    assert "50 % of the map's peak" in page.inner_text("#step-box")
    assert page.evaluate("document.getElementById('heatmap').naturalWidth") > 0
    assert "Backpacks" in page.inner_text("#step-3")
    assert "d = √(" in page.inner_text("#step-6")
    assert page.locator("#step-7 tbody tr").count() == 12
    page.screenshot(path=str(OUTPUT / "3-review.png"), full_page=True)


def box_value(page) -> list[int]:
    return [int(v) for v in page.input_value("#box-field").split(",")]


def drag(page, selector: str, dx: float, dy: float, touch: bool = False) -> None:
    """Drag the element's centre by (dx, dy) CSS px with the mouse, or with one finger through Chromium's input."""
    bounds = page.locator(selector).bounding_box()
    x, y = bounds["x"] + bounds["width"] / 2, bounds["y"] + bounds["height"] / 2
    if not touch:
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + dx / 2, y + dy / 2)
        page.mouse.move(x + dx, y + dy)
        page.mouse.up()
        return
    cdp = page.context.new_cdp_session(page)
    for kind, points in [("touchStart", [{"x": x, "y": y}]), ("touchMove", [{"x": x + dx / 2, "y": y + dy / 2}]),
                         ("touchMove", [{"x": x + dx, "y": y + dy}]), ("touchEnd", [])]:
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})
    page.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")  # handled


@pytest.mark.slow
def test_move_the_box_and_search_that_part_again(page, live_url, fashion_slice):
    OUTPUT.mkdir(parents=True, exist_ok=True)
    photo = sorted((fashion_slice / "Heels").glob("*.jpg"))[3]  # 60 × 80 px, shown 240 × 320
    page.goto(live_url + "/")
    page.set_input_files("#image", str(photo))
    page.click("button[type=submit]")
    page.wait_for_selector("#box-form:not([hidden])")  # the photo was kept in the browser: the box can be searched
    assert "the whole photo" in page.inner_text("#box-source") and box_value(page) == [0, 0, 60, 80]

    page.focus("#box")
    for _ in range(10):
        page.keyboard.press("Shift+ArrowLeft")  # 2 px of the photo a press
    for _ in range(5):
        page.keyboard.press("Shift+ArrowUp")
    assert box_value(page) == [0, 0, 40, 70]
    page.keyboard.press("ArrowRight")
    assert box_value(page) == [2, 0, 40, 70]
    drag(page, "#box", 40, 20)  # 10 and 5 px of the photo
    assert box_value(page) == [12, 5, 40, 70]
    drag(page, "#box-handle", -40, -40, touch=True)  # the corner, with a finger: 10 px narrower and lower
    assert box_value(page) == [12, 5, 30, 60]
    drag(page, "#box", 400, 400)  # dragged past the edge: the box stays on the photo
    assert box_value(page) == [30, 20, 30, 60]
    page.screenshot(path=str(OUTPUT / "5-box-moved.png"), full_page=True)

    page.keyboard.press("Enter")
    page.wait_for_selector("#results")
    assert "your box" in page.inner_text("#box-source")
    assert page.inner_text("#box-value") == "30,20,30,60" and box_value(page) == [30, 20, 30, 60]
    assert page.is_visible("#box-form")  # and again, as often as the shopper likes
    page.screenshot(path=str(OUTPUT / "6-box-results.png"), full_page=True)
    page.click("#review-link")
    assert "30 × 60" not in page.inner_text("#searched-box") and "x 30, y 20, w 30, h 60" in page.inner_text(
        "#searched-box")
    assert page.evaluate("document.getElementById('crop').naturalWidth") > 0
    # The map of the shopper's box, over the box.
    assert "the shopper's box" in page.inner_text("#step-box")
    assert page.evaluate("document.getElementById('heatmap').naturalWidth") > 0
    page.screenshot(path=str(OUTPUT / "7-review-box.png"), full_page=True)


@pytest.mark.slow
def test_a_results_page_searches_a_box_of_its_own_photo_not_one_kept_since(page, live_url, fashion_slice,
                                                                           tmp_path):
    first = sorted((fashion_slice / "Heels").glob("*.jpg"))[3]
    # Another file of the same length and pixels, its bytes different: its JFIF header's horizontal density.
    data = bytearray(first.read_bytes())
    assert data[6:11] == b"JFIF\0"
    data[15] ^= 1
    second = tmp_path / "copy.jpg"
    second.write_bytes(bytes(data))
    context = page.context.browser.new_context()  # one browser profile, two tabs: one IndexedDB
    tab, other = context.new_page(), context.new_page()
    for shown, photo in ((tab, first), (other, second)):
        shown.goto(live_url + "/")
        shown.set_input_files("#image", str(photo))
        shown.click("button[type=submit]")
        shown.wait_for_selector("#box-form:not([hidden])")
    tab.click("#review-link")
    tab.go_back()  # the first tab's results page, drawn again, after the other tab kept its photo
    tab.wait_for_selector("#results")
    tab.wait_for_timeout(500)  # app.js has read the kept photo
    kept = tab.evaluate("document.querySelector('#box-form input[type=file]')?.files[0]?.name ?? null")
    context.close()
    assert kept in (None, first.name)  # never the other tab's photo: at worst, the box cannot be searched


@pytest.mark.slow
def test_a_bad_upload_shows_the_reason(page, live_url, tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_text("this is not a picture")
    page.goto(live_url + "/")
    page.set_input_files("#image", str(bad))
    page.click("button[type=submit]")
    assert "not a usable image" in page.inner_text("#error-message")
    page.screenshot(path=str(OUTPUT / "4-bad-upload.png"), full_page=True)

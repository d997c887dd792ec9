"""Memory held for a search: tiny files declaring huge pictures must not make the serving process grow.

A search's trace (kept 15 minutes for the reviewer page) holds what the pages show, not the decoded picture, in
a store bounded by bytes; large JPEGs are decoded at reduced scale. The last test serves the app with gunicorn
as in production and searches with declared-huge pictures, checking the worker's resident memory.
"""
from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from PIL import Image

from tests.images import hostile_uploads, progressive_jpeg
from tests.served import catalogue_database, gunicorn
from webapp.traces import TraceStore

MAX_MEMORY_GROWTH = 0.05


def test_a_trace_keeps_only_what_the_pages_show(app, client):
    declared = progressive_jpeg(1900, 1900)  # 3.6 M pixels in a few hundred bytes
    body = client.post("/api/search", data={"image": (io.BytesIO(declared), "grey.jpg")},
                       content_type="multipart/form-data").get_json()
    trace = app.extensions["lookalike"].traces.get(body["review_url"].rsplit("/", 1)[-1])
    assert trace.result.query is None and trace.result.model_input is None
    assert Image.open(io.BytesIO(trace.thumbnail)).size == (238, 238)  # decoded at 1/8: no larger thumbnail
    assert trace.size < 64 * 1024  # the decoded picture alone would be 1900 × 1900 × 4 bytes = 14 MB
    review = client.get(body["review_url"]).get_data(as_text=True)
    assert "Uploaded: 1900 × 1900 px" in review and "Resized to 96 × 96 px" in review


def test_the_trace_store_is_bounded_by_bytes(web_service, fashion_slice):
    result = web_service.search(sorted((fashion_slice / "Heels").glob("*.jpg"))[0].read_bytes())
    store = TraceStore(ttl=900, max_bytes=1024 * 1024)
    thumbnail = bytes(100 * 1024)
    traces = [store.put(result, thumbnail, {}) for _ in range(40)]
    assert store.bytes <= store.max_bytes and 0 < len(store) < 10
    assert store.bytes == sum(t.size for t in traces[-len(store):])
    assert store.get(traces[0].id) is None and store.get(traces[-1].id) is traces[-1]  # the oldest went first


@pytest.mark.slow
def test_searches_with_declared_huge_images_do_not_grow_the_worker(tmp_path, trained_model, trained_model_path,
                                                                   fashion_slice, capsys):
    uploads = hostile_uploads()
    database = catalogue_database(tmp_path, trained_model, fashion_slice)
    with gunicorn(tmp_path, database, trained_model_path) as (base, worker):
        statuses: dict[str, set[int]] = {name: set() for name in uploads}
        lock = threading.Lock()

        def search(name: str) -> None:
            data, _ = uploads[name]
            status = requests.post(base + "/api/search", files={"image": ("upload", data)}, timeout=120).status_code
            with lock:
                statuses[name].add(status)

        def rounds(count: int) -> None:
            with ThreadPoolExecutor(4) as clients:  # searches in parallel, as shoppers send them
                list(clients.map(search, list(uploads) * count))

        rounds(2)  # warm-up: the allocator's arenas and TensorFlow's buffers reach their working size
        start = worker.memory_info().rss
        rounds(8)
        end = worker.memory_info().rss
    growth = end / start - 1
    searches = 8 * len(uploads)
    with capsys.disabled():
        print(f"\ndeclared-huge uploads: {searches} searches after the warm-up ({', '.join(uploads)}); worker memory "
              f"{start / 2**20:.0f} MiB → {end / 2**20:.0f} MiB ({100 * growth:+.1f} %)")
    assert statuses == {name: {status} for name, (_, status) in uploads.items()}
    assert growth < MAX_MEMORY_GROWTH

"""Slow senders against the production set-up: nginx (deploy/nginx.conf.template) in front of gunicorn.

Clients trickle a request at 100 B/s — the headers of some, the multipart body of others — for as long as they
like. Straight at gunicorn, sixteen of them hold its eight threads and ``/healthz`` stops answering (the test
checks that this is still so, to know that its tricklers bite). Through nginx, which reads each request whole
before passing it on, ``/healthz`` and a normal search must answer while twice as many trickle, and nginx must
still be holding every trickler (they are absorbed, not merely cut off).
"""
from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
import requests

from tests.served import catalogue_database, gunicorn, nginx

TRICKLE_BYTES, TRICKLE_EVERY = 10, 0.1  # 100 B/s
SETTLE_SECONDS = 2.0  # time for every trickler to be connected and stuck
ANSWER_WITHIN = 15.0  # generous for a loaded 2-core machine; without the proxy the answer never comes


@dataclass
class Tricklers:
    """Connections that send a request a few bytes at a time, from one loopback address, until stopped."""

    target: str
    source: str
    stop: threading.Event = field(default_factory=threading.Event)
    answered: list[str] = field(default_factory=list)  # "kind: what the server did" before the request was whole
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, headers: int = 0, bodies: int = 0) -> Tricklers:
        for kind in ["headers"] * headers + ["body"] * bodies:
            thread = threading.Thread(target=self._run, args=(kind,), daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def _run(self, kind: str) -> None:
        url = urlsplit(self.target)
        if kind == "headers":
            head, rest = b"GET /healthz HTTP/1.1\r\n", b"X-Slow: " + b"a" * 10_000
        else:
            head = (f"POST /api/search HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Length: 200000\r\n"
                    "Content-Type: multipart/form-data; boundary=slowslowslow\r\n\r\n").encode()
            rest = (b"--slowslowslow\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
                    b"Content-Type: image/jpeg\r\n\r\n" + b"\xff" * 199_000)
        try:
            with socket.create_connection((url.hostname, url.port), timeout=5,
                                          source_address=(self.source, 0)) as sock:
                sock.sendall(head)
                for start in range(0, len(rest), TRICKLE_BYTES):
                    if self.stop.wait(TRICKLE_EVERY):
                        return
                    sock.sendall(rest[start:start + TRICKLE_BYTES])
                    if select.select([sock], [], [], 0)[0]:  # an answer (or a close) before the request is whole
                        first_line = sock.recv(1024).split(b"\r\n", 1)[0]
                        self.answered.append(f"{kind}: {first_line.decode(errors='replace') or 'closed'}")
                        return
        except OSError as e:
            self.answered.append(f"{kind}: {e.__class__.__name__}")

    def of(self, kind: str) -> list[str]:
        return [what for what in self.answered if what.startswith(kind)]

    def __enter__(self) -> Tricklers:
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)


def timed(send) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = send()
    return response, time.monotonic() - started


@pytest.mark.slow
def test_slow_senders_do_not_stop_the_production_server(tmp_path, trained_model, trained_model_path, fashion_slice,
                                                       capsys):
    photo = sorted((fashion_slice / "Watches").glob("*.jpg"))[1]
    database = catalogue_database(tmp_path, trained_model, fashion_slice)
    with gunicorn(tmp_path, database, trained_model_path) as (app_url, _), nginx(tmp_path, app_url) as proxy_url:
        # Straight at gunicorn: 16 tricklers take its 8 threads, and the health check waits behind them.
        with Tricklers(app_url, "127.0.0.2").start(headers=8, bodies=8):
            time.sleep(SETTLE_SECONDS)
            with pytest.raises(requests.Timeout):
                requests.get(app_url + "/healthz", timeout=5)

        # Through nginx: twice as many, from two addresses (nginx allows 20 connections per address).
        with Tricklers(proxy_url, "127.0.0.3").start(headers=8, bodies=8) as first, \
                Tricklers(proxy_url, "127.0.0.4").start(headers=8, bodies=8) as second:
            time.sleep(SETTLE_SECONDS)
            health, health_seconds = timed(lambda: requests.get(proxy_url + "/healthz", timeout=ANSWER_WITHIN))
            searches = [timed(lambda: requests.post(proxy_url + "/api/search", timeout=ANSWER_WITHIN, data={"k": "3"},
                                                    files={"image": ("photo.jpg", photo.read_bytes())}))
                        for _ in range(5)]
            bodies_answered = first.of("body") + second.of("body")
            # One address past nginx's cap: 8 of its bodies are trickling, 15 more make 23 > 20.
            with Tricklers(proxy_url, "127.0.0.3").start(bodies=15) as crowd:
                time.sleep(SETTLE_SECONDS)
        # A body over nginx's own limit: its answer comes in the app's forms, JSON for the API and a page for people.
        too_large = {"image": ("big.jpg", b"\xff" * (12 << 20))}
        api, page = (requests.post(proxy_url + path, files=too_large, timeout=ANSWER_WITHIN)
                     for path in ("/api/search", "/search"))

    slowest_search = max(seconds for _, seconds in searches)
    with capsys.disabled():
        print(f"\nslow senders at 100 B/s: 16 straight at gunicorn: /healthz gave no answer in 5 s; 32 through nginx: "
              f"/healthz {1000 * health_seconds:.0f} ms, 5 searches at most {1000 * slowest_search:.0f} ms, "
              f"{16 - len(bodies_answered)} of 16 trickling bodies still held; one address past the cap of 20 "
              f"connections: {len(crowd.answered)} of 15 more refused ({', '.join(sorted(set(crowd.answered)))})")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    for response, _ in searches:
        assert response.status_code == 200 and response.json()["results"][0]["external_id"] == photo.stem
    assert bodies_answered == [], "nginx answered or dropped a body still trickling in"
    assert crowd.answered and all("503" in what for what in crowd.answered), crowd.answered
    assert api.status_code == 413 and api.json() == {
        "error": "the upload is larger than this server takes (11 MiB)", "status": 413}
    assert page.status_code == 413 and page.headers["Content-Type"].startswith("text/html")
    assert "That did not work" in page.text and "larger than this server takes" in page.text

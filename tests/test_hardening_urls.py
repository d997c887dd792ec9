"""The URL fetcher against a local misbehaving server: every answer a correct result or a 4xx with a message.

The server (raw sockets, so it can break HTTP) answers by path: a photo; another protocol; a bad chunk; 150
headers; a 70 KB header line; a body without headers; a status line trickled a byte at a time; slow redirects;
a redirect loop; redirects anywhere; bodies over the size limit or trickled. Then: one deadline for the whole
fetch, the address rules (IANA's special-purpose ranges, IPv6 forms embedding IPv4 addresses), DNS resolved once
and connected to as checked (rebinding), and TLS keeping the URL's host name.
"""
from __future__ import annotations

import contextlib
import ipaddress
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from dataclasses import replace

import pytest

from tests.images import encode, gradient
from webapp import create_app, fetching
from webapp.fetching import fetch_url, is_public
from webapp.uploads import UploadError

LIMIT = 2 * 1024 * 1024  # the web tests' upload limit
PHOTO = encode(gradient(64, 48))
NOT_HTTP = "did not answer in HTTP"
TOO_LONG = "took too long"


def http_answer(body: bytes = PHOTO, status: str = "200 OK", headers: tuple[str, ...] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Content-Type: image/jpeg", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Misbehaving(socketserver.BaseRequestHandler):
    """Reads the request head, then answers as the path says (``seen`` records each request's head)."""

    seen: list[bytes]

    def handle(self):
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            if not (data := self.request.recv(4096)):
                return
            head += data
        self.seen.append(head)
        path = head.split(b" ", 2)[1].decode()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the fetcher gave up, as it should
            self.answer(path)

    def answer(self, path: str) -> None:
        send = self.request.sendall
        if path == "/photo.jpg":
            send(http_answer())
        elif path == "/not-http":
            send(b"SSH-2.0-OpenSSH_9.6\r\n")
        elif path == "/bad-chunk":
            send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + PHOTO)
        elif path == "/many-headers":
            send(http_answer(headers=tuple(f"X-Header-{i}: {i}" for i in range(150))))
        elif path == "/long-header":
            send(http_answer(headers=("X-Long: " + "a" * 70_000,)))
        elif path == "/no-headers":
            send(PHOTO)
        elif path == "/status-404":
            send(http_answer(b"gone", "404 Not Found"))
        elif path == "/trickle-status":  # the whole answer over ~6 s, against a 1 s limit
            for byte in http_answer()[:24]:
                send(bytes([byte]))
                time.sleep(0.25)
        elif path.startswith("/redirect-slowly/"):  # each hop within the limit, all of them not
            hops = int(path.rsplit("/", 1)[1])
            time.sleep(0.4)
            send(http_answer(b"", "302 Found", (f"Location: /redirect-slowly/{hops - 1}",)) if hops else http_answer())
        elif path.startswith("/redirect?to="):
            send(http_answer(b"", "302 Found", (f"Location: {path.split('=', 1)[1]}",)))
        elif path == "/redirect-loop":
            send(http_answer(b"", "302 Found", ("Location: /redirect-loop",)))
        elif path == "/big-declared":
            send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (LIMIT + 1))
        elif path == "/big-streamed":
            send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            for _ in range(LIMIT // 65536 + 2):
                send(b"x" * 65536)
        elif path == "/slow-body":  # a byte every 0.1 s for 30 s
            send(b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n")
            for _ in range(300):
                send(b"x")
                time.sleep(0.1)


@pytest.fixture
def server():
    """The misbehaving server on loopback: yields its base URL and the request heads it saw."""
    seen: list[bytes] = []
    handler = type("Handler", (Misbehaving,), {"seen": seen})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def strict_client(web_settings, web_service):
    """The API with a 1 s URL time limit."""
    return create_app(replace(web_settings, url_timeout_seconds=1.0), web_service).test_client()


@pytest.mark.parametrize("path, status, message", [
    ("/photo.jpg", 200, None),
    ("/many-headers", 200, None),  # legal HTTP, however many headers: a correct answer
    ("/not-http", 400, NOT_HTTP),
    ("/bad-chunk", 400, NOT_HTTP),
    ("/long-header", 400, NOT_HTTP),
    ("/no-headers", 400, NOT_HTTP),
    ("/status-404", 400, "answered HTTP 404"),
    ("/redirect-loop", 400, "redirected more than 5 times"),
    ("/big-declared", 413, "larger than the limit"),
    ("/big-streamed", 413, "larger than the limit"),
    ("/slow-body", 400, TOO_LONG),
    ("/trickle-status", 400, TOO_LONG),  # the limit counts from the start, not from the headers
    ("/redirect-slowly/4", 400, TOO_LONG),  # and covers every redirect
])
def test_misbehaving_servers_get_a_4xx_with_a_message(strict_client, server, path, status, message):
    base, _ = server
    response = strict_client.post("/api/search", json={"image_url": base + path, "k": 3})
    body = response.get_json()
    assert response.status_code == status, body
    if message:
        assert message in body["error"] and body["status"] == status


def test_redirects_within_the_limit_are_followed(server):
    base, seen = server
    assert fetch_url(base + "/redirect-slowly/1", LIMIT, timeout=5, allow_private=True) == PHOTO
    assert len(seen) == 2


@pytest.mark.parametrize("url, message", [
    ("ftp://example.com/a.jpg", "http or https"),
    ("file:///etc/passwd", "http or https"),
    ("http:///a.jpg", "http or https"),
    ("http://example.com:99999/a.jpg", "invalid host or port"),
    ("http://example.com:-1/a.jpg", "invalid host or port"),
    ("http://example.com:0/a.jpg", "invalid host or port"),
    ("http://a..b/a.jpg", "invalid host or port"),
    ("http://user:pw@example.com/a.jpg", "user name or password"),
    ("http://example.com\\@127.0.0.1/a.jpg", "user name or password"),
    ("http://127.0.0.1/a.jpg", "not a public address"),
    ("http://localhost/a.jpg", "not a public address"),
    ("http://2130706433/a.jpg", "not a public address"),  # 127.0.0.1 as one number
    ("http://[::1]/a.jpg", "not a public address"),
    ("http://[::ffff:127.0.0.1]/a.jpg", "not a public address"),
    ("http://[64:ff9b::a9fe:a9fe]/latest/meta-data", "not a public address"),  # NAT64 of 169.254.169.254
    ("http://[2002:a00:1::]/a.jpg", "not a public address"),  # 6to4 of 10.0.0.1
    ("http://[::10.0.0.1]/a.jpg", "not a public address"),  # IPv4-compatible
])
def test_unsafe_urls_are_refused_before_any_connection(url, message):
    with pytest.raises(UploadError, match=message) as refused:
        fetch_url(url, LIMIT, timeout=5)
    assert refused.value.status == 400


def test_redirects_are_checked_like_the_first_url(monkeypatch, server):
    base, seen = server
    # Loopback plays a public host here, so that the local server can be the first hop.
    loopback = ipaddress.ip_network("127.0.0.0/8")
    public = [net for net in fetching.NOT_PUBLIC_V4 if not net.overlaps(loopback)]
    monkeypatch.setattr(fetching, "NOT_PUBLIC_V4", public)
    assert fetch_url(base + "/photo.jpg", LIMIT, timeout=5) == PHOTO
    for target in ("http://10.0.0.1/a.jpg", "http://[::ffff:169.254.169.254]/", "file:///etc/passwd"):
        with pytest.raises(UploadError, match="not a public address|http or https"):
            fetch_url(f"{base}/redirect?to={target}", LIMIT, timeout=5)
    assert len(seen) == 4  # the redirects were never followed


@pytest.mark.parametrize("address", [
    "0.0.0.0", "10.1.2.3", "100.64.0.1", "127.0.0.1", "169.254.169.254", "172.16.0.1", "192.0.0.9", "192.0.2.1",
    "192.88.99.1", "192.168.1.1", "198.18.0.1", "198.51.100.1", "203.0.113.1", "224.0.0.1", "240.0.0.1",
    "255.255.255.255", "::", "::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::127.0.0.1", "::10.0.0.1",
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::1", "2002:7f00:1::", "2002:c0a8:101::1", "100::1",
    "2001::1", "2001:2::1", "2001:db8::1", "3fff::1", "5f00::1", "fc00::1", "fd12:3456::1", "fe80::1", "fec0::1",
    "ff02::1", "::ffff:0:7f00:1",
])
def test_special_purpose_addresses_are_not_public(address):
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", [
    "8.8.8.8", "1.1.1.1", "93.184.216.34", "192.31.196.1", "2606:4700:4700::1111", "2a00:1450:4001::1",
    "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
])
def test_public_addresses_are(address):
    assert is_public(ipaddress.ip_address(address))


def test_the_host_is_resolved_once_and_connected_to_as_checked(monkeypatch, server):
    """DNS rebinding: a second resolution would give another address; the fetch must use the first."""
    base, seen = server
    port = int(base.rsplit(":", 1)[1])
    answers = iter(["127.0.0.1", "127.0.0.2"])  # nothing listens on 127.0.0.2
    asked = []

    def resolve(host, port, *args, **kwargs):
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (next(answers), port))]

    monkeypatch.setattr(fetching.socket, "getaddrinfo", resolve)
    assert fetch_url(f"http://images.example:{port}/photo.jpg", LIMIT, timeout=5, allow_private=True) == PHOTO
    assert asked == ["images.example"]
    assert f"\r\nHost: images.example:{port}\r\n".encode() in seen[0]  # the name is kept


def test_a_private_answer_is_refused_without_connecting(monkeypatch, server):
    base, seen = server
    port = int(base.rsplit(":", 1)[1])
    monkeypatch.setattr(fetching.socket, "getaddrinfo", lambda host, port, *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("93.184.216.34", port)),
        (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))])
    with pytest.raises(UploadError, match="not a public address"):
        fetch_url(f"http://images.example:{port}/photo.jpg", LIMIT, timeout=5)
    assert seen == []


def test_a_slow_resolver_counts_against_the_deadline(monkeypatch):
    monkeypatch.setattr(fetching.socket, "getaddrinfo", lambda *args, **kwargs: time.sleep(3))
    with pytest.raises(UploadError, match="took too long to resolve"):
        fetch_url("http://slow-dns.example/a.jpg", LIMIT, timeout=0.5, allow_private=True)


@pytest.fixture
def tls_server(tmp_path, monkeypatch):
    """An HTTPS server on loopback whose certificate names images.test only, trusted through SSL_CERT_FILE."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=images.test", "-addext", "subjectAltName=DNS:images.test", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            with context.wrap_socket(self.request, server_side=True) as tls:
                head = b""
                while b"\r\n\r\n" not in head and (data := tls.recv(4096)):
                    head += data
                tls.sendall(http_answer())

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    yield server.server_address[1], names
    server.shutdown()
    server.server_close()


def test_tls_keeps_the_urls_host_name(monkeypatch, tls_server):
    port, names = tls_server
    real = socket.getaddrinfo
    monkeypatch.setattr(fetching.socket, "getaddrinfo",
                        lambda host, *a, **k: real("127.0.0.1" if host == "images.test" else host, *a, **k))
    assert fetch_url(f"https://images.test:{port}/photo.jpg", LIMIT, timeout=5, allow_private=True) == PHOTO
    assert names == ["images.test"]  # SNI, and the certificate was checked against that name
    with pytest.raises(UploadError, match="could not be fetched"):  # the address does not match the certificate
        fetch_url(f"https://127.0.0.1:{port}/photo.jpg", LIMIT, timeout=5, allow_private=True)

"""Downloading a query image by URL, as a server on the internet must.

- **Public addresses only.** The host is resolved once; every address it resolves to must be public, and the
  connection goes to one of those very addresses, with the URL's name kept in the Host header and in TLS (SNI
  and the certificate check). A second resolution could answer differently (DNS rebinding).
- **One deadline** covers the whole fetch: resolving, connecting, TLS, the status line, the headers, every
  redirect and the body. Each wait on the network is for what is left of it, so a server trickling bytes
  cannot stretch it.
- **Strict HTTP/1.1**, parsed by h11: anything else (another protocol, a bad chunk, headers over 16 KiB, a
  body without headers) is refused with a message.
"""
from __future__ import annotations

import ipaddress
import socket
import ssl
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import h11

from webapp.uploads import UploadError

MAX_REDIRECTS = 5
REDIRECTS = {301, 302, 303, 307, 308}
HEADER_BYTES = 16 * 1024  # status line and headers together
CHUNK = 64 * 1024
USER_AGENT = "Lookalike/1.0"
URL_SAFE = "!#$%&'()*+,/:;=?@[]~"  # left as they are in a path or query; the rest (spaces, controls, …) is escaped

# The IANA special-purpose address registries (iana-ipv4-special-registry, iana-ipv6-special-registry): the
# blocks that are not globally reachable, and multicast. Listed here because ipaddress.is_global's own lists
# differ between Python versions.
NOT_PUBLIC_V4 = [ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4", "240.0.0.0/4")]
# IPv6: only 2000::/3 is handed out for the internet (loopback, link-local, unique-local, multicast, discard
# and translation prefixes all lie outside it); these are the blocks inside it that are not globally reachable.
GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
NOT_PUBLIC_V6 = [ipaddress.IPv6Network(n) for n in ("2001::/23", "2001:db8::/32", "3fff::/20")]
# IPv6 forms that carry an IPv4 address in their last 32 bits, judged by that address: NAT64 and the deprecated
# IPv4-compatible form (IPv4-mapped and 6to4 have ipaddress properties of their own).
EMBEDDING_V6 = [ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("::/96")]


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for an address on the public internet; IPv6 forms that embed an IPv4 address are judged by it."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or next(
            (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) for net in EMBEDDING_V6 if address in net), None)
        if embedded is not None:
            return is_public(embedded)
        return address in GLOBAL_UNICAST_V6 and not any(address in net for net in NOT_PUBLIC_V6)
    return not any(address in net for net in NOT_PUBLIC_V4)


@dataclass(frozen=True)
class _Target:
    """A URL taken apart as the fetch uses it."""

    tls: bool
    host: str  # ASCII (IDNA), without brackets
    port: int
    path: str  # path and query, percent-encoded

    @classmethod
    def parse(cls, url: str) -> _Target:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UploadError(400, "image_url must be an http or https URL")
        if "@" in parts.netloc:
            # user:password@ is where URL parsers disagree (``http://a\@b/``): refused, not guessed at.
            raise UploadError(400, "image_url must not hold a user name or password")
        try:
            port = parts.port
            host = parts.hostname.encode("idna").decode("ascii")
        except (ValueError, UnicodeError):
            port = host = None
        if port == 0 or not host:
            raise UploadError(400, "image_url has an invalid host or port")
        path = urllib.parse.quote(parts.path or "/", safe=URL_SAFE) + (
            "?" + urllib.parse.quote(parts.query, safe=URL_SAFE) if parts.query else "")
        tls = parts.scheme == "https"
        return cls(tls, host, port or (443 if tls else 80), path)

    @property
    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == (443 if self.tls else 80) else f"{name}:{self.port}"


@dataclass(frozen=True)
class _Answer:
    status: int
    location: str | None
    body: bytes


class _Fetch:
    """One fetch of ``url``, with its redirects, within ``timeout`` seconds from now."""

    def __init__(self, max_bytes: int, timeout: float, allow_private: bool):
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.allow_private = allow_private

    def run(self, url: str) -> bytes:
        for _ in range(MAX_REDIRECTS + 1):
            target = _Target.parse(url)
            answer = self._get(target, self._resolve(target))
            if answer.status in REDIRECTS and answer.location:
                url = urllib.parse.urljoin(url, answer.location)
                continue
            if answer.status != 200:
                raise UploadError(400, f"image_url answered HTTP {answer.status}")
            return answer.body
        raise UploadError(400, f"image_url redirected more than {MAX_REDIRECTS} times")

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.too_slow()
        return left

    def too_slow(self) -> UploadError:
        return UploadError(400, f"image_url took too long to download (the limit is {self.timeout:g} s)")

    def _resolve(self, target: _Target) -> list[tuple]:
        """The addresses of the target's host, every one of them checked."""
        # getaddrinfo cannot be interrupted; a thread lets the deadline hold even for a slow DNS server.
        pool = ThreadPoolExecutor(1, thread_name_prefix="resolve")
        try:
            infos = pool.submit(socket.getaddrinfo, target.host, target.port, type=socket.SOCK_STREAM).result(
                timeout=self.remaining())
        except FutureTimeout:
            raise UploadError(400, f"image_url host {target.host!r} took too long to resolve") from None
        except (socket.gaierror, UnicodeError):
            raise UploadError(400, f"image_url host {target.host!r} cannot be resolved") from None
        finally:
            pool.shutdown(wait=False)
        if not self.allow_private:
            for info in infos:
                if not is_public(ipaddress.ip_address(info[4][0].split("%")[0])):
                    raise UploadError(400, f"image_url host {target.host!r} is not a public address")
        return infos

    def _get(self, target: _Target, infos: list[tuple]) -> _Answer:
        with self._connect(target, infos) as sock:
            conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=HEADER_BYTES)
            request = h11.Request(method="GET", target=target.path, headers=[
                ("Host", target.host_header), ("User-Agent", USER_AGENT), ("Accept", "image/*"),
                ("Connection", "close")])
            sock.settimeout(self.remaining())
            sock.sendall(conn.send(request) + conn.send(h11.EndOfMessage()))
            response = self._next(conn, sock)
            while isinstance(response, h11.InformationalResponse):
                response = self._next(conn, sock)
            headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in response.headers}
            if response.status_code != 200:
                return _Answer(response.status_code, headers.get("location"), b"")
            if int(headers.get("content-length", 0)) > self.max_bytes:
                raise self.too_large()
            chunks, size = [], 0
            while not isinstance(event := self._next(conn, sock), h11.EndOfMessage):
                chunks.append(event.data)
                size += len(event.data)
                if size > self.max_bytes:
                    raise self.too_large()
            return _Answer(200, None, b"".join(chunks))

    def _connect(self, target: _Target, infos: list[tuple]) -> socket.socket:
        """A connection to the first checked address that answers (TLS keeps the URL's host name)."""
        failure: OSError | None = None
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(self.remaining())
                sock.connect(address)
                if target.tls:
                    sock.settimeout(self.remaining())  # the handshake as a whole gets what is left
                    sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
                return sock
            except OSError as e:
                sock.close()
                failure = e
        raise UploadError(400, f"image_url could not be fetched ({_reason(failure)})")

    def _next(self, conn: h11.Connection, sock: socket.socket):
        """The next HTTP event, reading from the socket only as long as the deadline allows."""
        while (event := conn.next_event()) is h11.NEED_DATA:
            sock.settimeout(self.remaining())
            conn.receive_data(sock.recv(CHUNK))
        return event

    def too_large(self) -> UploadError:
        return UploadError(413, f"the image at image_url is larger than the limit of {self.max_bytes:,} bytes")


def fetch_url(url: str, max_bytes: int, timeout: float, allow_private: bool = False) -> bytes:
    """Download an image by URL, within a size limit and one time limit, from public addresses only.

    Args:
        url: http or https; redirects (at most ``MAX_REDIRECTS``) are checked like the first URL.
        max_bytes: a larger image is refused (413).
        timeout: seconds for the whole fetch, redirects included.
        allow_private: let loopback and private addresses through (tests only).

    Raises:
        UploadError: 400 for a URL, address, server or answer that cannot give an image; 413 over the size.
    """
    fetch = _Fetch(max_bytes, timeout, allow_private)
    try:
        return fetch.run(url)
    except TimeoutError:  # a socket's wait for what was left of the deadline ran out
        raise fetch.too_slow() from None
    except h11.RemoteProtocolError as e:
        raise UploadError(400, f"image_url did not answer in HTTP ({e})") from None
    except (h11.LocalProtocolError, ValueError) as e:
        raise UploadError(400, f"image_url cannot be requested ({e})") from None
    except OSError as e:
        raise UploadError(400, f"image_url could not be fetched ({_reason(e)})") from None


def _reason(error: OSError | None) -> str:
    return getattr(error, "strerror", None) or str(error) or error.__class__.__name__

"""Getting the query image out of a request: a multipart file, or a URL fetched with care.

The upload is held in memory only: its file name is never used and nothing is written to disk.
"""
from __future__ import annotations

import io
import ipaddress
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Mapping

from flask import Request
from werkzeug.datastructures import FileStorage

from search.service import SearchError

SEARCH_PARAMETERS = ("k", "metric", "scope")


class UploadError(Exception):
    """A request whose image cannot be had; carries the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class InMemoryRequest(Request):
    """A request whose uploaded files stay in memory (bounded by MAX_CONTENT_LENGTH).

    Werkzeug spools uploads over 500 KB to a temporary file; a shopper's photo must never reach the disk.
    """

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return io.BytesIO()


def read_file(file: FileStorage | None, max_bytes: int) -> bytes:
    if file is None:
        raise UploadError(400, "no image in the request: send it as the multipart file field 'image'")
    data = file.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadError(413, f"the image is larger than the limit of {max_bytes:,} bytes")
    return data


def search_parameters(values: Mapping[str, str], allowed: tuple[str, ...] = SEARCH_PARAMETERS) -> dict:
    """``k``, ``metric`` and ``scope`` from form or query values; anything else is refused."""
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise SearchError(f"unknown parameter(s): {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    params: dict = {}
    if values.get("k") not in (None, ""):
        try:
            params["k"] = int(values["k"])
        except (TypeError, ValueError):
            raise SearchError(f"k must be a whole number, got {values['k']!r}") from None
    for name in ("metric", "scope"):
        if values.get(name):
            params[name] = str(values[name])
    return params


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Every redirect target is checked like the first URL before it is followed."""

    def __init__(self, allow_private: bool):
        self.allow_private = allow_private

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_url(newurl, self.allow_private)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def check_url(url: str, allow_private: bool) -> None:
    """Refuse non-http(s) schemes and hosts that resolve to loopback, private, link-local or reserved addresses."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UploadError(400, "image_url must be an http or https URL")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                   proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise UploadError(400, f"image_url host {parts.hostname!r} cannot be resolved") from None
    if allow_private:
        return
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global or address.is_multicast:
            raise UploadError(400, f"image_url host {parts.hostname!r} is not a public address")


def fetch_url(url: str, max_bytes: int, timeout: float, allow_private: bool = False) -> bytes:
    """Download an image by URL within a size and time limit, following only safe redirects."""
    check_url(url, allow_private)
    opener = urllib.request.build_opener(_CheckedRedirects(allow_private))
    request = urllib.request.Request(url, headers={"User-Agent": "Lookalike/1.0", "Accept": "image/*"})
    try:
        with opener.open(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise UploadError(413, f"the image at image_url is larger than the limit of {max_bytes:,} bytes")
            data = _read_within(response, max_bytes, time.monotonic() + timeout)
    except UploadError:
        raise
    except urllib.error.HTTPError as e:
        raise UploadError(400, f"image_url answered HTTP {e.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise UploadError(400, f"image_url could not be fetched ({reason})") from None
    if len(data) > max_bytes:
        raise UploadError(413, f"the image at image_url is larger than the limit of {max_bytes:,} bytes")
    return data


def _read_within(response, max_bytes: int, deadline: float) -> bytes:
    """Read at most ``max_bytes + 1`` bytes, giving up at ``deadline`` (a slow sender cannot hold us)."""
    chunks, size = [], 0
    while size <= max_bytes:
        if time.monotonic() > deadline:
            raise UploadError(400, "image_url took too long to download")
        # read1 returns what has arrived; read(n) would wait for n bytes, however slowly they trickle in.
        chunk = response.read1(min(64 * 1024, max_bytes + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)

"""Getting the query image out of a request: a multipart file (a URL is fetched by webapp.fetching).

The upload is held in memory only: its file name is never used and nothing is written to disk.
"""
from __future__ import annotations

import io
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


"""Getting the query out of a request: the multipart file or the JSON body, and the search parameters.

The upload is held in memory only: its file name is never used and nothing is written to disk.
"""
from __future__ import annotations

import io
import json
import re
import reprlib
from collections.abc import Mapping
from typing import Any

from flask import Request
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from search.localisation import Box
from search.service import SearchError

SEARCH_PARAMETERS = ("k", "metric", "scope", "box")
# ASCII digits only: int() would also take '١٢', '1_0', ' 7 ' and, from JSON, true and 2.0. (30 digits are far past
# any k: a longer string is no number a client meant.)
WHOLE_NUMBER = re.compile(r"-?[0-9]{1,30}")
BOX = re.compile(r"(-?[0-9]{1,9}),(-?[0-9]{1,9}),(-?[0-9]{1,9}),(-?[0-9]{1,9})")


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

    def _load_form_data(self) -> None:
        try:
            super()._load_form_data()
        except RequestEntityTooLarge as e:
            if self.content_length is not None and self.content_length <= (self.max_content_length or 0):
                # Werkzeug's form limits, not the size of the request: say so, not "the image is too large".
                raise RequestEntityTooLarge(
                    f"the form has more than {self.max_form_parts:,} parts or a text field over "
                    f"{self.max_form_memory_size:,} bytes") from e
            raise


def read_file(file: FileStorage | None, max_bytes: int) -> bytes:
    if file is None:
        raise UploadError(400, "no image in the request: send it as the multipart file field 'image'")
    data = file.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadError(413, f"the image is larger than the limit of {max_bytes:,} bytes")
    return data


def read_json(body: bytes) -> dict:
    """The JSON object of a request body: standard JSON only (no NaN or Infinity), nested as deep as Python can.

    Raises:
        UploadError: 400 for anything else, with the parser's reason.
    """
    try:
        value = json.loads(body, parse_constant=_not_json)
    except RecursionError:
        raise UploadError(400, "the JSON body is nested too deeply") from None
    except ValueError as e:
        raise UploadError(400, f"the body is not valid JSON ({e}): send a JSON object with an 'image_url' "
                               "string, or a multipart 'image' file") from None
    if not isinstance(value, dict) or not isinstance(value.get("image_url"), str):
        raise UploadError(400, "send a JSON object with an 'image_url' string, or a multipart 'image' file")
    return value


def _not_json(constant: str):
    raise ValueError(f"{constant} is not a JSON number")


def search_parameters(values: Mapping[str, Any], allowed: tuple[str, ...] = SEARCH_PARAMETERS) -> dict:
    """``k``, ``metric``, ``scope`` and ``box`` from form values or a JSON object (the same rules for both).

    Anything else is refused, as are a ``k`` that is not a whole number written in ASCII digits, a
    ``metric`` or ``scope`` that is not a string, and a ``box`` that is not ``x,y,w,h`` in whole pixels (its
    range is checked against the image, once decoded).
    """
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        names = ", ".join(unknown)
        raise SearchError(f"unknown parameter(s): {names if len(names) <= 80 else reprlib.repr(names)}; "
                          f"allowed: {', '.join(allowed)}")
    params: dict = {}
    k = values.get("k")
    if k not in (None, ""):
        if type(k) is int or (isinstance(k, str) and WHOLE_NUMBER.fullmatch(k)):
            params["k"] = int(k)
        else:
            raise SearchError(f"k must be a whole number, got {reprlib.repr(k)}")
    for name in ("metric", "scope"):
        value = values.get(name)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            raise SearchError(f"{name} must be a string, got {reprlib.repr(value)}")
        params[name] = value
    box = values.get("box")
    if box not in (None, ""):
        match = BOX.fullmatch(box) if isinstance(box, str) else None
        if match is None:
            raise SearchError(f"box must be x,y,w,h in whole pixels of the image (e.g. 10,20,300,400), "
                              f"got {reprlib.repr(box)}")
        params["box"] = Box(*map(int, match.groups()))
    return params

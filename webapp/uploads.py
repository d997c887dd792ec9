"""Getting the query out of a request: the multipart file or the JSON body (the parameters: search.parameters).

The upload is held in memory only: its file name is never used and nothing is written to disk.
"""
from __future__ import annotations

import io
import json

from flask import Request
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser


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

    def make_form_data_parser(self) -> FormDataParser:
        parser = super().make_form_data_parser()
        parser.silent = False  # Werkzeug's default drops a form it cannot read, and the image seems missing
        return parser

    def _load_form_data(self) -> None:
        try:
            super()._load_form_data()
        except ValueError as e:  # a part's header not UTF-8, no boundary, a truncated part, …
            raise UploadError(400, f"the form could not be read ({e}): send the photo as the multipart file field "
                                   "'image'") from None
        except RequestEntityTooLarge as e:
            if self.content_length is not None and self.content_length <= (self.max_content_length or 0):
                # Werkzeug's form limits, not the size of the request: say so, not "the image is too large".
                raise RequestEntityTooLarge(
                    f"the form has more than {self.max_form_parts:,} parts or a text field over "
                    f"{self.max_form_memory_size:,} bytes") from e
            raise


def read_file(files: list[FileStorage], max_bytes: int) -> bytes:
    """The one uploaded image of a request (its ``image`` files)."""
    if not files:
        raise UploadError(400, "no image in the request: send it as the multipart file field 'image'")
    if len(files) > 1:
        raise UploadError(400, f"one image a search: the request has {len(files)} in the field 'image'")
    data = files[0].stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadError(413, f"the image is larger than the limit of {max_bytes:,} bytes")
    return data


def text_fields(values: MultiDict) -> dict[str, str]:
    """A request's text parameters, each given once.

    Raises:
        UploadError: 400 for a parameter given more than once (in the form, or in the form and the URL): which one
            counts would be a guess.
    """
    repeated = sorted(name for name, given in values.lists() if len(given) > 1)
    if repeated:
        raise UploadError(400, f"{', '.join(repeated)} given more than once: give each parameter once")
    return values.to_dict()


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

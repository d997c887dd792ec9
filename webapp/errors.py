"""Every error answers with a clear message and the right status, never a stack trace.

JSON for the API and the health check, a page for people.
"""
from __future__ import annotations

import logging

from flask import Flask, render_template, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from images.decoding import ImageError, ImageTooLarge
from search.parameters import SearchError
from webapp.schemas import Error, answer
from webapp.uploads import UploadError

log = logging.getLogger(__name__)


def _answer(status: int, message: str):
    if request.path.startswith("/api/") or request.path == "/healthz":
        return answer(Error(error=message, status=status), status)
    return render_template("error.html", status=status, message=message), status


def register(app: Flask) -> None:
    @app.errorhandler(UploadError)
    def upload_error(e: UploadError):
        return _answer(e.status, str(e))

    @app.errorhandler(SearchError)
    def bad_parameters(e: SearchError):
        return _answer(400, str(e))

    @app.errorhandler(ImageError)
    def not_an_image(e: ImageError):
        if isinstance(e, ImageTooLarge):
            return _answer(413, str(e))
        return _answer(415, f"not a usable image: {e}")

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def database_down(e: Exception):
        log.warning("database unavailable: %s", e.__class__.__name__)
        return _answer(503, "the catalogue database is unavailable right now; please try again shortly")

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        if isinstance(e, RequestEntityTooLarge) and e.description == RequestEntityTooLarge.description:
            # Werkzeug's own: the request is over MAX_CONTENT_LENGTH (the form's limits say what they are).
            return _answer(413, f"the upload is larger than the limit of "
                                f"{app.extensions['lookalike'].settings.max_upload_bytes:,} bytes")
        return _answer(e.code or 500, e.description or e.name)

    @app.errorhandler(Exception)
    def unexpected(e: Exception):
        log.exception("unexpected error")
        return _answer(500, "something went wrong on our side; the error was logged")

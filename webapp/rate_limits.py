"""A per-client rate limit on searches: each one runs the network, so one client must not take the whole server.

Counters live in the serving process's memory (one process serves, see README); the page and the API share
one budget per client address. Over the limit the answer is 429 with ``Retry-After``.
"""
from __future__ import annotations

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

SEARCH_ENDPOINTS = ("shop.search", "api.search")


def register(app: Flask, rate_limit: str) -> Limiter:
    """Limit the search endpoints of ``app`` to ``rate_limit`` (e.g. ``60 per minute``) per client address."""
    # One limiter per app, not a module-level one: its counters are kept on the limiter, and each app
    # (each test's, in particular) must count its own clients.
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", headers_enabled=True)
    searches = limiter.shared_limit(
        rate_limit, scope="search",
        error_message=f"too many searches from your address (the limit is {rate_limit}); "
                      "please wait a little and try again")
    for endpoint in SEARCH_ENDPOINTS:
        app.view_functions[endpoint] = searches(app.view_functions[endpoint])
    return limiter

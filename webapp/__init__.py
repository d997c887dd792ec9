"""The web app: the shopper's page, the reviewer's page and the JSON API.

Routes only validate input and call the search service; the service, built once per process from the
settings (or passed in by tests), does the work.
"""
from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from bootstrap import live_service
from config import Settings
from search.service import SearchService
from webapp import api, errors, rate_limits, review, security, shop, uploads
from webapp.memory import pin_mmap_threshold
from webapp.state import Lookalike
from webapp.traces import TraceStore

# Multipart framing around the image: a request this much over the image limit is still accepted.
FORM_OVERHEAD_BYTES = 64 * 1024
# A search form has an image and at most three text fields; Werkzeug would parse up to 1,000 parts.
MAX_FORM_PARTS = 16


def create_app(settings: Settings | None = None, service: SearchService | None = None) -> Flask:
    """Build the Flask app.

    Args:
        settings: defaults to ``Settings.from_env()``.
        service: defaults to ``build_service(settings)`` (loads the model, opens the store); either way the app
            moves to another model version as soon as it is activated (``search.live``).

    Serve in production with ``gunicorn 'webapp:create_app()'`` (see README).
    """
    settings = settings or Settings.from_env()
    pin_mmap_threshold()
    app = Flask(__name__)
    app.request_class = uploads.InMemoryRequest
    # Flask turns debug mode on from FLASK_DEBUG; settings come from LOOKALIKE_* only, and debug mode
    # (tracebacks, the interactive debugger) must never reach a shop on the internet.
    app.debug = False
    app.config.update(MAX_CONTENT_LENGTH=settings.max_upload_bytes + FORM_OVERHEAD_BYTES, MAX_FORM_PARTS=MAX_FORM_PARTS,
                      JSON_SORT_KEYS=False)
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)
    app.extensions["lookalike"] = Lookalike(
        settings, live_service(settings, service),
        TraceStore(settings.trace_ttl_seconds, settings.trace_max_bytes))
    app.url_map.converters["product_id"] = shop.ProductIdConverter
    for blueprint in (shop.blueprint, review.blueprint, api.blueprint):
        app.register_blueprint(blueprint)
    errors.register(app)
    security.register(app)
    rate_limits.register(app, settings.rate_limit)
    return app


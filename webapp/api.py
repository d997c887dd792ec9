"""The JSON API for programs: search by upload or URL, products, categories, health, and its OpenAPI document."""
from __future__ import annotations

from flask import Blueprint, abort, jsonify, request, url_for

from webapp.answers import result_json, search_and_trace
from webapp.fetching import fetch_url
from webapp.openapi import openapi_document
from webapp.shop import PRODUCT_ID
from webapp.state import lookalike
from webapp.uploads import SEARCH_PARAMETERS, read_file, read_json, search_parameters

blueprint = Blueprint("api", __name__)


@blueprint.post("/api/search")
def search():
    settings = lookalike().settings
    if request.is_json:
        body = read_json(request.get_data(cache=False))
        params = search_parameters({k: v for k, v in body.items() if k != "image_url"})
        lookalike().service.check(**params)  # before the download, which can take seconds
        image = fetch_url(body["image_url"], settings.max_upload_bytes, settings.url_timeout_seconds,
                          settings.allow_private_urls)
    else:
        params = search_parameters(request.values.to_dict(), SEARCH_PARAMETERS)
        image = read_file(request.files.get("image"), settings.max_upload_bytes)
    return jsonify(result_json(search_and_trace(image, params)))


@blueprint.get(f"/api/products/<{PRODUCT_ID}>")
def product(product_id: int):
    found = lookalike().service.store.products([product_id]).get(product_id)
    if found is None:
        abort(404, description=f"no product {product_id}")
    return jsonify({"product_id": found.id, "external_id": found.external_id, "category": found.category,
                    "metadata": found.metadata, "width": found.width, "height": found.height,
                    "image_url": url_for("shop.product_image", product_id=found.id)})


@blueprint.get("/api/categories")
def categories():
    counts = lookalike().service.store.category_counts()
    return jsonify({"categories": [{"name": name, "products": count} for name, count in counts.items()]})


@blueprint.get("/healthz")
def health():
    service = lookalike().service  # reads the active version: a database error becomes a 503
    service.store.ping()
    return jsonify({"status": "ok", "database": "ok", "model": service.model.version})


@blueprint.get("/api/openapi.json")
def openapi():
    return jsonify(openapi_document())

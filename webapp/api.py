"""The JSON API for programs: search by upload or URL, products, categories, health, and its OpenAPI document.

Requests are read and answers shaped through the models of webapp/schemas.py, which the document publishes.
"""
from __future__ import annotations

from flask import Blueprint, abort, jsonify, request, url_for

from search.parameters import SearchParameters
from webapp import schemas
from webapp.answers import result_body, search_and_trace
from webapp.fetching import fetch_url
from webapp.openapi import openapi_document
from webapp.shop import PRODUCT_ID
from webapp.state import lookalike
from webapp.uploads import UploadError, read_file, read_json, text_fields

blueprint = Blueprint("api", __name__)


@blueprint.post("/api/search")
def search():
    settings = lookalike().settings
    params: SearchParameters
    if request.is_json:
        if request.args:  # only the body is read
            raise UploadError(400, f"with a JSON body, send the parameters in it, not in the URL: "
                                   f"{', '.join(request.args)}")
        params = schemas.UrlSearch.read(read_json(request.get_data(cache=False)))
        lookalike().service.check(**params.given())  # before the download, which can take seconds
        image = fetch_url(params.image_url, settings.max_upload_bytes, settings.url_timeout_seconds,
                          settings.allow_private_urls)
    else:
        # The file first: an 'image' sent as a text field is a missing file, not an unknown parameter.
        image = read_file(request.files.getlist("image"), settings.max_upload_bytes)
        params = SearchParameters.read(text_fields(request.values))
    return schemas.answer(result_body(search_and_trace(image, params.given())))


@blueprint.get(f"/api/products/<{PRODUCT_ID}>")
def product(product_id: int):
    found = lookalike().service.store.products([product_id]).get(product_id)
    if found is None:
        abort(404, description=f"no product {product_id}")
    return schemas.answer(schemas.Product(
        product_id=found.id, external_id=found.external_id, category=found.category, metadata=found.metadata,
        width=found.width, height=found.height, image_url=url_for("shop.product_image", product_id=found.id)))


@blueprint.get("/api/categories")
def categories():
    counts = lookalike().service.store.category_counts()
    return schemas.answer(schemas.Categories(
        categories=[schemas.Category(name=name, products=count) for name, count in counts.items()]))


@blueprint.get("/healthz")
def health():
    service, active = lookalike().live.serving()  # a query: a database error becomes a 503
    return schemas.answer(schemas.Health(status="ok", database="ok", model=service.model.version,
                                         active=active.version if active else None))


@blueprint.get("/api/openapi.json")
def openapi():
    return jsonify(openapi_document())

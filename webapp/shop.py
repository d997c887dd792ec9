"""The shopper's pages: upload a photo, see the closest products; and product images from the database."""
from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request

from db.schema import LARGEST_ID
from search.parameters import MAX_K, SearchParameters
from webapp.answers import search_and_trace
from webapp.state import lookalike
from webapp.uploads import read_file

blueprint = Blueprint("shop", __name__)

IMAGE_CACHE_SECONDS = 7 * 24 * 3600  # a product's image never changes: its id names one stored image
# The route part of a product id: a larger number than the store's ids is no product (404); a negative one is
# matched, to be answered "no product -1" like any id the store does not hold.
PRODUCT_ID = f"int(signed=True, max={LARGEST_ID}):product_id"


@blueprint.app_context_processor
def limits() -> dict:
    return {"max_k": MAX_K}


@blueprint.get("/")
def index():
    return render_template("index.html", settings=lookalike().settings)


@blueprint.post("/search")
def search():
    settings = lookalike().settings
    image = read_file(request.files.getlist("image"), settings.max_upload_bytes)  # first, as the API does
    trace = search_and_trace(image, SearchParameters.read(request.form.to_dict()).given())
    return render_template("results.html", trace=trace, settings=settings)


@blueprint.get(f"/products/<{PRODUCT_ID}>/image")
def product_image(product_id: int):
    found = lookalike().service.store.image(product_id)
    if found is None:
        abort(404, description=f"no product {product_id}")
    data, content_type = found
    response = Response(data, mimetype=content_type)
    response.set_etag(f"product-{product_id}")
    response.cache_control.public = True
    response.cache_control.max_age = IMAGE_CACHE_SECONDS
    return response.make_conditional(request)

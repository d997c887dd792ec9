"""The shopper's pages: upload a photo, see the closest products; and product images from the database."""
from __future__ import annotations

import hashlib

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from werkzeug.routing import IntegerConverter, Map

from db.schema import LARGEST_ID
from search.parameters import MAX_K, SearchParameters
from webapp.answers import search_and_trace
from webapp.state import lookalike
from webapp.uploads import read_file, text_fields

blueprint = Blueprint("shop", __name__)

IMAGE_CACHE_SECONDS = 7 * 24 * 3600  # a product's image never changes: its id names one stored image


class ProductIdConverter(IntegerConverter):
    """A product id in a route: any whole number the store's signed 64-bit ids can hold, negative ones too (looked
    up and answered "no product -1" like any id not stored); a larger one is no product (404). Werkzeug's own
    converter arguments cannot spell a negative bound."""

    regex = "[0-9]+"  # Werkzeug's \d+ also takes other scripts' digits: /api/products/１２ would be product 12

    def __init__(self, url_map: Map) -> None:
        super().__init__(url_map, signed=True, min=-LARGEST_ID - 1, max=LARGEST_ID)


PRODUCT_ID = "product_id:product_id"  # the converter, registered by create_app, and the view's argument


@blueprint.app_context_processor
def limits() -> dict:
    return {"max_k": MAX_K}


@blueprint.app_template_filter("label")
def label(category: str) -> str:
    """A category's name as a shopper reads it: folder names join words with underscores (Casual_Shoes)."""
    return " ".join(category.replace("_", " ").split())


@blueprint.get("/")
def index():
    return render_template("index.html", settings=lookalike().settings)


@blueprint.get("/search")
def search_again():
    """A results page's address, bookmarked or shared: the results were for one upload, so start a new search."""
    return redirect(url_for("shop.index"))


@blueprint.post("/search")
def search():
    settings = lookalike().settings
    image = read_file(request.files.getlist("image"), settings.max_upload_bytes)  # first, as the API does
    trace = search_and_trace(image, SearchParameters.read(text_fields(request.form)).given())
    # The page names the uploaded bytes, so app.js searches a box of this photo, not of another kept since.
    return render_template("results.html", trace=trace, settings=settings, upload_bytes=len(image),
                           upload_sha256=hashlib.sha256(image).hexdigest())


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

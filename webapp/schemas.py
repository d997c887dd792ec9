"""The JSON API's bodies, declared once: requests are read and answers shaped through these models, and the
OpenAPI document (webapp/openapi.py) is built from their JSON schemas.

Answers forbid fields the model does not declare, so the published schemas say ``additionalProperties: false`` and
a field renamed on one side only fails the test that checks real answers against the document.
"""
from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from config.choices import Metric, Scope
from search.parameters import SearchParameters
from search.service import LOCALISED, SHOPPER, WHOLE

RELATIVE = {"format": "uri-reference"}


class UrlSearch(SearchParameters):
    """A search by the address of a picture (the JSON body of ``POST /api/search``)."""

    image_url: str = Field(description="http(s) only; public addresses only", json_schema_extra={"format": "uri"})

    def given(self) -> dict[str, Any]:
        """The search parameters only (the picture is fetched from ``image_url``)."""
        return {name: value for name, value in super().given().items() if name != "image_url"}


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Error(Body):
    error: str = Field(description="what was wrong, in words")
    status: int = Field(description="the HTTP status, repeated")


class ProductFields(Body):
    product_id: int
    external_id: str
    category: str
    metadata: dict[str, str] = Field(description="the catalogue CSV's columns for this product")
    image_url: str = Field(description="relative to this API's address", json_schema_extra=RELATIVE)


class Product(ProductFields):
    width: int
    height: int


class RankedProduct(ProductFields):
    distance: float
    similarity: float = Field(description="cosine × 100, clipped at 0")


class Probability(Body):
    category: str
    probability: float


class SafetyNet(Body):
    """The exact-product safety net put the catalogue's nearest product first: it lies within max_distance (both in the
    search's metric), and the ranking, its category's probability counted, had not put it first."""

    product_id: int
    category: str
    distance: float
    max_distance: float


class Region(Body):
    """The region that was searched, in pixels of the uploaded image."""

    x: int
    y: int
    w: int
    h: int


class ImageSize(Body):
    width: int
    height: int


class SearchResult(Body):
    predicted: Probability
    probabilities: list[Probability] = Field(
        description="every category, most probable first: the classifier's probabilities blended with the vote of "
                    "the nearest catalogue products (LOOKALIKE_VOTE_WEIGHT), what narrowing and merging used")
    searched_categories: list[str]
    rule: str = Field(description="why those categories were searched, in words")
    metric: Metric
    scope: Scope
    safety_net: SafetyNet | None
    weak_match: bool = Field(description="the best similarity is under min_similarity: nothing looks alike")
    min_similarity: float = Field(description="the weak-match threshold (%) this search applied: the served model's "
                                              "own, unless LOOKALIKE_MIN_SIMILARITY sets one for every model")
    results: list[RankedProduct]
    box: Region | None = Field(description="null: the whole photo was searched")
    box_source: str = Field(json_schema_extra={"enum": [WHOLE, SHOPPER, LOCALISED]})
    image_size: ImageSize
    timings_ms: dict[str, float]
    review_url: str = Field(description="the reviewer's page of this search, relative to this API's address",
                            json_schema_extra=RELATIVE)


class Category(Body):
    name: str
    products: int


class Categories(Body):
    categories: list[Category]


class Health(Body):
    status: str
    database: str
    model: str = Field(description="the version being served")
    active: str | None = Field(description="the version activated in the registry (null before any is registered): "
                                           "while it differs from `model`, it is loading or cannot be loaded (the "
                                           "server's log says why, and it is tried again every 30 s)")


def answer(body: Body, status: int = 200) -> tuple[Response, int]:
    return jsonify(body.model_dump(mode="json")), status

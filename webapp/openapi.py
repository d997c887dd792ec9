"""The OpenAPI 3.1 document of the JSON API (a test checks it against the app's routes)."""
from __future__ import annotations

_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _errors(*codes: int) -> dict:
    return {str(code): _ERROR for code in codes}


def openapi_document() -> dict:
    product = {
        "type": "object",
        "properties": {
            "product_id": {"type": "integer"}, "external_id": {"type": "string"}, "category": {"type": "string"},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
            "image_url": {"type": "string", "format": "uri-reference",
                          "description": "relative to this API's address"},
        },
    }
    search_params = {
        "k": {"type": "integer", "minimum": 1, "maximum": 500, "description": "results to return (default 30)"},
        "metric": {"type": "string", "enum": ["euclidean", "cosine"]},
        "scope": {"type": "string", "enum": ["category", "all"],
                  "description": "search the predicted category only, or every category"},
        "box": {"type": "string", "pattern": "^[0-9]+,[0-9]+,[0-9]+,[0-9]+$",
                "description": "x,y,w,h: search only this region, in pixels of the uploaded image (upright); "
                               "without it the product is localised by the network. Outside the image: 400"},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Lookalike API", "version": "1.0",
                 "description": "Visual product search: upload a photo, get the closest catalogue products."},
        "paths": {
            "/api/search": {"post": {
                "summary": "Search the catalogue by photo (multipart upload or JSON image_url)",
                "requestBody": {"required": True, "content": {
                    "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
                        "image": {"type": "string", "format": "binary"}, **search_params}}},
                    "application/json": {"schema": {"type": "object", "required": ["image_url"], "properties": {
                        "image_url": {"type": "string", "format": "uri",
                                      "description": "http(s) only; public addresses only"}, **search_params}}},
                }},
                "responses": {"200": {"description": "ranked results", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/SearchResult"}}}}, **_errors(400, 413, 415, 429, 503)},
            }},
            "/api/products/{product_id}": {"get": {
                "summary": "One product",
                "parameters": [{"name": "product_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "the product", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Product"}}}}, **_errors(404, 503)},
            }},
            "/api/categories": {"get": {
                "summary": "Categories with their product counts",
                "responses": {"200": {"description": "categories", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"categories": {"type": "array", "items": {
                        "type": "object", "properties": {"name": {"type": "string"},
                                                         "products": {"type": "integer"}}}}}}}}},
                    **_errors(503)},
            }},
            "/healthz": {"get": {
                "summary": "Liveness and database check",
                "responses": {"200": {"description": "healthy", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"status": {"type": "string"}, "database": {"type": "string"},
                                                     "model": {"type": "string"}}}}}}, **_errors(503)},
            }},
            "/api/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            }},
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error", "status"],
                      "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}},
            "Product": {**product, "properties": {**product["properties"], "width": {"type": "integer"},
                                                  "height": {"type": "integer"}}},
            "SearchResult": {"type": "object", "properties": {
                "predicted": {"type": "object", "properties": {"category": {"type": "string"},
                                                               "probability": {"type": "number"}}},
                "probabilities": {"type": "array", "items": {"type": "object", "properties": {
                    "category": {"type": "string"}, "probability": {"type": "number"}}}},
                "searched_categories": {"type": "array", "items": {"type": "string"}},
                "rule": {"type": "string"}, "metric": {"type": "string"}, "scope": {"type": "string"},
                "safety_net": {"type": ["object", "null"], "description": (
                    "set when the exact-product safety net put a product of a category that was not searched "
                    "first: it lies within max_distance and closer than every searched product"),
                    "properties": {"product_id": {"type": "integer"}, "category": {"type": "string"},
                                   "distance": {"type": "number"}, "max_distance": {"type": "number"}}},
                "weak_match": {"type": "boolean",
                               "description": "the best similarity is under min_similarity: nothing looks alike"},
                "min_similarity": {"type": "number"},
                "results": {"type": "array", "items": {**product, "properties": {
                    **product["properties"], "distance": {"type": "number"},
                    "similarity": {"type": "number", "description": "cosine × 100, clipped at 0"}}}},
                "box": {"type": ["object", "null"], "description": (
                    "the region that was searched, in pixels of the uploaded image (null: the whole photo)"),
                    "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}, "w": {"type": "integer"},
                                   "h": {"type": "integer"}}},
                "box_source": {"type": "string", "enum": ["whole photo", "shopper", "localised"]},
                "image_size": {"type": "object", "properties": {"width": {"type": "integer"},
                                                                "height": {"type": "integer"}}},
                "timings_ms": {"type": "object", "additionalProperties": {"type": "number"}},
                "review_url": {"type": "string", "format": "uri-reference",
                               "description": "relative to this API's address"},
            }},
        }},
    }

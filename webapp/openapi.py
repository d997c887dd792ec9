"""The OpenAPI 3.1 document of the JSON API, its schemas generated from the models that read requests and shape
answers (search.parameters, webapp.schemas); tests check it against the app's routes and its real answers."""
from __future__ import annotations

from search.parameters import SearchParameters
from webapp import schemas

REQUESTS = (SearchParameters, schemas.UrlSearch)
ANSWERS = (schemas.Error, schemas.Product, schemas.SearchResult, schemas.Categories, schemas.Health)


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _answers(model: type, description: str, *errors: int) -> dict:
    json = {"application/json": {"schema": _ref(model.__name__)}}
    return {"200": {"description": description, "content": json},
            **{str(code): {"description": "error", "content": {"application/json": {"schema": _ref("Error")}}}
               for code in errors}}


def components() -> dict:
    """Every model's JSON schema, named as the document refers to it."""
    defined: dict = {}
    for mode, models in (("validation", REQUESTS), ("serialization", ANSWERS)):
        for model in models:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
            defined |= schema.pop("$defs", {})
            defined[model.__name__] = schema
    parameters = defined["SearchParameters"]
    # A multipart search is the parameters and the photo, read apart (webapp.uploads.read_file) before its bytes.
    defined["UploadSearch"] = {**parameters, "title": "UploadSearch", "required": ["image"], "properties": {
        "image": {"type": "string", "format": "binary", "description": "the photo: JPEG, PNG, WebP or GIF"},
        **parameters["properties"]}}
    return defined


def openapi_document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Lookalike API", "version": "1.0",
                 "description": "Visual product search: upload a photo, get the closest catalogue products."},
        "paths": {
            "/api/search": {"post": {
                "summary": "Search the catalogue by photo (multipart upload or JSON image_url)",
                "requestBody": {"required": True, "content": {
                    "multipart/form-data": {"schema": _ref("UploadSearch")},
                    "application/json": {"schema": _ref("UrlSearch")}}},
                "responses": _answers(schemas.SearchResult, "ranked results", 400, 413, 415, 429, 503),
            }},
            "/api/products/{product_id}": {"get": {
                "summary": "One product",
                "parameters": [{"name": "product_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": _answers(schemas.Product, "the product", 404, 503),
            }},
            "/api/categories": {"get": {
                "summary": "Categories with their product counts",
                "responses": _answers(schemas.Categories, "categories", 503),
            }},
            "/healthz": {"get": {
                "summary": "Liveness and database check",
                "responses": _answers(schemas.Health, "healthy", 503),
            }},
            "/api/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            }},
        },
        "components": {"schemas": components()},
    }

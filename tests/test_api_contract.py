"""The API's real answers against the OpenAPI document it publishes: a field renamed, added or retyped on one side
only (a route answering by hand, a model changed without the document, or the reverse) fails here."""
import io

import pytest
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS31Validator


@pytest.fixture
def document(client):
    return client.get("/api/openapi.json").get_json()


def check(document: dict, method: str, path: str, response) -> dict:
    """Validate one answer against the schema the document gives for its route and status; returns the body."""
    operation = document["paths"][path][method]
    declared = operation["responses"][str(response.status_code)]["content"]["application/json"]["schema"]
    body = response.get_json()
    # The schema's $refs point into the document's components, so the components travel with it.
    OAS31Validator({**declared, "components": document["components"]}).validate(body)
    return body


def photo(fashion_slice, category="Watches"):
    return sorted((fashion_slice / category).glob("*.jpg"))[2].read_bytes()


def search(client, data: bytes, **fields):
    return client.post("/api/search", data={"image": (io.BytesIO(data), "photo.jpg"), **fields},
                       content_type="multipart/form-data")


def test_every_schema_is_valid_json_schema(document):
    assert document["openapi"] == "3.1.0"
    for schema in document["components"]["schemas"].values():
        OAS31Validator.check_schema(schema)


def test_real_answers_match_the_published_document(client, document, fashion_slice):
    found = check(document, "post", "/api/search", search(client, photo(fashion_slice), k="3", metric="cosine"))
    assert found["metric"] == "cosine" and len(found["results"]) == 3
    boxed = check(document, "post", "/api/search", search(client, photo(fashion_slice, "Heels"), box="10,20,40,50"))
    assert boxed["box"] == {"x": 10, "y": 20, "w": 40, "h": 50}
    product_id = found["results"][0]["product_id"]
    assert check(document, "get", "/api/products/{product_id}", client.get(f"/api/products/{product_id}"))["width"]
    assert check(document, "get", "/api/categories", client.get("/api/categories"))["categories"]
    assert check(document, "get", "/healthz", client.get("/healthz"))["status"] == "ok"


@pytest.mark.parametrize("send, status", [
    (lambda client, data: search(client, data, k="0"), 400),
    (lambda client, data: search(client, data, scope="galaxy"), 400),
    (lambda client, data: client.post("/api/search", json={"image_url": "http://127.0.0.1:9/a.jpg", "k": "x"}), 400),
    (lambda client, data: search(client, b"not a picture"), 415),
    (lambda client, data: search(client, b"\xff" * (3 * 1024 * 1024)), 413),
])
def test_error_answers_match_the_published_document(client, document, fashion_slice, send, status):
    response = send(client, photo(fashion_slice))
    assert response.status_code == status
    assert check(document, "post", "/api/search", response)["status"] == status


def test_a_missing_product_matches_the_published_document(client, document):
    response = client.get("/api/products/999999")
    assert response.status_code == 404 and check(document, "get", "/api/products/{product_id}", response)


def test_a_renamed_field_fails_the_check(client, document, fashion_slice):
    """The check above can fail: the same answer with one field renamed, or one result's field, is refused."""
    body = search(client, photo(fashion_slice), k="2").get_json()
    schema = {"$ref": "#/components/schemas/SearchResult", "components": document["components"]}
    OAS31Validator(schema).validate(body)
    renamed = {("similar" if name == "results" else name): value for name, value in body.items()}
    first = dict(body["results"][0])
    first["score"] = first.pop("similarity")
    nested = {**body, "results": [first]}
    for wrong in (renamed, nested):
        with pytest.raises(ValidationError):
            OAS31Validator(schema).validate(wrong)

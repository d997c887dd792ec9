"""Every route through Flask's test client, on a real store and model (bad uploads: test_hardening_uploads.py)."""
import http.server
import io
import re
import threading
from dataclasses import replace

import pytest

from model.gallery import GALLERY_VIEWS
from webapp import create_app
from webapp.openapi import openapi_document


def catalogue_photo(fashion_slice, category="Watches", index=2):
    return sorted((fashion_slice / category).glob("*.jpg"))[index]


def upload(client, data, url="/api/search", name="photo.jpg", **fields):
    return client.post(url, data={"image": (io.BytesIO(data), name), **fields}, content_type="multipart/form-data")


def test_api_search_by_upload(client, fashion_slice):
    photo = catalogue_photo(fashion_slice)
    response = upload(client, photo.read_bytes(), k="5")
    assert response.status_code == 200
    body = response.get_json()
    assert body["predicted"]["category"] == "Watches" and body["searched_categories"] == ["Watches"]
    assert len(body["results"]) == 5 and body["results"][0]["external_id"] == photo.stem
    first = body["results"][0]
    assert first["similarity"] > body["results"][1]["similarity"] and first["metadata"]["articleType"] == "Watches"
    assert first["image_url"].endswith(f"/products/{first['product_id']}/image")
    assert set(body["timings_ms"]) >= {"forward_pass", "neighbours", "rank"} and body["weak_match"] is False
    review = client.get(body["review_url"])
    assert review.status_code == 200
    page = review.get_data(as_text=True)
    assert "0.5 · classifier + 0.5 · vote" in page  # the category step, with its parts
    text = " ".join(page.split())
    assert f"mean embedding of {GALLERY_VIEWS} augmented views" in text  # how the stored vector was made
    assert "The neighbours' vote reads the photo's own embedding" in text


def test_the_reviewer_page_writes_out_the_distance_its_metric_ranks_by(client, fashion_slice):
    body = upload(client, catalogue_photo(fashion_slice, "Heels").read_bytes(), metric="cosine").get_json()
    text = " ".join(client.get(body["review_url"]).get_data(as_text=True).split())
    written = re.search(r"the cosine distance 1 − q·x / \(\|q\|\|x\|\) = ([0-9.]+)", text)
    assert written and float(written.group(1)) == pytest.approx(body["results"][0]["distance"], abs=1e-4)
    euclidean = upload(client, catalogue_photo(fashion_slice, "Heels").read_bytes()).get_json()
    assert 'id="cosine-distance"' not in client.get(euclidean["review_url"]).get_data(as_text=True)


def test_the_reviewer_page_prints_the_settings_as_set(web_settings, web_service, fashion_slice):
    client = create_app(replace(web_settings, vote_weight=0.7, trace_ttl_seconds=45), web_service).test_client()
    body = upload(client, catalogue_photo(fashion_slice).read_bytes()).get_json()
    text = " ".join(client.get(body["review_url"]).get_data(as_text=True).split())
    assert "p = 0.3 · classifier + 0.7 · vote" in text  # not 0.30000000000000004
    assert "Kept in memory for 45 seconds" in text  # not "0 minutes"
    # A results page's address, bookmarked: a new search, not "the method is not allowed".
    again = client.get("/search")
    assert again.status_code == 302 and again.headers["Location"] == "/"


def test_each_parameter_is_read_once_and_from_one_place(client, fashion_slice):
    photo = catalogue_photo(fashion_slice).read_bytes()
    both = client.post("/api/search?k=7", data={"image": (io.BytesIO(photo), "photo.jpg"), "k": "3"},
                       content_type="multipart/form-data")
    assert both.status_code == 400 and both.get_json()["error"].startswith("k given more than once")
    url = client.post("/api/search?k=3", json={"image_url": "http://example.com/a.jpg"})
    assert url.status_code == 400 and url.get_json()["error"].endswith("not in the URL: k")


def test_shopper_page_and_results(client, fashion_slice):
    page = client.get("/")
    assert page.status_code == 200 and b'name="image"' in page.data and b'capture="environment"' in page.data
    icon = re.search(r'rel="icon" href="([^"]+)"', page.get_data(as_text=True))
    assert icon and client.get(icon.group(1)).status_code == 200  # no 404 for /favicon.ico in the console
    photo = catalogue_photo(fashion_slice, "Heels")
    response = upload(client, photo.read_bytes(), url="/search")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="predicted">Heels<' in html and html.count('class="card"') == 12
    assert "/review/" in html and "baseColour" in html


def test_product_image_is_served_with_caching_headers(client, fashion_slice):
    body = upload(client, catalogue_photo(fashion_slice).read_bytes(), k="1").get_json()
    url = f"/products/{body['results'][0]['product_id']}/image"
    response = client.get(url)
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert response.data == catalogue_photo(fashion_slice).read_bytes()
    assert "max-age=604800" in response.headers["Cache-Control"] and response.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
    assert client.get("/products/999999/image").status_code == 404


def test_products_categories_health_openapi(client, fashion_slice):
    categories = client.get("/api/categories").get_json()["categories"]
    assert {c["name"]: c["products"] for c in categories} == {"Backpacks": 12, "Heels": 12, "Sunglasses": 12,
                                                             "Watches": 12}
    body = upload(client, catalogue_photo(fashion_slice).read_bytes(), k="1").get_json()
    product_id = body["results"][0]["product_id"]
    product = client.get(f"/api/products/{product_id}").get_json()
    assert product["category"] == "Watches" and product["metadata"]["baseColour"]
    assert client.get("/api/products/999999").status_code == 404
    health = client.get("/healthz").get_json()
    assert health["status"] == "ok" and health["model"]
    assert client.get("/api/openapi.json").get_json()["openapi"].startswith("3.")


def openapi_path(rule: str) -> str:
    """A Flask rule as OpenAPI writes it: ``/api/products/<int(max=…):product_id>`` is
    ``/api/products/{product_id}``."""
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


def test_openapi_documents_exactly_the_api_routes(app):
    documented = set(openapi_document()["paths"])
    routed = {openapi_path(rule.rule) for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/") or rule.rule == "/healthz"}
    assert documented == routed
    for path, methods in openapi_document()["paths"].items():
        rule = next(r for r in app.url_map.iter_rules() if openapi_path(r.rule) == path)
        assert {m.upper() for m in methods} <= rule.methods


def test_search_by_url(client, fashion_slice):
    photo = catalogue_photo(fashion_slice, "Sunglasses")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "file:///etc/passwd")
                self.end_headers()
                return
            data = photo.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        body = client.post("/api/search", json={"image_url": f"{base}/photo.jpg", "k": 3}).get_json()
        assert body["results"][0]["external_id"] == photo.stem
        refused = client.post("/api/search", json={"image_url": f"{base}/redirect"})
        assert refused.status_code == 400  # a redirect to file:// is never followed
    finally:
        server.shutdown()


def test_unknown_pages_are_404_pages(client):
    for url in ("/review/unknown", "/nowhere"):
        response = client.get(url)
        assert response.status_code == 404 and b'id="error-message"' in response.data
        assert b"<h1>Not found</h1>" in response.data and b"Try another photo" not in response.data  # no upload failed


def test_a_weak_best_match_is_said_plainly(web_settings, web_service, fashion_slice):
    strict = create_app(replace(web_settings, min_similarity=100.5), web_service).test_client()
    photo = catalogue_photo(fashion_slice)
    html = upload(strict, photo.read_bytes(), url="/search").get_data(as_text=True)
    assert 'id="weak"' in html and "Nothing in the catalogue looks much like this photo" in html
    assert "(a match is close from 100.5 %)." in html
    assert upload(strict, photo.read_bytes()).get_json()["weak_match"] is True


def test_an_empty_catalogue_is_said_plainly(tmp_path, web_settings, trained_model, fashion_slice):
    from db.migrate import upgrade
    from db.store import Store
    from search.service import SearchService

    settings = replace(web_settings, data_dir=tmp_path)
    upgrade(settings.resolved_database_url)
    service = SearchService(trained_model, Store.from_url(settings.resolved_database_url), localise_max_share=0)
    html = upload(create_app(settings, service).test_client(), catalogue_photo(fashion_slice).read_bytes(),
                  url="/search").get_data(as_text=True)
    assert 'id="empty"' in html and "No products are stored in the searched categories" in html
    assert 'id="weak"' not in html  # not "the best match is only 0 % similar"


def test_the_reviewer_page_says_which_products_were_deleted_since_the_search(tmp_path, web_settings, trained_model,
                                                                             fashion_slice, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from catalogue.folder import list_catalogue
    from db.migrate import upgrade
    from db.store import Store
    from ingest.loader import Loader
    from search.service import SearchService

    settings = replace(web_settings, data_dir=tmp_path)
    upgrade(settings.resolved_database_url)
    store = Store.from_url(settings.resolved_database_url)
    Loader(trained_model, store, progress=False).ingest([f for f in list_catalogue(fashion_slice)
                                                         if f.category == "Watches"])
    client = create_app(settings, SearchService(trained_model, store, localise_max_share=0)).test_client()
    body = upload(client, catalogue_photo(fashion_slice).read_bytes(), k="3").get_json()
    review = body["review_url"]
    assert "deleted since this search" not in client.get(review).get_data(as_text=True)
    best = body["results"][0]["product_id"]
    store.delete_products([best])
    html = client.get(review).get_data(as_text=True)
    assert html.count("deleted since this search") == 2  # the best match's vector (step 5) and its row (step 7)
    assert f'/products/{best}/image' not in html  # no broken picture of it

    def database_away(ids):
        raise OperationalError("SELECT …", {}, ConnectionError("Lost connection to server"))

    monkeypatch.setattr(store, "products", database_away)
    assert client.get(review).status_code == 200  # the page, kept in memory, still serves
    store.engine.dispose()


def test_health_shows_an_activated_version_that_cannot_be_loaded(tmp_path, web_settings, trained_model):
    from db.migrate import upgrade
    from db.registry import ModelRegistry
    from db.store import Store
    from search.service import SearchService

    settings = replace(web_settings, data_dir=tmp_path)
    upgrade(settings.resolved_database_url)
    store = Store.from_url(settings.resolved_database_url)
    client = create_app(settings, SearchService(trained_model, store)).test_client()
    assert client.get("/healthz").get_json() == {"status": "ok", "database": "ok", "model": trained_model.version,
                                                 "active": None}  # nothing registered: the model it started with
    registry = ModelRegistry(store)
    registry.register("broken-1", "mobilenet_v2", trained_model.categories)  # its files were never copied in
    registry.activate("broken-1")
    health = client.get("/healthz").get_json()
    assert health["model"] == trained_model.version and health["active"] == "broken-1"  # still serving the old one


def test_the_api_says_which_weak_match_threshold_it_applied(client, web_settings, web_service, fashion_slice):
    photo = catalogue_photo(fashion_slice).read_bytes()
    assert web_settings.min_similarity is None and 0 < web_service.model.min_similarity < 100
    assert upload(client, photo).get_json()["min_similarity"] == web_service.model.min_similarity  # the model's own
    strict = create_app(replace(web_settings, min_similarity=100.5), web_service).test_client()
    assert upload(strict, photo).get_json()["min_similarity"] == 100.5  # the setting, over the model's


def test_searching_stores_nothing(client, fashion_slice, web_service):
    before = web_service.store.category_counts()
    upload(client, catalogue_photo(fashion_slice, "Backpacks", 7).read_bytes())
    assert web_service.store.category_counts() == before


def test_api_searches_the_box_it_is_given(client, fashion_slice):
    photo = catalogue_photo(fashion_slice, "Heels")  # 60 × 80 px
    body = upload(client, photo.read_bytes(), k="3", box="10,20,40,50").get_json()
    assert body["box"] == {"x": 10, "y": 20, "w": 40, "h": 50} and body["box_source"] == "shopper"
    assert body["image_size"] == {"width": 60, "height": 80}
    whole = upload(client, photo.read_bytes(), k="3", box="0,0,60,80").get_json()
    first, second, _ = whole["results"]
    assert first["external_id"] == photo.stem and first["similarity"] > second["similarity"]


def test_api_refuses_a_box_it_cannot_search(client, fashion_slice):
    data = catalogue_photo(fashion_slice, "Heels").read_bytes()  # 60 × 80 px
    for box, message in [("10,20,30", "box must be x,y,w,h in whole pixels"), ("a,b,c,d", "box must be x,y,w,h"),
                         ("1.5,2,3,4", "box must be x,y,w,h"), ("0,0,0,10", "w ≥ 1"), ("-1,0,10,10", "x ≥ 0"),
                         ("0,0,61,80", "not inside the 60 × 80 px image"), ("50,70,11,10", "x + w ≤ 60"),
                         ("0,1,60,80", "y + h ≤ 80")]:
        response = upload(client, data, box=box)
        assert response.status_code == 400, box
        assert message in response.get_json()["error"], (box, response.get_json())
    response = client.post("/api/search", json={"image_url": "http://127.0.0.1:9/x.jpg", "box": [0, 0, 5, 5]})
    assert response.status_code == 400 and "box must be x,y,w,h" in response.get_json()["error"]

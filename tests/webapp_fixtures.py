"""A web app over a real store holding the fashion slice, shared by the web tests."""
from __future__ import annotations

import pytest

from catalogue.folder import list_catalogue, load_metadata
from config import Settings
from db.migrate import upgrade
from db.store import Store
from ingest.loader import Loader
from search.service import SearchService
from tests.conftest import FASHION
from webapp import create_app


@pytest.fixture(scope="session")
def web_settings(tmp_path_factory):
    # The web tests search far faster than any shopper: the rate limit has its own tests, with a low limit.
    return Settings(data_dir=tmp_path_factory.mktemp("web"), top_k=30, allow_private_urls=True, localise_max_share=0,
                    max_upload_bytes=2 * 1024 * 1024, max_image_pixels=4_000_000, rate_limit="100000 per minute")


@pytest.fixture(scope="session")
def web_service(web_settings, trained_model, fashion_slice):
    url = web_settings.resolved_database_url
    upgrade(url)
    store = Store.from_url(url)
    files = list_catalogue(fashion_slice)
    Loader(trained_model, store, progress=False).ingest(files, load_metadata(FASHION / "products.csv", files))
    # No crop by localisation: the 96 px test model's 3 × 3 map places nothing (test_localisation has a 224 px one);
    # the map, its box and the shopper's box still show.
    return SearchService(trained_model, store, web_settings.top_k, max_image_pixels=web_settings.max_image_pixels,
                         localise_max_share=0)


@pytest.fixture(scope="session")
def app(web_settings, web_service):
    return create_app(web_settings, web_service)


@pytest.fixture
def client(app):
    return app.test_client()

"""A folder of JPEGs to committed MySQL rows: the loader against the per-image baseline."""
from __future__ import annotations

import hashlib
import time

from sqlalchemy import insert, select

from catalogue.folder import CatalogueFile
from config import DEFAULTS
from db.schema import Category, Feature, Product
from db.store import Store, encode_vector
from images.decoding import decode_image
from ingest.loader import Loader
from model.inference import Network
from model.network import KerasNetwork


def loader_rate(model: Network, url: str, files: list[CatalogueFile], batch_size: int) -> float:
    """Images per second of ``Loader.ingest`` (overlapping decode, batched passes, batched transactions)."""
    store = Store.from_url(url)
    report = Loader(model, store, batch_size, progress=False).ingest(files)
    store.engine.dispose()
    if report.rejected or report.added + report.present != len(files):
        raise RuntimeError(f"the loader did not take every image: {report.summary()}")
    return len(files) / report.seconds  # the catalogue holds a few duplicate pictures, stored once


def per_image_baseline_rate(model: KerasNetwork, url: str, files: list[CatalogueFile]) -> float:
    """Images per second of the per-image baseline: per image, decode, one Keras ``predict``, one INSERT, one commit.

    Kept only as the baseline: never load a catalogue like this.
    """
    store = Store.from_url(url)
    with store.engine.begin() as conn:
        conn.execute(insert(Category), [{"name": name, "revision": 0} for name in sorted({f.category for f in files})])
        category_ids = dict(conn.execute(select(Category.name, Category.id)).all())
    started = time.perf_counter()
    for entry in files:
        data = entry.path.read_bytes()
        image = decode_image(data, max_pixels=DEFAULTS.max_image_pixels)
        array = model.preprocess(model.arrays([image.rgb]))
        vector = model.network.predict(array, verbose=0)[1][0]
        with store.engine.begin() as conn:
            product_id = conn.execute(insert(Product).values(
                category_id=category_ids[entry.category], external_id=entry.external_id, metadata_={},
                image=data, image_sha256=hashlib.sha256(data).hexdigest(), content_type=image.content_type,
                width=image.width, height=image.height)).inserted_primary_key[0]
            conn.execute(insert(Feature).values(product_id=product_id, model_version=model.version,
                                                dim=len(vector), vector=encode_vector(vector)))
    seconds = time.perf_counter() - started
    store.engine.dispose()
    return len(files) / seconds

"""The store: every read and write of categories, products and vectors goes through here.

SQL is built only with SQLAlchemy, so every value reaches the database as a bound parameter.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import NamedTuple, TypeVar, cast

import numpy as np
from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Row,
    create_engine,
    delete,
    event,
    func,
    insert,
    make_url,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.schema import Category, Feature, ModelVersion, Product

VECTOR_DTYPE = np.dtype("<f4")  # little-endian float32, whatever the machine
CHUNK = 500  # ids per IN (...) list: far below every backend's limit on bound parameters
ATTEMPTS = 5  # of one batch's transaction, when another writer's got in its way
T = TypeVar("T")
Place = tuple[str, str]  # where a product is: (category, external id)


class Move(NamedTuple):
    """A stored product whose image a catalogue now has at another place (``Store.relocate``)."""

    product: int
    before: Place
    after: Place
    sharing: int | None = None  # when moved: the id of another product still at ``after``, if one is


class Relocation(NamedTuple):
    moved: list[Move]
    kept: list[Move]  # products of categories the catalogue does not hold: left where they are


class NotFound(ValueError):
    """An id, category or model version the store does not hold; the message says what to do."""


class RegistryChanged(RuntimeError):
    """A batch of products or vectors was made for other registered models than the registry now lists; nothing of
    it was stored."""

    def __init__(self, added: list[str], pruned: list[str]):
        changes = ([f"model {', '.join(added)} was registered"] * bool(added)
                   + [f"model {', '.join(pruned)} was pruned"] * bool(pruned))
        super().__init__(f"{' and '.join(changes)} meanwhile, so this run stopped (what it stored is kept): run it "
                         "again to go on with the models registered now")


def encode_vector(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=VECTOR_DTYPE).tobytes()


def decode_vectors(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """Stack stored vectors into one native float32 matrix with a single copy."""
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype=VECTOR_DTYPE).reshape(len(blobs), dim).astype(np.float32)


@dataclass(frozen=True)
class NewProduct:
    """A decoded catalogue image with its vectors (by model version), ready to be stored.

    ``photo_vectors``: by model version, the photo's own embedding, which the neighbours' vote reads
    (``Feature.photo_vector``); without one the vote reads the vector.
    """

    category: str
    external_id: str
    image: bytes
    image_sha256: str
    content_type: str
    width: int
    height: int
    vectors: Mapping[str, np.ndarray]
    metadata: dict = field(default_factory=dict)
    photo_vectors: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class ProductInfo:
    id: int
    external_id: str
    category: str
    metadata: dict
    width: int
    height: int


@dataclass(frozen=True)
class CategoryVectors:
    """A category's vectors of one model version and the products they describe, read in one statement so that
    they agree with each other and with ``revision`` (None when the category holds no such vector)."""

    revision: int | None
    ids: np.ndarray  # (n,) int64, ascending
    vectors: np.ndarray  # (n, dim) float32: what searches rank by
    voters: np.ndarray  # (n, dim) float32: what the neighbours' vote reads (the photos' own embeddings, or the vectors)
    products: dict[int, ProductInfo]  # by product id


@dataclass(frozen=True)
class ProductDetail:
    """A product as an admin sees it: its description, its image's facts and its vectors' model versions."""

    info: ProductInfo
    content_type: str
    image_sha256: str
    created_at: object
    versions: list[str]


@dataclass(frozen=True)
class CategoryDetail:
    name: str
    products: int
    revision: int
    vectors: dict[str, int]  # by model version


# mysql-connector waits for ever by default: a stopped or unreachable server would hang every request
# instead of failing it (503). A healthy server answers a handshake in milliseconds; a statement may run longer.
MYSQL_CONNECTOR_TIMEOUTS = {"connection_timeout": 5, "read_timeout": 30, "write_timeout": 30}


def create_db_engine(url: str) -> Engine:
    """An engine with the options each backend needs to be a dependable store."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)  # the embedded default needs no set-up
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")  # SQLite ignores ON DELETE CASCADE without it
            cursor.execute("PRAGMA journal_mode=WAL")  # readers keep serving while an ingest writes
            cursor.close()

        return engine
    # pre-ping replaces connections the server dropped (restart, wait_timeout) instead of failing a request.
    connect_args = MYSQL_CONNECTOR_TIMEOUTS if make_url(url).get_driver_name() == "mysqlconnector" else {}
    return create_engine(url, pool_pre_ping=True, pool_recycle=3600, connect_args=connect_args)


class Store:
    """Categories, products and their vectors in one SQL database.

    Args:
        engine: a SQLAlchemy engine whose database has been upgraded to the latest migration.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str) -> Store:
        return cls(create_db_engine(url))

    # --- ingest -------------------------------------------------------------------------------

    def known_hashes(self, hashes: Iterable[str], category: str | None = None) -> set[str]:
        """Which of these pictures (SHA-256) are stored, as products of ``category`` if given."""
        wanted = list(set(hashes))
        found: set[str] = set()
        query = select(Product.image_sha256)
        if category is not None:
            query = query.join(Category, Category.id == Product.category_id).where(Category.name == category)
        with self._session() as session:
            for start in range(0, len(wanted), CHUNK):
                found.update(session.scalars(query.where(Product.image_sha256.in_(wanted[start:start + CHUNK]))))
        return found

    def add_products(self, items: Sequence[NewProduct], registered: Collection[str] | None = None
                     ) -> list[NewProduct]:
        """Store products and their vectors (every version given) in one transaction; returns those added.

        Images already stored (same SHA-256) are left alone, so a re-run after an interruption or a
        concurrent loader never duplicates anything.

        Args:
            items: the products, each with a vector of the same versions.
            registered: the registered versions the batch was made for. When given, the batch is stored only if
                the registry, read in the same transaction, lists no version it lacks a vector of and still lists
                every one of those versions it has vectors of; else ``RegistryChanged``.
        """
        for _attempt in range(ATTEMPTS):
            fresh = self._not_stored(items)
            if not fresh:
                return []
            try:
                self._transaction(partial(self._insert, items=fresh, registered=registered))
                return fresh
            except IntegrityError:
                continue  # another writer stored some of these meanwhile: filter again and retry
        raise RuntimeError(f"could not store a batch after {ATTEMPTS} attempts: concurrent writers keep conflicting "
                           "(what was stored is kept: run it again)")

    def _transaction(self, work: Callable[[Session], T]) -> T:
        """``work`` in one transaction, run again when the server rolled it back to end a deadlock with another
        writer (which it asks the client to do): every writer of the catalogue runs through it. The two that run
        side by side by design, ingest and reembed, lock their categories' rows first, so deadlocks between them
        are rare; this catches the rest, and an admin command's racing an ingest."""
        for attempt in range(ATTEMPTS):
            try:
                with self._session.begin() as session:
                    return work(session)
            except DBAPIError as e:
                if not _deadlocked(e) or attempt == ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _not_stored(self, items: Sequence[NewProduct]) -> list[NewProduct]:
        known = self.known_hashes(item.image_sha256 for item in items)
        unique: dict[str, NewProduct] = {}
        for item in items:
            if item.image_sha256 not in known:
                unique.setdefault(item.image_sha256, item)
        return list(unique.values())

    def _insert(self, session: Session, items: list[NewProduct], registered: Collection[str] | None) -> None:
        category_ids = self._category_ids(session, {item.category for item in items})
        # Bumped first: on SQLite, the write that puts the registry's check below inside this transaction.
        self._bump(session, category_ids.values())
        if registered is not None:
            _check_registry(session, set(items[0].vectors), set(registered))
        session.execute(insert(Product), [
            {"category_id": category_ids[item.category], "external_id": item.external_id,
             "metadata_": item.metadata, "image": item.image, "image_sha256": item.image_sha256,
             "content_type": item.content_type, "width": item.width, "height": item.height}
            for item in items
        ])
        ids = dict(session.execute(select(Product.image_sha256, Product.id).where(
            Product.image_sha256.in_([item.image_sha256 for item in items]))).all())
        session.execute(insert(Feature), [
            feature_row(ids[item.image_sha256], version, vector, item.photo_vectors.get(version))
            for item in items for version, vector in item.vectors.items()
        ])

    def _category_ids(self, session: Session, names: set[str]) -> dict[str, int]:
        # Locked first, as the revision bump at the end will: two writers into one category then wait for each
        # other instead of both holding the shared lock their inserts take on it and deadlocking over the bump.
        existing = dict(session.execute(select(Category.name, Category.id).where(Category.name.in_(names))
                                        .with_for_update()).all())
        missing = names - existing.keys()
        if missing:
            start = self._top_revision(session)
            session.execute(insert(Category), [{"name": name, "revision": start} for name in sorted(missing)])
            existing.update(session.execute(
                select(Category.name, Category.id).where(Category.name.in_(missing))).all())
        return existing

    @staticmethod
    def _bump(session: Session, category_ids: Iterable[int]) -> None:
        session.execute(update(Category).where(Category.id.in_(set(category_ids)))
                        .values(revision=Category.revision + 1))

    @staticmethod
    def _top_revision(session: Session) -> int:
        return session.execute(select(func.coalesce(func.max(Category.revision), 0))).scalar_one()

    # --- re-embedding -------------------------------------------------------------------------

    def products_without_vector_count(self, model_version: str, photos: bool = False) -> int:
        with self.engine.connect() as conn:
            return conn.execute(count_without_vector(model_version, photos)).scalar_one()

    def products_without_vector(self, model_version: str, after_id: int, limit: int,
                                photos: bool = False) -> list[tuple[int, bytes]]:
        """Images of products that have no vector of ``model_version`` (with ``photos``: or no photo vector beside
        it), in id order, after ``after_id``."""
        with self._session() as session:
            rows = session.execute(
                select(Product.id, Product.image)
                .where(Product.id > after_id, lacking(model_version, photos))
                .order_by(Product.id).limit(limit)).all()
        return [(row.id, row.image) for row in rows]

    def put_vectors(self, vectors: Mapping[int, np.ndarray], model_version: str,
                    photo_vectors: Mapping[int, np.ndarray] | None = None, registered: bool = False) -> int:
        """Store products' vectors of ``model_version`` (and their photos' own embeddings, as ``NewProduct``),
        in place of any they had; how many were stored (a product deleted meanwhile gets none). ``registered``: the
        version must still be registered, read in the same transaction (else ``RegistryChanged``, nothing stored)."""
        photo_vectors = photo_vectors or {}

        def put(session: Session) -> int:
            # Their categories' rows first, as ingest locks them (so the two wait for each other, not deadlock);
            # then the products, so that none can be deleted between this read and the insert.
            session.execute(select(Category.id).where(Category.id.in_(
                select(Product.category_id).where(Product.id.in_(list(vectors))))).with_for_update())
            present = session.execute(select(Product.id, Product.category_id)
                                      .where(Product.id.in_(list(vectors))).with_for_update()).all()
            ids = [row.id for row in present]
            self._bump(session, {row.category_id for row in present})  # first, as an ingest batch does
            if registered and model_version not in _registry_now(session):
                raise RegistryChanged([], [model_version])
            session.execute(delete(Feature).where(Feature.model_version == model_version,
                                                  Feature.product_id.in_(ids)))
            if ids:
                session.execute(insert(Feature), [
                    feature_row(product_id, model_version, vectors[product_id], photo_vectors.get(product_id))
                    for product_id in ids
                ])
            return len(ids)

        return self._transaction(put)

    # --- search -------------------------------------------------------------------------------

    def category_revisions(self) -> dict[str, int]:
        """Every category's revision: read before each search, so a plain connection, not an ORM session."""
        with self.engine.connect() as conn:
            return dict(conn.execute(select(Category.name, Category.revision)).all())

    def category_vectors(self, category: str, model_version: str) -> CategoryVectors:
        """One category's vectors of one model version, the vectors the neighbours' vote reads, its products'
        descriptions and its revision, from one consistent read."""
        with self._session() as session:
            rows = session.execute(
                select(Category.name, Category.revision, Feature.product_id, Feature.dim, Feature.vector,
                       func.coalesce(Feature.photo_vector, Feature.vector).label("voter"),
                       Product.external_id, Product.metadata_, Product.width, Product.height)
                .join(Product, Product.id == Feature.product_id)
                .join(Category, Category.id == Product.category_id)
                .where(Category.name == category, Feature.model_version == model_version)
                .order_by(Feature.product_id)).all()
        if not rows:
            empty = np.zeros((0, 0), dtype=np.float32)
            return CategoryVectors(None, np.zeros(0, dtype=np.int64), empty, empty, {})
        dims = {row.dim for row in rows}
        if len(dims) != 1:
            raise ValueError(f"category {category!r} holds vectors of several sizes {sorted(dims)} for one model")
        ids = np.fromiter((row.product_id for row in rows), dtype=np.int64, count=len(rows))
        dim = dims.pop()
        products = {row.product_id: ProductInfo(row.product_id, row.external_id, row.name, _metadata(row.metadata_),
                                                row.width, row.height) for row in rows}
        return CategoryVectors(rows[0].revision, ids, decode_vectors([row.vector for row in rows], dim),
                               decode_vectors([row.voter for row in rows], dim), products)

    def products(self, ids: Iterable[int]) -> dict[int, ProductInfo]:
        wanted = [int(i) for i in ids]
        with self._session() as session:
            rows = [row for start in range(0, len(wanted), CHUNK) for row in session.execute(
                select(Product.id, Product.external_id, Category.name, Product.metadata_,
                       Product.width, Product.height)
                .join(Category, Category.id == Product.category_id)
                .where(Product.id.in_(wanted[start:start + CHUNK]))).all()]
        return {row.id: ProductInfo(row.id, row.external_id, row.name, _metadata(row.metadata_), row.width, row.height)
                for row in rows}

    def image(self, product_id: int) -> tuple[bytes, str] | None:
        with self._session() as session:
            row = session.execute(select(Product.image, Product.content_type)
                                  .where(Product.id == product_id)).first()
        return (row.image, row.content_type) if row else None

    def vector(self, product_id: int, model_version: str) -> np.ndarray | None:
        with self._session() as session:
            row = session.execute(select(Feature.dim, Feature.vector).where(
                Feature.product_id == product_id, Feature.model_version == model_version)).first()
        return decode_vectors([row.vector], row.dim)[0] if row else None

    def category_counts(self) -> dict[str, int]:
        """Products per category; a category whose products were all deleted is left out."""
        with self._session() as session:
            rows = session.execute(
                select(Category.name, func.count(Product.id))
                .join(Product, Product.category_id == Category.id)
                .group_by(Category.name).order_by(Category.name)).all()
        return dict(rows)

    def vector_counts(self) -> dict[str, int]:
        """How many vectors each model version has (used to report re-embedding)."""
        with self._session() as session:
            return dict(session.execute(
                select(Feature.model_version, func.count(Feature.id)).group_by(Feature.model_version)).all())

    # --- catalogue administration -------------------------------------------------------------

    def list_products(self, category: str | None = None, after_id: int = 0, limit: int = 100) -> list[ProductInfo]:
        """Products in id order (of one category if given), after ``after_id``."""
        query = (select(Product.id, Product.external_id, Category.name, Product.metadata_, Product.width,
                        Product.height).join(Category, Category.id == Product.category_id)
                 .where(Product.id > after_id).order_by(Product.id).limit(limit))
        if category is not None:
            self.require_category(category)
            query = query.where(Category.name == category)
        with self._session() as session:
            rows = session.execute(query).all()
        return [ProductInfo(row.id, row.external_id, row.name, _metadata(row.metadata_), row.width, row.height)
                for row in rows]

    def product_detail(self, product_id: int) -> ProductDetail:
        with self._session() as session:
            row = session.execute(
                select(Product.content_type, Product.image_sha256, Product.created_at)
                .where(Product.id == product_id)).first()
            if row is None:
                raise NotFound(f"no product with id {product_id}: 'lookalike products list' shows the ids")
            versions = session.scalars(select(Feature.model_version).where(Feature.product_id == product_id)
                                       .order_by(Feature.model_version)).all()
        return ProductDetail(self.products([product_id])[product_id], row.content_type, row.image_sha256,
                             row.created_at, list(versions))

    def category_detail(self, name: str) -> CategoryDetail:
        with self._session() as session:
            category = self._category(session, name)
            products = session.execute(select(func.count(Product.id))
                                       .where(Product.category_id == category.id)).scalar_one()
            vectors = dict(session.execute(
                select(Feature.model_version, func.count(Feature.id))
                .join(Product, Product.id == Feature.product_id).where(Product.category_id == category.id)
                .group_by(Feature.model_version).order_by(Feature.model_version)).all())
        return CategoryDetail(category.name, products, category.revision, vectors)

    def require_category(self, name: str) -> None:
        with self._session() as session:
            self._category(session, name)

    def _category(self, session: Session, name: str) -> Category:
        category = session.scalars(select(Category).where(Category.name == name)).first()
        if category is None:
            raise NotFound(f"no category named {name!r}: 'lookalike categories' lists them (names are exact)")
        return category

    def ids_of(self, external_ids: Sequence[str], category: str | None = None) -> list[int]:
        """The product ids of shop ids (external ids), of ``category`` if given; every one must be known and name one
        product (two of one category share an id until a sync removes a product whose file a rename replaced)."""
        wanted = list(dict.fromkeys(external_ids))
        found: dict[str, list[tuple[int, str]]] = {}
        with self._session() as session:
            for start in range(0, len(wanted), CHUNK):
                query = (select(Product.external_id, Product.id, Category.name)
                         .join(Category, Category.id == Product.category_id)
                         .where(Product.external_id.in_(wanted[start:start + CHUNK])))
                if category is not None:
                    query = query.where(Category.name == category)
                for external_id, product_id, name in session.execute(query):
                    found.setdefault(external_id, []).append((product_id, name))
        unknown = [e for e in wanted if e not in found]
        if unknown:
            raise NotFound(f"no product with external id {_some(unknown)}{f' in {category}' if category else ''}: "
                           "nothing was deleted; 'lookalike products list' shows the ids")
        shared = [f"{e} ({', '.join(f'{name} {product_id}' for product_id, name in sorted(found[e]))})"
                  for e in wanted if len(found[e]) > 1]
        if shared:
            raise NotFound(f"external id {_some(shared)} names several products (category, id): nothing was "
                           "deleted; name the category with --category, or give the product ids")
        return [product_id for e in wanted for product_id, _ in found[e]]

    def delete_products(self, ids: Sequence[int]) -> dict[str, int]:
        """Delete products (their vectors go with them) in one transaction; returns how many per category.

        All or nothing: an unknown id deletes nothing.
        """
        wanted = list(dict.fromkeys(int(i) for i in ids))

        def delete_them(session: Session) -> list[Row]:
            rows: list[Row] = []
            for start in range(0, len(wanted), CHUNK):
                rows += session.execute(select(Product.id, Product.category_id, Category.name)
                                        .join(Category, Category.id == Product.category_id)
                                        .where(Product.id.in_(wanted[start:start + CHUNK]))).all()
            unknown = sorted(set(wanted) - {row.id for row in rows})
            if unknown:
                raise NotFound(f"no product with id {_some(unknown)}: nothing was deleted; "
                               "'lookalike products list' shows the ids")
            for start in range(0, len(wanted), CHUNK):
                # Vectors go by the foreign key's ON DELETE CASCADE.
                session.execute(delete(Product).where(Product.id.in_(wanted[start:start + CHUNK])))
            self._bump(session, {row.category_id for row in rows})
            return rows

        return dict(Counter(row.name for row in self._transaction(delete_them)))

    def delete_category(self, name: str) -> int:
        """Delete every product of a category; returns how many went.

        The category's row stays, empty, so its revision keeps counting up: a serving process that cached
        its vectors sees it move, and a re-ingest into the same name can never bring a stale cache back.
        """
        def delete_them(session: Session) -> int:
            category = self._category(session, name)
            result = cast(CursorResult, session.execute(delete(Product).where(Product.category_id == category.id)))
            self._bump(session, [category.id])
            return result.rowcount

        return self._transaction(delete_them)

    def rename_category(self, old: str, new: str) -> None:
        """Rename a category, in the registered models' category lists too, in one transaction; the old name is kept
        as a former name, for models registered later (``current_names``).

        Raises:
            NotFound: no category ``old``.
            ValueError: ``new`` names a category that still has products, or one a registered model predicts
                beside ``old`` (two of its outputs would share one name).
        """
        new = new.strip()
        if not new or len(new) > 255:
            raise ValueError("a category name is 1 to 255 characters")

        def rename(session: Session) -> None:
            category = self._category(session, old)
            if new == old:
                return
            taken = session.scalars(select(Category).where(Category.name == new)).first()
            if taken is not None:
                if session.scalar(select(func.count(Product.id)).where(Product.category_id == taken.id)):
                    raise ValueError(f"category {new!r} already exists and has products: choose another name "
                                     f"(or move them by deleting and ingesting again)")
                session.delete(taken)  # an emptied category's leftover row gives way
                session.flush()
            category.revision = self._top_revision(session) + 1
            category.former_names = [name for name in category.former_names or [] if name != new] + [old]
            category.name = new
            # A locking read: the latest rows, a model registered since this transaction began too.
            for model in session.scalars(select(ModelVersion).with_for_update()):
                if old in model.categories and new in model.categories:
                    raise ValueError(f"model {model.version} predicts {old!r} and {new!r} apart: renaming one onto "
                                     "the other would give two of its outputs one name")
                if old in model.categories:
                    model.categories = [new if c == old else c for c in model.categories]

        self._transaction(rename)

    def update_metadata(self, rows: Mapping[tuple[str, str], dict]) -> int:
        """Set the metadata of stored products by (category, external id); returns how many changed.

        Rows naming no stored product are ignored (their files were not ingested); the categories whose
        products changed get a new revision in the same transaction.
        """
        by_category: dict[str, dict[str, dict]] = {}
        for (category, external_id), metadata in rows.items():
            by_category.setdefault(category, {})[external_id] = metadata

        def update_them(session: Session) -> int:
            changed, touched = 0, set()
            for category, wanted in by_category.items():
                names = list(wanted)
                for start in range(0, len(names), CHUNK):
                    stored = session.execute(
                        select(Product.id, Product.category_id, Product.external_id, Product.metadata_)
                        .join(Category, Category.id == Product.category_id)
                        .where(Category.name == category, Product.external_id.in_(names[start:start + CHUNK]))).all()
                    for row in stored:
                        if (row.metadata_ or {}) != wanted[row.external_id]:
                            session.execute(update(Product).where(Product.id == row.id)
                                            .values(metadata_=wanted[row.external_id]))
                            touched.add(row.category_id)
                            changed += 1
            if touched:
                self._bump(session, touched)
            return changed

        return self._transaction(update_them)

    def relocate(self, places: Mapping[str, Sequence[Place]], within: Collection[str]) -> Relocation:
        """Move stored products of some categories to where a catalogue now has their image.

        Args:
            places: by image SHA-256, every (category, external id) a catalogue has that image at.
            within: the categories the catalogue holds: only their products move.

        Returns:
            Each product of ``within`` whose image is at none of its places, moved to the first (its file was moved
            to another category folder, or renamed): the categories it left and joined get a new revision in the
            same transaction. And each such product of another category, kept where it is (another catalogue's
            product with the same picture, or one whose category folder is gone).
        """
        hashes = list(places)

        def move_them(session: Session) -> Relocation:
            rows = [row for start in range(0, len(hashes), CHUNK) for row in session.execute(
                select(Product.id, Product.image_sha256, Product.category_id, Category.name, Product.external_id)
                .join(Category, Category.id == Product.category_id)
                .where(Product.image_sha256.in_(hashes[start:start + CHUNK])))
                if (row.name, row.external_id) not in places[row.image_sha256]]
            kept = [Move(row.id, (row.name, row.external_id), places[row.image_sha256][0])
                    for row in rows if row.name not in within]
            rows = [row for row in rows if row.name in within]
            if not rows:
                return Relocation([], kept)
            targets = {row.id: places[row.image_sha256][0] for row in rows}
            category_ids = self._category_ids(session, {category for category, _ in targets.values()})
            moved, touched = [], set()
            for row in rows:
                category, external_id = targets[row.id]
                # Only if it is still where it was read: a concurrent move or rename wins.
                if cast(CursorResult, session.execute(
                        update(Product).where(Product.id == row.id, Product.category_id == row.category_id,
                                              Product.external_id == row.external_id)
                        .values(category_id=category_ids[category], external_id=external_id))).rowcount:
                    touched |= {row.category_id, category_ids[category]}
                    moved.append(row)
            self._bump(session, touched)
            # Another product still at the place a product moved to: a file renamed onto a name whose own file
            # went (sync removes that product).
            sharing = {(row.name, row.external_id): row.id for start in range(0, len(moved), CHUNK)
                       for row in session.execute(
                           select(Product.id, Category.name, Product.external_id)
                           .join(Category, Category.id == Product.category_id)
                           .where(tuple_(Category.name, Product.external_id).in_(
                               [targets[row.id] for row in moved[start:start + CHUNK]]),
                                  Product.id.not_in([row.id for row in moved[start:start + CHUNK]])))}
            return Relocation([Move(row.id, (row.name, row.external_id), targets[row.id], sharing.get(targets[row.id]))
                               for row in moved], kept)

        return self._transaction(move_them)

    def products_missing_from(self, categories: Iterable[str], hashes: Collection[str]) -> list[ProductInfo]:
        """Stored products of ``categories`` whose image is none of ``hashes`` (a folder's files)."""
        with self._session() as session:
            rows = session.execute(
                select(Product.id, Product.image_sha256).join(Category, Category.id == Product.category_id)
                .where(Category.name.in_(list(categories))).order_by(Product.id)).all()
        gone = [row.id for row in rows if row.image_sha256 not in hashes]
        found = self.products(gone)
        return [found[i] for i in gone]


def feature_row(product_id: int, model_version: str, vector: np.ndarray, photo_vector: np.ndarray | None) -> dict:
    """One ``features`` row's values."""
    return {"product_id": product_id, "model_version": model_version, "dim": int(vector.shape[-1]),
            "vector": encode_vector(vector),
            "photo_vector": None if photo_vector is None else encode_vector(photo_vector)}


def lacking(model_version: str, photos: bool = False):
    """The condition on ``Product.id``: no vector of ``model_version`` (with ``photos``: or none with the photo's own
    embedding beside it, as rows stored before migration 0003 are)."""
    complete = select(Feature.product_id).where(Feature.model_version == model_version)
    if photos:
        complete = complete.where(Feature.photo_vector.is_not(None))
    return Product.id.not_in(complete)


def count_without_vector(model_version: str, photos: bool = False):
    """The query counting products that ``lacking`` selects."""
    return select(func.count(Product.id)).where(lacking(model_version, photos))


def _check_registry(session: Session, versions: set[str], registered: set[str]) -> None:
    """A model registered meanwhile could be activated while these products lack its vectors; vectors of one pruned
    meanwhile would stay for a version nothing lists."""
    now = _registry_now(session)
    added, pruned = sorted(now - versions), sorted((registered & versions) - now)
    if added or pruned:
        raise RegistryChanged(added, pruned)


def _registry_now(session: Session) -> set[str]:
    """The registered versions, by a locking read taken after the writer's categories are locked (as a rename does)
    and after its first write. On MySQL it reads the latest rows, not the transaction's snapshot, and holds them
    shared, so writers run side by side while a prune or a registration either committed before (and is seen here)
    or waits for the writer (and a prune then deletes its vectors too); on SQLite the writer holds the write lock."""
    return set(session.scalars(select(ModelVersion.version).with_for_update(read=True)))


def _metadata(stored: dict | None) -> dict[str, str]:
    """A product's metadata, text only: the loader of before 2026-12-08 stored a short CSV row's missing cells as
    null, which the API's answers (strings) would refuse; they are left out, as the loader leaves them out now."""
    return {key: str(value) for key, value in (stored or {}).items() if value is not None}


def former_names(conn: Connection) -> dict[str, list[str]]:
    """Each name a category holding products had before a rename, with the names of the categories that had it, as
    they are now (an emptied category's former names name nothing)."""
    renamed: dict[str, list[str]] = {}
    holding = select(Product.id).where(Product.category_id == Category.id).exists()
    for row in conn.execute(select(Category.name, Category.former_names).where(holding).with_for_update()):
        for former in row.former_names or []:
            renamed.setdefault(former, []).append(row.name)
    return renamed


def renames(conn: Connection, names: Iterable[str]) -> dict[str, str]:
    """Of ``names``, each that no category has now and exactly one category had before a rename, with that
    category's name now."""
    current = set(conn.scalars(select(Category.name).with_for_update()))
    formerly = former_names(conn)
    return {name: formerly[name][0] for name in names if name not in current and len(formerly.get(name, [])) == 1}


def current_names(conn: Connection, names: Sequence[str]) -> list[str]:
    """Category names as the store calls those categories now: a name no category has, that exactly one category
    had before a rename, is that category's name now (a model trained before the rename, registered after it); a
    name kept as given where mapping it would name one category twice.

    Every category row is written to itself first, as ``lock_models`` does the models': a rename committed before is
    seen, and one that starts meanwhile waits for ``conn``'s transaction (the registration), then renames in it too.
    """
    conn.execute(update(Category).values(revision=Category.revision))
    renamed = renames(conn, names)
    mapped = [renamed.get(name, name) for name in names]
    taken = Counter(mapped)
    return [after if taken[after] == 1 else before for before, after in zip(names, mapped)]


def lock_models(conn: Connection) -> dict[str, bool]:
    """Every registered version and whether it is active, held for the rest of ``conn``'s transaction.

    Each row is written to itself first: that locks them all on MySQL and takes the database's write lock on SQLite
    (which ignores FOR UPDATE). So activations and prunes run one after the other, never interleaved: a prune
    cannot read one version as active while another is being activated, and delete that one.
    """
    conn.execute(update(ModelVersion).values(active=ModelVersion.active))
    rows = conn.execute(select(ModelVersion.version, ModelVersion.active).with_for_update())  # latest, not a snapshot
    return {row.version: row.active for row in rows}


def _deadlocked(error: DBAPIError) -> bool:
    """Whether the server rolled the transaction back to end a deadlock (SQLSTATE 40001: MySQL's 1213), which it
    asks the client to run again."""
    return getattr(error.orig, "sqlstate", None) == "40001" or getattr(error.orig, "errno", None) == 1213


def _some(values: Sequence, shown: int = 5) -> str:
    """A few values for a message: '3, 7, 9 and 12 more'."""
    head = ", ".join(str(v) for v in values[:shown])
    return head + (f" and {len(values) - shown} more" if len(values) > shown else "")

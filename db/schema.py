"""The tables, as SQLAlchemy models. Alembic migrations create them; a test keeps both in step.

Vectors live apart from images so that a new model re-embeds without touching images, and a search
reads vectors without ever reading image bytes.
"""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# MySQL's plain BLOB stops at 64 KiB: product photos need LONGBLOB there.
ImageBlob = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
VectorBlob = LargeBinary().with_variant(mysql.BLOB(), "mysql", "mariadb")


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


# The largest id a query can carry: the drivers bind signed 64-bit integers, and a larger number names no row.
LARGEST_ID = 2**63 - 1

# InnoDB for transactions and foreign keys; utf8mb4 so any product name or story can be stored.
MYSQL_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


class Category(Base):
    __tablename__ = "categories"
    __table_args__ = (MYSQL_OPTIONS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Compared as written on every backend: on MySQL and MariaDB a binary NO PAD collation (migration 0004; its name
    # differs between the two servers).
    name: Mapped[str] = mapped_column(String(255), unique=True)
    # Bumped in the same transaction as any change to the category's products or vectors, so every
    # serving process can tell with one cheap query whether its cached matrix is stale. A new or renamed
    # category starts above every revision there is, so a name never comes back with a revision a process
    # may still hold cached for it.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    # The names it had before renames, oldest first (migration 0006): a model registered later that predicts one
    # of them is pointed at this category (db.store.current_names).
    former_names: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)

    products: Mapped[list[Product]] = relationship(back_populates="category")


class Product(Base):
    __tablename__ = "products"
    # An id never names two products, even after the newest were deleted (migration 0005; MySQL never reuses one).
    __table_args__ = (Index("ix_products_category_id", "category_id"), {**MYSQL_OPTIONS, "sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    external_id: Mapped[str] = mapped_column(String(255))  # compared as written, as Category.name
    metadata_: Mapped[dict] = mapped_column("metadata", JSON, default=dict)  # "metadata" is the base class's MetaData
    image: Mapped[bytes] = mapped_column(ImageBlob, deferred=True)
    image_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    content_type: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_utcnow)

    category: Mapped[Category] = relationship(back_populates="products")


class Feature(Base):
    __tablename__ = "features"
    __table_args__ = (
        UniqueConstraint("product_id", "model_version", name="uq_features_product_model"),
        Index("ix_features_model_version", "model_version"),
        MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    model_version: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(VectorBlob)  # little-endian float32: what searches rank by
    # The photo's own embedding, which the neighbours' vote reads (search.voting); NULL in rows stored before it
    # was (migration 0003): the vote reads their vector until 'lookalike reembed' fills it.
    photo_vector: Mapped[bytes | None] = mapped_column(VectorBlob, nullable=True)


class ModelVersion(Base):
    """The model registry: every trained model whose vectors the store keeps, and the one being served.

    ``categories`` are the network's outputs in order, as catalogue category names: renaming a category
    renames it here too, so a model keeps pointing its predictions at the right products.
    """

    __tablename__ = "models"
    __table_args__ = (MYSQL_OPTIONS,)

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    backbone: Mapped[str] = mapped_column(String(64))
    categories: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_utcnow)
    # At most one row is active: activation sets every row's flag in one UPDATE.
    active: Mapped[bool] = mapped_column(Boolean, default=False)

"""Alembic owns the schema: it migrates up and down, and matches the SQLAlchemy models exactly."""
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from db.migrate import downgrade, head_revision, upgrade
from db.schema import Base

TABLES = {"categories", "products", "features"}


def _tables(url):
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_creates_everything_and_downgrade_removes_it(store_url):
    assert _tables(store_url) == TABLES
    downgrade(store_url, "base")
    assert _tables(store_url) == set()
    upgrade(store_url)
    assert _tables(store_url) == TABLES


def test_models_and_migrations_do_not_differ(store_url):
    engine = create_engine(store_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert context.get_current_revision() == head_revision()
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()

"""Alembic owns the schema: it migrates up and down, and matches the SQLAlchemy models exactly."""
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from db.migrate import downgrade, head_revision, upgrade
from db.schema import Base

TABLES = {"categories", "products", "features", "models"}


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


def test_the_registry_migration_goes_down_and_up_keeping_the_catalogue(store_url):
    from db.registry import ModelRegistry
    from db.store import Store
    from tests.test_store import product

    store = Store.from_url(store_url)
    store.add_products([product("Bags", "a", [1, 0])])
    ModelRegistry(store).register("v1", "small_cnn", ["Bags"])
    downgrade(store_url, "0001")
    assert _tables(store_url) == TABLES - {"models"}
    assert store.category_counts() == {"Bags": 1}
    upgrade(store_url)
    assert ModelRegistry(store).versions() == [] and store.category_counts() == {"Bags": 1}
    store.engine.dispose()

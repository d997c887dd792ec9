"""Alembic owns the schema: it migrates up and down, and matches the SQLAlchemy models exactly."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

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


def test_a_product_id_is_never_handed_out_twice_also_in_a_store_from_before(store_url):
    """SQLite gave a deleted newest product's id to the next one (a cached image, a client's id then named another
    product); migration 0005 copies the table, vectors kept, into one that never does."""
    from db.store import Store
    from tests.test_store import product

    downgrade(store_url, "0004")
    store = Store.from_url(store_url)
    store.add_products([product("Bags", name, [1, 0]) for name in "abc"])
    upgrade(store_url)
    found = store.category_vectors("Bags", "v1")
    assert len(found.ids) == 3  # every vector came through the copy
    newest = int(found.ids.max())
    store.delete_products([newest])
    store.add_products([product("Bags", "d", [0, 1])])
    assert max(p.id for p in store.list_products("Bags", 0, 10)) > newest
    store.engine.dispose()


@pytest.mark.mysql
def test_names_take_a_binary_no_pad_collation_on_mysql_and_give_it_back(mysql_url):
    def columns():
        engine = create_engine(mysql_url)
        with engine.connect() as conn:
            found = {(row.TABLE_NAME, row.COLUMN_NAME): (row.COLLATION_NAME, row.IS_NULLABLE)
                     for row in conn.execute(text(
                         "SELECT TABLE_NAME, COLUMN_NAME, COLLATION_NAME, IS_NULLABLE FROM information_schema.COLUMNS "
                         "WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_NAME IN ('name', 'external_id')"))}
            tables = set(conn.scalars(text("SELECT TABLE_COLLATION FROM information_schema.TABLES "
                                           "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'categories'")))
        unique = {index["name"] for index in inspect(engine).get_indexes("categories") if index["unique"]} | {
            constraint["name"] for constraint in inspect(engine).get_unique_constraints("categories")}
        engine.dispose()
        return found, bool(unique), tables

    upgrade(mysql_url)
    found, unique, _ = columns()
    assert {collation for collation, _ in found.values()} <= {"utf8mb4_nopad_bin", "utf8mb4_0900_bin"}
    assert len(found) == 2 and {nullable for _, nullable in found.values()} == {"NO"} and unique
    downgrade(mysql_url, "0003")
    found, unique, table_default = columns()
    assert {collation for collation, _ in found.values()} == table_default  # as the tables were made
    assert {nullable for _, nullable in found.values()} == {"NO"} and unique

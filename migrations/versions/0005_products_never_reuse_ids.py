"""products.id is never given twice on SQLite (AUTOINCREMENT)

SQLite gives a new row the largest id stored + 1, so deleting the newest products handed their ids to the next ones
ingested: an API client's product id, a reviewer page's link and a browser's cached image (kept a week under its
id) then named another product. MySQL and MariaDB never hand out an AUTO_INCREMENT value twice, so only SQLite
changes: the table is copied into one declared AUTOINCREMENT, whose counter starts at the largest id stored
(migrations/env.py runs SQLite's migrations with foreign keys off, so dropping the old table deletes no vector). The
copy needs as much free disk as the products table, images included, takes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _autoincrement(on: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("migration 0005 copies the products table and drops the old one, which with SQLite's "
                           "foreign keys on would delete every vector: run it through 'lookalike db upgrade'")
    with op.batch_alter_table("products", recreate="always", table_kwargs={"sqlite_autoincrement": on}):
        pass
    broken = bind.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        raise RuntimeError(f"after the products table was copied, {len(broken)} rows point at rows that are not "
                           "there (PRAGMA foreign_key_check)")


def upgrade() -> None:
    _autoincrement(True)


def downgrade() -> None:
    _autoincrement(False)

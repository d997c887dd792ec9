"""products.id is never given twice on SQLite (AUTOINCREMENT)

SQLite gives a new row the largest id stored + 1, so deleting the newest products handed their ids to the next ones
ingested: an API client's product id, a reviewer page's link and a browser's cached image (kept a week under its
id) then named another product. MySQL and MariaDB never hand out an AUTO_INCREMENT value twice, so only SQLite
changes: the table is copied into one declared AUTOINCREMENT, whose counter starts at the largest id stored
(migrations/env.py runs SQLite's migrations with foreign keys off, so dropping the old table deletes no vector).

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
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("products", recreate="always", table_kwargs={"sqlite_autoincrement": on}):
            pass


def upgrade() -> None:
    _autoincrement(True)


def downgrade() -> None:
    _autoincrement(False)

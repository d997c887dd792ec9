"""categories.name and products.external_id compare as written on MySQL and MariaDB (a binary NO PAD collation)

The server's default collation (utf8mb4_general_ci, utf8mb4_0900_ai_ci, …) ignores case and accents, and the PAD SPACE
ones trailing spaces: folders "Shoes" and "shoes" became one category (or failed its unique name), and a product id
"A1" answered for "a1". SQLite compares bytes already, so only MySQL and MariaDB change. The server may copy the
products table (images included) to change it, holding writes back meanwhile. Going down fails if names that differ
only so are stored by then.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = (("categories", "name"), ("products", "external_id"))


def _collate(collation: str | None) -> None:
    for table, column in COLUMNS:
        op.alter_column(table, column, type_=mysql.VARCHAR(255, collation=collation),
                        existing_type=sa.String(255), existing_nullable=False)


def upgrade() -> None:
    dialect = op.get_bind().dialect
    if dialect.name in ("mysql", "mariadb"):
        # utf8mb4_bin pads with spaces on both: "Bags" and "Bags " would still be one name.
        _collate("utf8mb4_nopad_bin" if dialect.is_mariadb else "utf8mb4_0900_bin")


def downgrade() -> None:
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        _collate(None)  # back to the table's default

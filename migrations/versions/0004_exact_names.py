"""categories.name and products.external_id compare as written on MySQL (utf8mb4_bin)

The server's default collation (utf8mb4_general_ci, utf8mb4_0900_ai_ci, …) ignores case and accents: folders "Shoes"
and "shoes" became one category (or failed its unique name), and a product id "A1" answered for "a1". SQLite compares
bytes already, so only MySQL and MariaDB change. Going down fails if names that differ only so are stored by then.

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
    if op.get_bind().dialect.name not in ("mysql", "mariadb"):
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, type_=mysql.VARCHAR(255, collation=collation),
                        existing_type=sa.String(255), existing_nullable=False)


def upgrade() -> None:
    _collate("utf8mb4_bin")


def downgrade() -> None:
    _collate(None)  # back to the table's default

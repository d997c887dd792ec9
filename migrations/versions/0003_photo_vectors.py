"""features.photo_vector: the catalogue photo's own embedding, which the neighbours' vote reads

A stored vector holds the photo's augmented views as well (model.gallery), which finds the exact product more often
but speaks less well for its category. Rows stored before this revision have none: the vote reads their vector, as
it did, until `lookalike reembed` gives them one (for a model whose vectors hold views).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("features", sa.Column(
        "photo_vector", sa.LargeBinary().with_variant(mysql.BLOB(), "mysql", "mariadb"), nullable=True))


def downgrade() -> None:
    op.drop_column("features", "photo_vector")

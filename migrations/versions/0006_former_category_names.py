"""categories.former_names: the names a category had before it was renamed

A model registered after a rename (one pruned and added back, or trained on folders still under the old name)
predicts the old name; the registry maps it to the category's name now, so the model keeps pointing at the
products it was trained on. NULL is no former name.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("categories", sa.Column("former_names", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("categories") as batch:  # SQLite drops a column only by copying the table
        batch.drop_column("former_names")

"""turns.model_response: the dialogue model's own reply when the page shows another one.

When a conversation cannot be edited (no photo, an uploaded photo on sample-only weights, no weights) the reply
shown is an honest one written by the server; the model still gets its own replies as history, because it tracks
badly on replies it was not trained on.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("turns", sa.Column("model_response", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.drop_column("model_response")

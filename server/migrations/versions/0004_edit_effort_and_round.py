"""edit_jobs.effort ("Try harder": 0 for a turn's first edit, 1, 2 for each push) and edit_jobs.round (the
critic's refinement round a running edit is in, for the page's progress).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("edit_jobs") as batch:
        batch.add_column(sa.Column("effort", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("round", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("edit_jobs") as batch:
        batch.drop_column("round")
        batch.drop_column("effort")

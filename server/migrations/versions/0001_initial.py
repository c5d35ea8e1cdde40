"""Initial schema: photos, conversations, turns, edit jobs.

Revision ID: 0001
Revises:
Create Date: 2025-11-23
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "photos",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("image_key", sa.String(80), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(120), nullable=False),
        sa.Column("inversion_key", sa.String(200), nullable=True),
        sa.Column("inversion_weights", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    # conversations.head_turn_id and turns.conversation_id refer to each other: SQLite accepts the forward
    # reference inline (and cannot add a constraint later); other databases get it after `turns` exists.
    head_fk = [sa.ForeignKeyConstraint(["head_turn_id"], ["turns.id"], name="fk_conversations_head_turn")]
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner_hash", sa.String(64), nullable=False),
        sa.Column("photo_id", sa.Integer(), sa.ForeignKey("photos.id"), nullable=True),
        sa.Column("head_turn_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        *(head_fk if sqlite else []),
    )
    op.create_index("ix_conversations_owner_hash", "conversations", ["owner_hash"])
    op.create_table(
        "turns",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), sa.ForeignKey("turns.id"), nullable=True),
        sa.Column("user_text", sa.Text(), nullable=False),
        sa.Column("belief_state", sa.JSON(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("image_key", sa.String(80), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("conversation_id", "index", name="uq_turns_conversation_index"),
    )
    op.create_index("ix_turns_conversation_id", "turns", ["conversation_id"])
    if not sqlite:
        op.create_foreign_key("fk_conversations_head_turn", "conversations", "turns", ["head_turn_id"], ["id"])
    op.create_table(
        "edit_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), nullable=False),
        sa.Column("turn_id", sa.Integer(), sa.ForeignKey("turns.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("preview_key", sa.String(80), nullable=True),
        sa.Column("image_key", sa.String(80), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("worker_id", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_edit_jobs_conversation_id", "edit_jobs", ["conversation_id"])
    op.create_index("ix_edit_jobs_turn_id", "edit_jobs", ["turn_id"])
    op.create_index("ix_edit_jobs_status", "edit_jobs", ["status"])


def downgrade() -> None:
    op.drop_table("edit_jobs")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_conversations_head_turn", "conversations", type_="foreignkey")
    op.drop_table("turns")
    op.drop_table("conversations")
    op.drop_table("photos")

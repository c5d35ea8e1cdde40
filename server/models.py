"""SQLAlchemy 2 tables: conversations, turns (a tree, for branching), photos, edit jobs; the database image
store's blobs and the shared rate-limit counters.

Times are naive UTC `datetime`s (SQLite has no time zones). The schema is created and upgraded only by the
Alembic migrations in `server/migrations/`; a test checks that they and these classes agree.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON, BigInteger, Boolean, DateTime, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED_STATUSES = ("done", "failed", "cancelled")


def utcnow() -> datetime:
    """Now, as a naive UTC datetime (the form every table stores)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_id() -> str:
    """A random 32-hex-digit identifier for conversations and jobs (not guessable, not sequential)."""
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    pass


class Photo(Base):
    """An uploaded or sample photo, stored re-encoded under the data dir, with its cached inversion."""

    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_key: Mapped[str] = mapped_column(String(80))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(120))  # "upload" or "sample:NAME"
    inversion_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    inversion_weights: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Conversation(Base):
    """One chat. `owner_hash` is the SHA-256 of the owner's cookie token; `head_turn_id` is the current turn."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_hash: Mapped[str] = mapped_column(String(64), index=True)
    photo_id: Mapped[int | None] = mapped_column(ForeignKey("photos.id"), nullable=True)
    head_turn_id: Mapped[int | None] = mapped_column(
        ForeignKey("turns.id", use_alter=True, name="fk_conversations_head_turn"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    photo: Mapped[Photo | None] = relationship(Photo)
    turns: Mapped[list["Turn"]] = relationship(
        back_populates="conversation", order_by="Turn.index", foreign_keys="Turn.conversation_id")


class Turn(Base):
    """A user utterance with the tracked state and the response; `parent_id` links the branch it continues.

    `response` is what the user sees. When the server replaces the dialogue model's reply (nothing can be edited
    in this conversation, see `server.chat.edit_blocker`), `model_response` keeps the model's own, which is what
    the model gets back as history.
    """

    __tablename__ = "turns"
    __table_args__ = (UniqueConstraint("conversation_id", "index", name="uq_turns_conversation_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("turns.id"), nullable=True)
    user_text: Mapped[str] = mapped_column(Text)
    belief_state: Mapped[dict[str, Any]] = mapped_column(JSON)
    response: Mapped[str] = mapped_column(Text)  # the reply the user sees
    model_response: Mapped[str | None] = mapped_column(Text, nullable=True)  # the model's, when `response` differs
    image_key: Mapped[str | None] = mapped_column(String(80), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="turns", foreign_keys=[conversation_id])
    jobs: Mapped[list["EditJob"]] = relationship(back_populates="turn", order_by="EditJob.created_at")


class EditJob(Base):
    """One edit of a turn's photo towards its belief state, run by a worker outside the request."""

    __tablename__ = "edit_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"), index=True)
    turn_id: Mapped[int] = mapped_column(ForeignKey("turns.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    preview_key: Mapped[str | None] = mapped_column(String(80), nullable=True)
    image_key: Mapped[str | None] = mapped_column(String(80), nullable=True)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    effort: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # "Try harder" pushes (0: first)
    round: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # critic's refinement round now
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    turn: Mapped[Turn] = relationship(back_populates="jobs")

    @property
    def progress(self) -> float:
        """Fraction done in [0, 1]."""
        if self.status == "done":
            return 1.0
        return min(1.0, self.step / self.total) if self.total else 0.0


class StoredBlob(Base):
    """An image or cached inversion in the database store (`I2EDIT_STORE=database`), keyed `<sha256>.<ext>`."""

    __tablename__ = "stored_blobs"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class RateLimitWindow(Base):
    """How many state-changing requests one client made in one fixed window of the rate limit (shared by every
    web process); `window_start` is in whole seconds since the epoch."""

    __tablename__ = "rate_limit_windows"

    client: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hits: Mapped[int] = mapped_column(Integer)

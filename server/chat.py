"""Conversations as the API sees them: create, add a turn (optionally branching), undo, look up.

Turns form a tree (`parent_id`); the conversation's `head` is the turn the next one continues, so undo moves
the head to its parent and "continue from here" starts a branch at any turn. Every turn re-edits the original
photo from the whole belief state (multi-turn mode), so a turn whose state some earlier turn already rendered
reuses that image, and a new turn supersedes (cancels) edits still pending for other turns.

Only one turn (or undo, or retry) at a time per conversation: a second concurrent request gets 409 at once (a lock
per conversation in this process; across server processes, a turn or undo moves the head only if it is still the
turn it started from, and the unique (conversation, index) key refuses a second turn's insert, also with 409).
An owner may have `max_queued_per_owner` edits pending in other conversations; a turn that would queue one more
gets 429 and is not stored.

When nothing in a conversation can be edited (`edit_blocker`: no photo, an uploaded photo on weights that edit only
their own sample faces, no weights at all), the reply the user sees says so and what to do, instead of the dialogue
model's reply (which announces an edited image); the model's own reply is kept as its history.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from PIL import Image
from sqlalchemy import Connection, Row, bindparam, exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from dialogue.ontology import BeliefState
from server import critique
from server.dialogue_process import DialogueProcessError
from server.errors import ApiError
from server.jobs import pending_edits_elsewhere
from server.models import Conversation, EditJob, Photo, Turn, new_id, utcnow
from server.runtime import Runtime, busy_error
from server.settings import MAX_TEXT_CHARS

log = logging.getLogger(__name__)


@dataclass
class ConversationView:
    """A conversation with everything the API returns about it, loaded and detached from the session."""

    conversation: Conversation
    turns: list[Turn]
    latest_job: dict[int, EditJob]  # turn id -> its newest job
    path: list[int]  # turn indices from the first turn to the head
    editing_available: bool
    editing_detail: str
    editing_blocker: str | None  # `EditBlocker.code`, or None when the photo can be edited
    image_verdicts: dict[str, dict]  # image key -> the critic's verdicts of the edit that made it


@dataclass(frozen=True)
class EditBlocker:
    """Why nothing in a conversation can be edited: a stable `code` for the page, a `detail` sentence for its
    banner (what and what to do) and a short `reply` that replaces the dialogue model's."""

    code: str  # "no_photo", "samples_only" or "no_weights"
    detail: str
    reply: str


@dataclass
class ConversationSummary:
    """One line of the owner's conversation list."""

    conversation: Conversation
    turn_count: int
    first_message: str | None
    last_message: str | None  # the head turn's text
    image_key: str | None  # the head's image (or its nearest rendered ancestor's), else the photo's


def not_found(what: str = "conversation") -> ApiError:
    return ApiError(404, "not_found", f"no such {what} (or it belongs to someone else)")


def edit_blocker(rt: Runtime, photo_source: str | None) -> EditBlocker | None:
    """Why a conversation with a photo from `photo_source` ("upload", "sample:NAME", None) cannot be edited, or
    None when it can."""
    if rt.can_edit(photo_source):
        return None
    if not rt.editing.available:
        return EditBlocker("no_weights", rt.editing.detail,
                           "Nothing was edited: this server runs without editing weights (dialogue-only mode). "
                           "It keeps track of your requirements.")
    samples = "a sample face" if rt.sample_keys else None
    if photo_source is None:
        start_with = " or ".join(w for w in ("a photo" if rt.editing.real_photos else None, samples) if w)
        return EditBlocker(
            "no_photo",
            f"This conversation has no photo, so nothing is edited. To see edits, start a new conversation with "
            f"{start_with}.",
            f"Nothing was edited: this conversation has no photo. To see edits, start a new conversation with "
            f"{start_with}.")
    what_to_do = (" To see edits, start a new conversation with a sample face." if samples else "")
    note = rt.editing.real_photo_note or "These weights edit only their own sample faces, not uploaded photos."
    return EditBlocker(
        "samples_only", f"{note} Your photo is kept and you can chat about it, but it is not edited.{what_to_do}",
        f"Nothing was edited: the weights on this server edit only their own sample faces, not uploaded "
        f"photos.{what_to_do}")


def honest_reply(state: BeliefState, blocker: EditBlocker) -> str:
    """The reply shown instead of the model's when nothing can be edited: the requirements, then why not."""
    wanted = ", ".join(state.values)
    so_far = f"Your requirements so far: {wanted}." if wanted else "No requirements yet."
    return f"{so_far} {blocker.reply}"


def validate_text(text: object) -> str:
    """The user's text, or a 400/413 `ApiError` saying what is wrong with it."""
    if not isinstance(text, str):
        raise ApiError(400, "bad_request", 'send JSON {"text": "..."} with the text as a string')
    if len(text) > MAX_TEXT_CHARS:
        raise ApiError(413, "text_too_long", f"the text has {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    if not text.strip():
        raise ApiError(400, "empty_text", "the text is empty: write what to change in the photo")
    return text.strip()


# --- creating -------------------------------------------------------------------------------------

def create_conversation(rt: Runtime, owner_hash: str, photo: Image.Image | None = None,
                        sample: str | None = None) -> str:
    """A new conversation owned by `owner_hash`, with an uploaded photo, a sample, or neither; returns its id."""
    photo_row = None
    if sample is not None:
        key = rt.sample_keys.get(sample)
        if key is None:
            known = ", ".join(sorted(rt.sample_keys)) or "none on this server"
            raise ApiError(400, "unknown_sample", f"there is no sample photo {sample!r}; samples: {known}")
        width, height = rt.store.open(key).size
        photo_row = Photo(image_key=key, width=width, height=height, source=f"sample:{sample}")
    elif photo is not None:
        key = rt.store.put(photo)
        photo_row = Photo(image_key=key, width=photo.width, height=photo.height, source="upload")
    with rt.db.write() as session:
        conversation = Conversation(id=new_id(), owner_hash=owner_hash, photo=photo_row)
        session.add(conversation)
        return conversation.id


# --- turns ----------------------------------------------------------------------------------------

def post_turn(rt: Runtime, conversation_id: str, owner_hash: str | None, text: object,
              parent_index: object = None) -> tuple[Turn, int | None, EditJob | None]:
    """Track and answer `text` after the head (or after turn `parent_index`, branching); maybe queue an edit.

    Returns the new turn, its parent's index (None for a first turn) and the edit job it waits for (or None).
    """
    with rt.turn_locks.hold(conversation_id):
        with rt.db.connect() as conn:
            head_turn_id, photo_source, pending, turns = _turn_context(conn, conversation_id, owner_hash)
            text = validate_text(text)
            if parent_index is not None and (isinstance(parent_index, bool) or not isinstance(parent_index, int)):
                raise ApiError(400, "bad_request", "parent_turn must be the index (an integer) of an earlier turn")
            if rt.dialogue is None:
                raise ApiError(503, "dialogue_unavailable", rt.dialogue_status.detail)
            by_index = {t.index: t for t in turns}
            by_id = {t.id: t for t in turns}
            if parent_index is None:
                parent = by_id.get(head_turn_id) if head_turn_id else None
            elif parent_index in by_index:
                parent = by_index[parent_index]
            else:
                raise ApiError(400, "unknown_parent_turn", f"this conversation has no turn {parent_index}")
            history = [(t.user_text, t.model_response or t.response) for t in _lineage(parent, by_id)]
            index = max(by_index, default=-1) + 1
        try:
            # the tracker updates the state the user sees: the parent turn's (an update model reads it)
            state, response = rt.dialogue.step(history, text, parent.belief_state if parent else {})
        except ValueError as exc:
            raise ApiError(400, "bad_text", str(exc)) from None
        except DialogueProcessError as exc:
            raise ApiError(503, "dialogue_unavailable", f"{exc}. Send the turn again.") from None
        blocker = edit_blocker(rt, photo_source)
        shown, model_response = (honest_reply(state, blocker), response) if blocker else (response, None)
        try:
            with rt.db.write() as session:
                turn = Turn(conversation_id=conversation_id, index=index, parent_id=parent.id if parent else None,
                            user_text=text, belief_state=state.to_dict(), response=shown,
                            model_response=model_response, created_at=utcnow())
                session.add(turn)
                session.flush()
                _move_head(session, conversation_id, turn.id, expected=head_turn_id)
                job = _settle_image(rt, session, turn, photo_source, supersede=pending)
        except IntegrityError:  # another server process added a turn with this index meanwhile
            raise busy_error() from None
    if job is not None:
        rt.jobs_waiting.set()
    return turn, (parent.index if parent else None), job


def undo(rt: Runtime, conversation_id: str, owner_hash: str | None) -> EditJob | None:
    """Move the head back to its parent turn (the turn itself stays, for the gallery and for branching)."""
    with rt.turn_locks.hold(conversation_id), rt.db.write() as session:
        conversation = _owned(session, conversation_id, owner_hash)
        if conversation.head_turn_id is None:
            raise ApiError(409, "nothing_to_undo", "there is no turn to undo")
        head = session.get(Turn, conversation.head_turn_id)
        _move_head(session, conversation_id, head.parent_id, expected=head.id)
        job = None
        if head.parent_id is not None:
            photo_source = conversation.photo.source if conversation.photo else None
            job = _settle_image(rt, session, session.get(Turn, head.parent_id), photo_source)
        else:
            _supersede(session, conversation_id, keep_turn_id=None)
    if job is not None:
        rt.jobs_waiting.set()
    return job


_MOVE_HEAD = (update(Conversation).where(Conversation.id == bindparam("conversation_id"),
                                         Conversation.head_turn_id.is_not_distinct_from(bindparam("expected")))
              .values(head_turn_id=bindparam("turn_id"), updated_at=bindparam("now")))


def _move_head(session: Session, conversation_id: str, turn_id: int | None, expected: int | None) -> None:
    """Move the head from `expected` to `turn_id`; 409 when another server process moved it meanwhile."""
    moved = session.connection().execute(_MOVE_HEAD, {"conversation_id": conversation_id, "turn_id": turn_id,
                                                      "expected": expected, "now": utcnow()}).rowcount
    if not moved:
        raise busy_error()


def _settle_image(rt: Runtime, session: Session, turn: Turn, photo_source: str | None,
                  supersede: bool = True) -> EditJob | None:
    """Give `turn` an image: reuse one rendered for the same state, or queue an edit. With `supersede`
    (False when the caller knows no edit is pending), cancels the other turns' pending edits.

    Returns the job the turn waits for (new or still pending), or None.
    """
    if supersede:
        _supersede(session, turn.conversation_id, keep_turn_id=turn.id)
    if turn.image_key is not None or not turn.belief_state or not rt.can_edit(photo_source):
        return None
    state = BeliefState.from_dict(turn.belief_state)
    rendered = session.scalars(select(Turn).where(Turn.conversation_id == turn.conversation_id,
                                                  Turn.image_key.is_not(None))).all()
    for other in rendered:
        if BeliefState.from_dict(other.belief_state) == state:
            turn.image_key = other.image_key
            return None
    pending = session.scalar(select(EditJob).where(EditJob.turn_id == turn.id,
                                                   EditJob.status.in_(("queued", "running"))))
    if pending is not None:
        pending.cancel_requested = False
        return pending
    cap = rt.settings.max_queued_per_owner
    if pending_edits_elsewhere(session, turn.conversation_id) >= cap:
        raise ApiError(429, "too_many_edits",
                       f"you have {cap} edits waiting or running in your other conversations, the most one person "
                       "may have; wait until one is done (or cancel one), then send this turn again")
    job = EditJob(id=new_id(), conversation_id=turn.conversation_id, turn_id=turn.id, status="queued",
                  step=0, total=0, attempts=0, cancel_requested=False, created_at=utcnow())
    session.add(job)
    session.flush()
    return job


def _supersede(session: Session, conversation_id: str, keep_turn_id: int | None) -> None:
    """Cancel queued edits of the conversation's other turns and ask running ones to stop."""
    others = [EditJob.conversation_id == conversation_id]
    if keep_turn_id is not None:
        others.append(EditJob.turn_id != keep_turn_id)
    now = utcnow()
    session.execute(update(EditJob).where(*others, EditJob.status == "queued")
                    .values(status="cancelled", error="superseded by a newer turn", finished_at=now)
                    .execution_options(synchronize_session=False))
    session.execute(update(EditJob).where(*others, EditJob.status == "running")
                    .values(cancel_requested=True).execution_options(synchronize_session=False))


# --- cancel and retry -----------------------------------------------------------------------------

CANCELLED_BY_OWNER = "cancelled at your request"


def cancel_job(rt: Runtime, job_id: str, owner_hash: str | None) -> tuple[EditJob, int]:
    """Cancel a queued edit at once, or ask a running one to stop (its worker ends it within a moment).

    Returns the job as it is now and its turn's index; 409 when the job has already ended.
    """
    with rt.db.write() as session:
        job, turn_index = _owned_job(session, job_id, owner_hash)
        now = utcnow()
        stopped = session.execute(
            update(EditJob).where(EditJob.id == job_id, EditJob.status == "queued")
            .values(status="cancelled", error=CANCELLED_BY_OWNER, finished_at=now)
            .execution_options(synchronize_session=False)).rowcount
        if not stopped:
            stopped = session.execute(
                update(EditJob).where(EditJob.id == job_id, EditJob.status == "running")
                .values(cancel_requested=True, error=CANCELLED_BY_OWNER)
                .execution_options(synchronize_session=False)).rowcount
        session.refresh(job)
        if not stopped:
            raise ApiError(409, "job_finished", f"the edit has already ended ({job.status}); there is nothing to "
                                                "cancel")
        return job, turn_index


def retry_job(rt: Runtime, job_id: str, owner_hash: str | None) -> tuple[EditJob, int, bool]:
    """Queue the edit of a failed or cancelled job's turn again (cancelling the conversation's other pending edits).

    Returns (the job the turn now waits for, the turn's index, whether that job is new); 409 when the job is still
    pending or done, or when the turn needs no edit (it has its image, asks for nothing, or cannot be edited).
    """
    with rt.db.read() as session:
        conversation_id = _owned_job(session, job_id, owner_hash)[0].conversation_id
    with rt.turn_locks.hold(conversation_id), rt.db.write() as session:
        job, turn_index = _owned_job(session, job_id, owner_hash)
        if job.status in ("queued", "running"):
            raise ApiError(409, "job_pending", "the edit is still pending; wait for it, or cancel it first")
        if job.status == "done":
            raise ApiError(409, "job_done", "the edit is done; there is nothing to retry")
        turn = session.get(Turn, job.turn_id)
        conversation = _owned(session, conversation_id, owner_hash)
        source = conversation.photo.source if conversation.photo else None
        newer = session.scalar(select(EditJob).where(EditJob.turn_id == turn.id,
                                                     EditJob.status.in_(("queued", "running"))))
        again = _settle_image(rt, session, turn, source)
        if again is None:  # (an image rendered meanwhile for the same requirements is kept: the commit below)
            blocker = edit_blocker(rt, source)
            reason = (blocker.detail if blocker else "the turn already has its image" if turn.image_key
                      else "the turn asks for no change to the photo")
    if again is None:
        raise ApiError(409, "nothing_to_retry", f"nothing to edit again: {reason}")
    rt.jobs_waiting.set()
    return again, turn_index, newer is None


def try_harder(rt: Runtime, job_id: str, owner_hash: str | None) -> tuple[EditJob, int]:
    """Queue the done edit `job_id` again with one more step of effort (`server.critique`): more optimiser steps
    and refinement rounds. Returns (the new job, the turn's index); 409 when the edit is not done, everything
    requested came out, or the effort is spent. The turn keeps its image until the new edit is done."""
    with rt.db.read() as session:
        conversation_id = _owned_job(session, job_id, owner_hash)[0].conversation_id
    with rt.turn_locks.hold(conversation_id), rt.db.write() as session:
        job, turn_index = _owned_job(session, job_id, owner_hash)
        if job.status != "done":
            raise ApiError(409, "job_not_done", "only a finished edit can be pushed harder; wait for it to finish")
        if not critique.shortfalls(job.metrics):
            raise ApiError(409, "nothing_short", "every requested value came out (or the weights cannot judge "
                                                 "them); there is nothing to push harder")
        if job.effort >= critique.MAX_EFFORT:
            raise ApiError(409, "effort_spent", f"this edit was already pushed {critique.MAX_EFFORT} times; try "
                                                "saying the request another way")
        _supersede(session, conversation_id, keep_turn_id=job.turn_id)
        harder = EditJob(id=new_id(), conversation_id=conversation_id, turn_id=job.turn_id, status="queued",
                         step=0, total=0, attempts=0, cancel_requested=False, effort=job.effort + 1,
                         created_at=utcnow())
        session.add(harder)
        session.flush()
    rt.jobs_waiting.set()
    return harder, turn_index


# --- looking up -----------------------------------------------------------------------------------

def list_conversations(rt: Runtime, owner_hash: str | None, limit: int) -> list[ConversationSummary]:
    """The owner's conversations, the most recently changed first, at most `limit`."""
    if owner_hash is None:
        return []
    with rt.db.read() as session:
        conversations = session.scalars(
            select(Conversation).where(Conversation.owner_hash == owner_hash)
            .order_by(Conversation.updated_at.desc(), Conversation.created_at.desc()).limit(limit)
            .options(selectinload(Conversation.photo))).all()
        ids = [c.id for c in conversations]
        turns: dict[str, dict[int, Row]] = {cid: {} for cid in ids}
        if ids:
            rows = session.execute(select(Turn.conversation_id, Turn.id, Turn.index, Turn.parent_id,
                                          Turn.user_text, Turn.image_key)
                                   .where(Turn.conversation_id.in_(ids))).all()
            for row in rows:
                turns[row.conversation_id][row.id] = row
        out = []
        for conversation in conversations:
            by_id = turns[conversation.id]
            first = min(by_id.values(), key=lambda t: t.index, default=None)
            path = _lineage(by_id.get(conversation.head_turn_id), by_id)
            rendered = [t.image_key for t in path if t.image_key]
            photo_key = conversation.photo.image_key if conversation.photo else None
            out.append(ConversationSummary(conversation, len(by_id), first.user_text if first else None,
                                           path[-1].user_text if path else None,
                                           rendered[-1] if rendered else photo_key))
        return out


def view_conversation(rt: Runtime, conversation_id: str, owner_hash: str | None) -> ConversationView:
    with rt.db.read() as session:
        conversation = _owned(session, conversation_id, owner_hash, load_turns=True)
        jobs = session.scalars(select(EditJob).where(EditJob.conversation_id == conversation_id)
                               .order_by(EditJob.created_at)).all()
        latest = {job.turn_id: job for job in jobs}
        verdicts = {job.image_key: job.metrics["verdicts"] for job in jobs
                    if job.status == "done" and job.image_key and (job.metrics or {}).get("verdicts")}
        by_id = {t.id: t for t in conversation.turns}
        head = by_id.get(conversation.head_turn_id) if conversation.head_turn_id else None
        path = [t.index for t in _lineage(head, by_id)]
        blocker = edit_blocker(rt, conversation.photo.source if conversation.photo else None)
        return ConversationView(conversation, list(conversation.turns), latest, path, blocker is None,
                                blocker.detail if blocker else rt.editing.detail,
                                blocker.code if blocker else None, verdicts)


def view_job(rt: Runtime, job_id: str, owner_hash: str | None) -> tuple[EditJob, int]:
    """The job and its turn's index; 404 unless the job's conversation belongs to `owner_hash`."""
    with rt.db.read() as session:
        return _owned_job(session, job_id, owner_hash)


def image_visible(rt: Runtime, key: str, owner_hash: str | None) -> bool:
    """Whether `key` is a sample or an image of one of `owner_hash`'s conversations."""
    if key in rt.sample_keys.values():
        return True
    if owner_hash is None:
        return False
    owned = Conversation.owner_hash == owner_hash
    queries = (
        select(Conversation.id).join(Photo, Photo.id == Conversation.photo_id).where(owned, Photo.image_key == key),
        select(Turn.id).join(Conversation, Conversation.id == Turn.conversation_id)
        .where(owned, Turn.image_key == key),
        select(EditJob.id).join(Conversation, Conversation.id == EditJob.conversation_id)
        .where(owned, or_(EditJob.image_key == key, EditJob.preview_key == key)),
    )
    with rt.db.read() as session:
        return any(session.scalar(select(exists(q))) for q in queries)


# --- helpers --------------------------------------------------------------------------------------

def _owned(session: Session, conversation_id: str, owner_hash: str | None,
           load_turns: bool = False) -> Conversation:
    query = select(Conversation).where(Conversation.id == conversation_id,
                                       Conversation.owner_hash == (owner_hash or "-"))
    query = query.options(selectinload(Conversation.photo))
    if load_turns:
        query = query.options(selectinload(Conversation.turns))
    conversation = session.scalar(query)
    if conversation is None:
        raise not_found()
    return conversation


def _owned_job(session: Session, job_id: str, owner_hash: str | None) -> tuple[EditJob, int]:
    """The job and its turn's index; 404 unless the job's conversation belongs to `owner_hash`."""
    row = session.execute(
        select(EditJob, Turn.index).join(Turn, Turn.id == EditJob.turn_id)
        .join(Conversation, Conversation.id == EditJob.conversation_id)
        .where(EditJob.id == job_id, Conversation.owner_hash == (owner_hash or "-"))
    ).first()
    if row is None:
        raise not_found("job")
    return row[0], row[1]


# What a new turn needs to know, built once (statement construction costs more than SQLite's lookup).
_TURN_CONTEXT = (
    select(Conversation.head_turn_id, Photo.source,
           exists().where(EditJob.conversation_id == Conversation.id, EditJob.status.in_(("queued", "running"))))
    .outerjoin(Photo, Photo.id == Conversation.photo_id)
    .where(Conversation.id == bindparam("conversation_id"), Conversation.owner_hash == bindparam("owner_hash"))
)
_TURN_ROWS = (select(Turn.id, Turn.index, Turn.parent_id, Turn.user_text, Turn.response, Turn.model_response,
                     Turn.belief_state)
              .where(Turn.conversation_id == bindparam("conversation_id")))


def _turn_context(conn: Connection, conversation_id: str, owner_hash: str | None
                  ) -> tuple[int | None, str | None, bool, list[Row]]:
    """(head turn id, photo source, whether an edit is queued or running, the turns as rows with `id`, `index`,
    `parent_id`, `user_text`, `response`, `model_response`, `belief_state`); 404 unless the conversation belongs to
    `owner_hash`."""
    row = conn.execute(_TURN_CONTEXT, {"conversation_id": conversation_id, "owner_hash": owner_hash or "-"}).first()
    if row is None:
        raise not_found()
    turns = conn.execute(_TURN_ROWS, {"conversation_id": conversation_id}).all()
    return row[0], row[1], bool(row[2]), list(turns)


def _lineage(turn: Turn | Row | None, by_id: dict[int, Turn | Row]) -> list[Turn | Row]:
    """`turn` and its ancestors, oldest first (turns or rows: anything with `id` and `parent_id`)."""
    out = []
    while turn is not None:
        out.append(turn)
        turn = by_id.get(turn.parent_id) if turn.parent_id is not None else None
    return out[::-1]

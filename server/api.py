"""The JSON API blueprint (`/api/...`), documented in `server/static/openapi.json`."""
from __future__ import annotations

import io
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request, send_file, url_for

from server import chat, critique
from server.errors import ApiError
from server.images import ImageRejected, decode_upload, valid_key
from server.jobs import queue_position
from server.models import EditJob, Turn
from server.runtime import Runtime
from server.security import (
    OWNER_COOKIE, OWNER_COOKIE_MAX_AGE, check_same_origin, client_address, hash_token, new_owner_token, owner_hash,
)
from server.settings import MAX_UPLOAD_BYTES

bp = Blueprint("api", __name__, url_prefix="/api")

OPENAPI_FILE = Path(__file__).parent / "static" / "openapi.json"


def runtime() -> Runtime:
    return current_app.extensions["i2edit"]


@bp.before_request
def _guard_state_changes() -> None:
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        check_same_origin(request)
        rt = runtime()
        rt.limiter.hit(client_address(request))


@bp.after_request
def _no_store(response: Response) -> Response:
    if request.endpoint != "api.image":
        response.headers["Cache-Control"] = "no-store"
    return response


# --- conversations --------------------------------------------------------------------------------

MAX_LIST = 200  # conversations one listing returns at most


@bp.get("/conversations")
def list_conversations():
    limit = request.args.get("limit", "50")
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIST:
        raise ApiError(400, "bad_request", f"limit must be a whole number from 1 to {MAX_LIST}")
    summaries = chat.list_conversations(runtime(), owner_hash(request), int(limit))
    return jsonify({"conversations": [_summary_json(s) for s in summaries]})


@bp.post("/conversations")
def create_conversation():
    rt = runtime()
    photo = sample = None
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("photo")
        if upload is not None and upload.filename != "":
            data = upload.stream.read(MAX_UPLOAD_BYTES + 1)
            try:
                photo = decode_upload(data)
            except ImageRejected as exc:
                raise ApiError(exc.status, "bad_photo" if exc.status == 400 else "photo_too_large", str(exc))
        elif request.form.get("sample"):
            sample = request.form["sample"]
    else:
        body = _json_body(allow_empty=True)
        sample = body.get("sample")
        if sample is not None and not isinstance(sample, str):
            raise ApiError(400, "bad_request", '"sample" must be the name of a sample photo')
    token = request.cookies.get(OWNER_COOKIE) or new_owner_token()
    conversation_id = chat.create_conversation(rt, hash_token(token), photo=photo, sample=sample)
    response = jsonify(_conversation_json(chat.view_conversation(rt, conversation_id, hash_token(token))))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_conversation", conversation_id=conversation_id)
    response.set_cookie(OWNER_COOKIE, token, max_age=OWNER_COOKIE_MAX_AGE, httponly=True, samesite="Lax",
                        secure=request.is_secure, path="/")
    return response


@bp.get("/conversations/<conversation_id>")
def get_conversation(conversation_id: str):
    return jsonify(_conversation_json(chat.view_conversation(runtime(), conversation_id, owner_hash(request))))


@bp.post("/conversations/<conversation_id>/turns")
def post_turn(conversation_id: str):
    body = _json_body()
    turn, parent_index, job = chat.post_turn(runtime(), conversation_id, owner_hash(request), body.get("text"),
                                             body.get("parent_turn"))
    return jsonify({"turn": _turn_json(turn, parent_index, job)}), 201


@bp.post("/conversations/<conversation_id>/undo")
def undo(conversation_id: str):
    rt = runtime()
    chat.undo(rt, conversation_id, owner_hash(request))
    return jsonify(_conversation_json(chat.view_conversation(rt, conversation_id, owner_hash(request))))


# --- jobs and images ------------------------------------------------------------------------------

@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    job, turn_index = chat.view_job(runtime(), job_id, owner_hash(request))
    return jsonify(_job_json(job, turn_index))


@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str):
    job, turn_index = chat.cancel_job(runtime(), job_id, owner_hash(request))
    return jsonify(_job_json(job, turn_index))


@bp.post("/jobs/<job_id>/retry")
def retry_job(job_id: str):
    job, turn_index, created = chat.retry_job(runtime(), job_id, owner_hash(request))
    return jsonify(_job_json(job, turn_index)), 201 if created else 200


@bp.post("/jobs/<job_id>/harder")
def try_harder(job_id: str):
    job, turn_index = chat.try_harder(runtime(), job_id, owner_hash(request))
    return jsonify(_job_json(job, turn_index)), 201


@bp.get("/images/<key>")
def image(key: str):
    rt = runtime()
    if not valid_key(key) or not chat.image_visible(rt, key, owner_hash(request)):
        raise chat.not_found("image")
    try:
        data = rt.store.get_bytes(key)
    except KeyError:
        raise chat.not_found("image") from None
    download = request.args.get("download") == "1"
    response = send_file(io.BytesIO(data), mimetype="image/png" if key.endswith(".png") else "image/jpeg",
                         as_attachment=download, download_name=f"i2edit-{key[:12]}.{key.rsplit('.', 1)[1]}",
                         max_age=3600, etag=key.split(".")[0])
    response.headers["Cache-Control"] = "private, max-age=3600, immutable"  # content-addressed: never changes
    return response


@bp.get("/openapi.json")
def openapi():
    return send_file(OPENAPI_FILE, mimetype="application/json", max_age=0)


# --- JSON shapes ----------------------------------------------------------------------------------

def _json_body(allow_empty: bool = False) -> dict:
    if allow_empty and not request.get_data(cache=True):
        return {}
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send a JSON body with Content-Type: application/json")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body is not a JSON object")
    return body


def _image_url(key: str | None) -> str | None:
    return url_for("api.image", key=key) if key else None


def _job_json(job: EditJob | None, turn_index: int | None = None) -> dict | None:
    if job is None:
        return None
    return {
        "id": job.id, "status": job.status, "progress": round(job.progress, 4), "step": job.step,
        "total": job.total, "preview_url": _image_url(job.preview_key), "image_url": _image_url(job.image_key),
        "error": job.error, "turn": turn_index, "metrics": job.metrics,
        "cancel_requested": bool(job.cancel_requested), "queue_position": _queue_position(job),
        "effort": job.effort or 0, "round": job.round or 0,
        "verdicts": (job.metrics or {}).get("verdicts"),
        "follow_up": critique.follow_up(job.status, job.metrics, job.effort or 0),
        "can_try_harder": critique.can_try_harder(job.status, job.metrics, job.effort or 0),
    }


def _queue_position(job: EditJob) -> int | None:
    if job.status != "queued":
        return None
    with runtime().db.read() as session:
        return queue_position(session, job)


def _turn_json(turn: Turn, parent_index: int | None, job: EditJob | None,
               image_verdicts: dict[str, dict] | None = None) -> dict:
    """A turn; `image_verdicts` (image key -> verdicts) gives `verdicts`, the critic's verdicts of the edit that
    made the turn's image, also when the turn reuses another turn's image for the same state."""
    return {
        "index": turn.index, "parent": parent_index, "user": turn.user_text, "belief_state": turn.belief_state,
        "response": turn.response, "image_url": _image_url(turn.image_key),
        "verdicts": (image_verdicts or {}).get(turn.image_key) if turn.image_key else None,
        "job": _job_json(job, turn.index), "created_at": turn.created_at.isoformat() + "Z",
    }


def _summary_json(summary: chat.ConversationSummary) -> dict:
    conversation = summary.conversation
    photo = conversation.photo
    return {
        "id": conversation.id,
        "created_at": conversation.created_at.isoformat() + "Z",
        "updated_at": conversation.updated_at.isoformat() + "Z",
        "photo_source": photo.source if photo else None,
        "turn_count": summary.turn_count,
        "first_message": summary.first_message,
        "last_message": summary.last_message,
        "image_url": _image_url(summary.image_key),
    }


def _conversation_json(view: chat.ConversationView) -> dict:
    conversation = view.conversation
    photo = conversation.photo
    index_of = {t.id: t.index for t in view.turns}
    return {
        "id": conversation.id,
        "created_at": conversation.created_at.isoformat() + "Z",
        "photo": None if photo is None else {
            "url": _image_url(photo.image_key), "width": photo.width, "height": photo.height,
            "source": photo.source,
        },
        "editing": {"available": view.editing_available, "detail": view.editing_detail,
                    "blocker": view.editing_blocker},
        "head": index_of.get(conversation.head_turn_id),
        "path": view.path,
        "turns": [_turn_json(t, index_of.get(t.parent_id), view.latest_job.get(t.id), view.image_verdicts)
                  for t in view.turns],
    }

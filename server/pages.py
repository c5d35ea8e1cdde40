"""The page blueprint: the chat page at `/`, configured by what this server can do."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, url_for

from server.runtime import Runtime
from server.settings import MAX_TEXT_CHARS, MAX_UPLOAD_BYTES

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    rt: Runtime = current_app.extensions["i2edit"]
    config = {
        "samples": [{"name": name, "url": url_for("api.image", key=key)} for name, key in rt.sample_keys.items()],
        "dialogue": {"available": rt.dialogue is not None, "detail": rt.dialogue_status.detail},
        "editing": {"available": rt.editing.available, "detail": rt.editing.detail,
                    "real_photos": rt.editing.real_photos, "real_photo_note": rt.editing.real_photo_note},
        "limits": {"text_chars": MAX_TEXT_CHARS, "upload_bytes": MAX_UPLOAD_BYTES},
    }
    return render_template("index.html", config=config)

"""The page blueprint: the chat page at `/`, configured by what this server can do."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, url_for

from server.runtime import Runtime
from server.settings import MAX_TEXT_CHARS, MAX_UPLOAD_BYTES

bp = Blueprint("pages", __name__)

# Offered as clickable examples under the message box: requests the shipped tracker reads right on a first turn,
# for values the demo weights draw in every multi-turn edit that asked for them (docs/demo_world.md, the judge's
# per-value figures). The browser test sends three of them.
EXAMPLE_REQUESTS = ("Give them wavy hair", "Add some lipstick", "Add a mustache", "Bigger lips, please",
                    "Make the eyebrows bushy")


@bp.get("/")
def index():
    rt: Runtime = current_app.extensions["i2edit"]
    config = {
        "samples": [{"name": name, "url": url_for("api.image", key=key)} for name, key in rt.sample_keys.items()],
        "dialogue": {"available": rt.dialogue is not None, "detail": rt.dialogue_status.detail},
        "editing": {"available": rt.editing.available, "detail": rt.editing.detail,
                    "real_photos": rt.editing.real_photos},
        "limits": {"text_chars": MAX_TEXT_CHARS, "upload_bytes": MAX_UPLOAD_BYTES},
        "examples": list(EXAMPLE_REQUESTS),
    }
    return render_template("index.html", config=config)

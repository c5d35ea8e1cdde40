"""`/healthz` and `/readyz` for load balancers and process supervisors.

- `GET /healthz`: 200 `{"status": "ok"}` while the process answers requests at all (liveness).
- `GET /readyz`: 200 when this process can serve the chat: started, the database answers, the dialogue model is
  loaded and no in-process edit worker has given up (e.g. its editor could not load); else 503. Both say why in
  `checks`: `{"ready": bool, "checks": {NAME: {"ok": bool, "detail": SENTENCE}}}`.
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from server.runtime import Runtime

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    response = jsonify({"status": "ok"})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/readyz")
def readyz():
    rt: Runtime = current_app.extensions["i2edit"]
    checks = {"started": _check(rt.started, "started" if rt.started else "not started yet")}
    try:
        rt.db.ping()
        checks["database"] = _check(True, f"{rt.db.engine.dialect.name} answers")
    except Exception as exc:  # any driver error: the database cannot serve this process now
        checks["database"] = _check(False, f"{rt.db.engine.dialect.name}: {type(exc).__name__}: {exc}")
    checks["dialogue"] = _check(rt.dialogue_status.available, rt.dialogue_status.detail)
    problems = [f"{w.worker_id}: {w.problem}" for w in rt.workers if w.problem]
    checks["edit_workers"] = _check(not problems, "; ".join(problems) if problems else
                                    f"{len(rt.workers)} in-process edit worker(s) running")
    ready = all(check["ok"] for check in checks.values())
    response = jsonify({"ready": ready, "checks": checks})
    response.status_code = 200 if ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response


def _check(ok: bool, detail: str) -> dict:
    return {"ok": bool(ok), "detail": detail}

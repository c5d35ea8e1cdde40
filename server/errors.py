"""Every error leaves the server as JSON `{"error": CODE, "detail": SENTENCE}` with its HTTP status.

`error` is a short stable code (`not_found`, `text_too_long`, ...); `detail` tells a person what went wrong and
what to do. Unexpected exceptions are logged with their traceback and answered with a 500 that shows none.
"""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 409: "conflict",
    413: "too_large", 415: "unsupported_media_type", 429: "rate_limited", 500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error answered as JSON with `status`; `headers` are added to the response (e.g. Retry-After)."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}


def error_response(status: int, error: str, detail: str, headers: dict[str, str] | None = None):
    response = jsonify({"error": error, "detail": detail})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.error, exc.detail, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        detail = exc.description or exc.name
        if status == 413:
            detail = "the request is too large; photos may be at most 10 MB"
        headers = {k: v for k, v in exc.get_headers() if k.lower() in ("allow", "retry-after")}
        return error_response(status, _CODES.get(status, exc.name.lower().replace(" ", "_")), detail, headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error",
                              "the server hit an unexpected error; it has been logged. Try again.")

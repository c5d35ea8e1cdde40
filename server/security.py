"""Owner tokens, cross-site request checks and the per-client rate limit.

- Owner token: a random 32-byte token in an HttpOnly, SameSite=Lax cookie, set when a client creates its first
  conversation; the database keeps only its SHA-256. A conversation, its jobs and its images are visible only
  with the matching cookie; anyone else gets 404 (not 403: existence is not revealed).
- Cross-site requests: a state-changing request (POST) is refused with 403 when the browser says it comes from
  another site (`Sec-Fetch-Site: cross-site`/`same-site`) or its `Origin` names another host. The SameSite
  cookie also keeps the owner token out of cross-site POSTs. Clients that are not browsers send neither header.
- Rate limit: a sliding window per client address (the socket peer, or `X-Forwarded-For` behind a trusted proxy)
  over state-changing requests, kept in memory per server process.
"""
from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from urllib.parse import urlsplit

from flask import Request

from server.errors import ApiError
from server.settings import RateLimit

OWNER_COOKIE = "i2edit_owner"
OWNER_COOKIE_MAX_AGE = 365 * 24 * 3600


def new_owner_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def owner_hash(request: Request) -> str | None:
    """SHA-256 of the request's owner cookie, or None without one."""
    token = request.cookies.get(OWNER_COOKIE)
    return hash_token(token) if token else None


def check_same_origin(request: Request) -> None:
    """Raise 403 for a state-changing request that a browser marks as coming from another site."""
    fetch_site = request.headers.get("Sec-Fetch-Site", "").lower()
    if fetch_site in ("cross-site", "same-site"):
        raise ApiError(403, "cross_site_request",
                       "this request came from another site; use the i2edit page on this server")
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        if urlsplit(origin).netloc.lower() != request.host.lower():
            raise ApiError(403, "cross_site_request",
                           f"requests from {origin} are not accepted; use the i2edit page on this server")
    elif origin == "null":
        raise ApiError(403, "cross_site_request", "requests from an opaque origin are not accepted")


def client_address(request: Request, trust_proxy: bool) -> str:
    if trust_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first
    return request.remote_addr or "unknown"


class RateLimiter:
    """Sliding-window limit of `limit.count` events per `limit.period_s` seconds per key (thread-safe)."""

    def __init__(self, limit: RateLimit, clock=time.monotonic):
        self.limit = limit
        self._clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> None:
        """Count one event for `key`; raise 429 with Retry-After when it is over the limit."""
        if self.limit.count == 0:
            return
        now = self._clock()
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.limit.period_s:
                events.popleft()
            if len(events) >= self.limit.count:
                retry = max(1, int(events[0] + self.limit.period_s - now + 0.999))
                raise ApiError(429, "rate_limited",
                               f"too many requests: at most {self.limit.count} per {self.limit.period_s:g} s; "
                               f"try again in {retry} s", {"Retry-After": str(retry)})
            events.append(now)
            if len(self._events) > 10_000:  # forget idle clients so memory stays bounded
                for stale in [k for k, v in self._events.items() if not v or v[-1] <= now - self.limit.period_s]:
                    del self._events[stale]

"""Owner tokens, cross-site request checks and the per-client rate limit.

- Owner token: a random 32-byte token in an HttpOnly, SameSite=Lax cookie, set when a client creates its first
  conversation; the database keeps only its SHA-256. A conversation, its jobs and its images are visible only
  with the matching cookie; anyone else gets 404 (not 403: existence is not revealed).
- Cross-site requests: a state-changing request (POST) is refused with 403 when the browser says it comes from
  another site (`Sec-Fetch-Site: cross-site`/`same-site`) or its `Origin` names another host. The SameSite
  cookie also keeps the owner token out of cross-site POSTs. Clients that are not browsers send neither header.
- Client address: `request.remote_addr`. Behind proxies, the app (not the WSGI server) reads `X-Forwarded-For`
  through Werkzeug's `ProxyFix` with the number of trusted hops (`I2EDIT_TRUST_PROXY`): the address the nearest
  trusted proxy saw, never an entry the client wrote itself, under any WSGI server.
- Rate limit: per client address over state-changing requests, counted in the database, so that every web
  process (on any machine) shares one limit. A sliding window estimated from two fixed windows: the hits in the
  current window plus those of the previous one, weighted by how much of it the sliding window still covers.
"""
from __future__ import annotations

import hashlib
import math
import secrets
import time
from typing import Callable
from urllib.parse import urlsplit

from flask import Request
from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from server.db import Database
from server.errors import ApiError
from server.models import RateLimitWindow
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


def client_address(request: Request) -> str:
    """The client's address: the socket peer, or with `ProxyFix` in front, what the nearest trusted proxy saw."""
    return request.remote_addr or "unknown"


class RateLimiter:
    """At most `limit.count` hits per `limit.period_s` seconds per client, counted in `db` (see the module)."""

    def __init__(self, db: Database, limit: RateLimit, clock: Callable[[], float] = time.time):
        self.db = db
        self.limit = limit
        self._clock = clock
        self._period = max(1, int(limit.period_s))

    def hit(self, client: str) -> None:
        """Count one request of `client`; raise 429 with Retry-After when it would go over the limit."""
        if self.limit.count == 0:
            return
        now = self._clock()
        start = int(now // self._period * self._period)
        elapsed = now - start
        client = client[:100]
        with self.db.write() as session:
            rows = dict(session.execute(
                select(RateLimitWindow.window_start, RateLimitWindow.hits)
                .where(RateLimitWindow.client == client,
                       RateLimitWindow.window_start.in_((start, start - self._period)))).all())
            current, previous = rows.get(start, 0), rows.get(start - self._period, 0)
            if previous * (1 - elapsed / self._period) + current + 1 > self.limit.count:
                retry = max(1, math.ceil(self._wait_s(previous, current, elapsed)))
                raise ApiError(429, "rate_limited",
                               f"too many requests: at most {self.limit.count} per {self.limit.period_s:g} s; "
                               f"try again in {retry} s", {"Retry-After": str(retry)})
            self._count(session, client, start)

    def forget_old(self) -> int:
        """Delete windows that no longer count (the janitor calls this); returns how many."""
        if self.limit.count == 0:
            return 0
        oldest = int(self._clock() // self._period * self._period) - self._period
        with self.db.write() as session:
            return session.execute(delete(RateLimitWindow).where(RateLimitWindow.window_start < oldest)).rowcount

    def _count(self, session, client: str, start: int) -> None:
        dialect = self.db.engine.dialect.name
        if dialect in ("sqlite", "postgresql"):
            upsert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(RateLimitWindow)
            session.execute(upsert.values(client=client, window_start=start, hits=1).on_conflict_do_update(
                index_elements=[RateLimitWindow.client, RateLimitWindow.window_start],
                set_={"hits": RateLimitWindow.hits + 1}))
            return
        if not session.execute(update(RateLimitWindow).where(RateLimitWindow.client == client,
                                                             RateLimitWindow.window_start == start)
                               .values(hits=RateLimitWindow.hits + 1)).rowcount:
            session.execute(insert(RateLimitWindow).values(client=client, window_start=start, hits=1))

    def _wait_s(self, previous: int, current: int, elapsed: float) -> float:
        """Seconds until one more hit fits under the limit."""
        period, room = self._period, self.limit.count - 1
        if current <= room and previous > 0:  # the previous window's share decays enough within this window
            wait = period * (1 - (room - current) / previous) - elapsed
            if wait < period - elapsed:
                return max(wait, 0.0)
        to_next = period - elapsed  # then this window becomes the previous one
        return to_next + (max(0.0, period * (1 - room / current)) if current else 0.0)

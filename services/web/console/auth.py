"""Console sessions: a signed cookie naming a server-side session of one person, per-session
CSRF tokens, and the sign-in throttle.

Signing is itsdangerous' (HMAC-SHA256, keyed by ``TEND_API_TOKEN`` with a purpose salt), so
changing the token logs every console user out. The cookie holds only a random session id and an
expiry; the session is alive only while its row in ``console_sessions`` exists, so logout (which
deletes the row) ends it everywhere, a copied cookie included, and only while its person is
enabled (disabling someone ends their sessions at once). The CSRF token is the signature of
the session id under another salt, so it needs no storage of its own, differs per session and
cannot be turned into a cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadData, Signer, URLSafeSerializer
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import ConsoleSignIn, Person
from shared.people.caller import Caller

COOKIE = "tend_console"
MAX_AGE_S = 12 * 3600
_SESSION_SALT = "tend console session v1"
_CSRF_SALT = "tend console csrf v1"


def _cookies(api_token: str) -> URLSafeSerializer:
    return URLSafeSerializer(
        api_token, salt=_SESSION_SALT, signer_kwargs={"digest_method": hashlib.sha256}
    )


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    sid: str
    expires: int
    csrf: str
    caller: Caller | None = None
    """Who is signed in (set once the server-side session is found)."""


def csrf_token(api_token: str, sid: str) -> str:
    signer = Signer(api_token, salt=_CSRF_SALT, digest_method=hashlib.sha256)
    return signer.get_signature(sid).decode()


def new_sid() -> str:
    return secrets.token_urlsafe(18)


def issue(api_token: str, now: float, sid: str | None = None, max_age_s: int = MAX_AGE_S) -> str:
    """A session cookie value for ``sid`` (a new one by default), valid for ``max_age_s`` from
    ``now`` (epoch seconds). The session is alive only once :func:`open_session` stored it."""
    return _cookies(api_token).dumps({"sid": sid or new_sid(), "exp": int(now) + max_age_s})


def verify(api_token: str | None, cookie: str | None, now: float) -> ConsoleSession | None:
    """The session a cookie carries, or None when it is missing, forged or expired (or when no
    API token is configured: the console is closed then, like the API). Whether the session
    is still open on the server is :func:`session_open`'s question."""
    if not api_token or not cookie:
        return None
    try:
        data: Any = _cookies(api_token).loads(cookie)
        sid, exp = str(data["sid"]), int(data["exp"])
    except (BadData, ValueError, KeyError, TypeError):
        return None
    if exp <= now:
        return None
    return ConsoleSession(sid=sid, expires=exp, csrf=csrf_token(api_token, sid))


def csrf_ok(session: ConsoleSession, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf.encode(), (given or "").encode())


# -- the server-side record ----------------------------------------------------------------------


def _at(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


async def open_session(
    db: AsyncSession, sid: str, now: float, max_age_s: int, person_id: int
) -> None:
    """Store a signed-in session of a person, and forget the ones that expired (so the table
    stays small)."""
    await db.execute(delete(ConsoleSignIn).where(ConsoleSignIn.expires_at <= _at(now)))
    db.add(
        ConsoleSignIn(
            sid=sid, created_at=_at(now), expires_at=_at(now + max_age_s), person_id=person_id
        )
    )


async def session_person(db: AsyncSession, sid: str, now: float) -> Person | None:
    """The enabled person of an unexpired session, or None."""
    found: Person | None = await db.scalar(
        select(Person)
        .join(ConsoleSignIn, ConsoleSignIn.person_id == Person.id)
        .where(
            ConsoleSignIn.sid == sid,
            ConsoleSignIn.expires_at > _at(now),
            Person.disabled_at.is_(None),
        )
    )
    return found


async def end_session(db: AsyncSession, sid: str) -> None:
    await db.execute(delete(ConsoleSignIn).where(ConsoleSignIn.sid == sid))


# -- sign-in throttle ----------------------------------------------------------------------------


class SignInThrottle:
    """Counts failed sign-ins per client address over a sliding window.

    Once an address has ``max_failures`` failures inside ``window_s`` seconds, every sign-in
    from it is refused (right password or not, so guessing gains nothing) until the oldest of them
    leaves the window. A success clears the address. Memory stays bounded: at most
    ``max_clients`` addresses are remembered, the longest quiet ones forgotten first.
    In-process state: each process counts its own failures.
    """

    def __init__(self, max_failures: int = 10, window_s: float = 60.0, max_clients: int = 10_000):
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.get(client, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def retry_after(self, client: str, now: float) -> int | None:
        """Seconds until ``client`` may try again, or None when it may try now."""
        times = self._recent(client, now)
        if len(times) < self.max_failures:
            return None
        return max(1, math.ceil(times[-self.max_failures] + self.window_s - now))

    def failed(self, client: str, now: float) -> None:
        times = self._recent(client, now)
        times.append(now)
        while len(times) > self.max_failures:
            times.popleft()
        # Re-inserted last, so the dict's order is oldest-activity first.
        self._failures.pop(client, None)
        self._failures[client] = times
        while len(self._failures) > self.max_clients:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

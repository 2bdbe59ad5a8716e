"""Console sessions: a signed cookie issued for the API token, and per-session CSRF tokens.

The signing key is derived from ``TEND_API_TOKEN`` (HMAC-SHA256), so changing the token logs
every console user out, and a restart with the same token keeps them logged in. The cookie holds
only a random session id and an expiry; the CSRF token is an HMAC of the session id, so it needs
no server-side storage and differs per session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

COOKIE = "tend_console"
MAX_AGE_S = 12 * 3600
_SESSION_CONTEXT = b"tend console session v1"


def _key(api_token: str) -> bytes:
    return hmac.new(api_token.encode(), _SESSION_CONTEXT, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    sid: str
    expires: int
    csrf: str


def csrf_token(api_token: str, sid: str) -> str:
    return hmac.new(_key(api_token), b"csrf:" + sid.encode(), hashlib.sha256).hexdigest()


def issue(api_token: str, now: float) -> str:
    """A new session cookie value, valid for :data:`MAX_AGE_S` from ``now`` (epoch seconds)."""
    body = _b64(
        json.dumps({"sid": secrets.token_urlsafe(18), "exp": int(now) + MAX_AGE_S}).encode()
    )
    sig = _b64(hmac.new(_key(api_token), body.encode(), hashlib.sha256).digest())
    return f"{body}.{sig}"


def verify(api_token: str | None, cookie: str | None, now: float) -> ConsoleSession | None:
    """The session a cookie carries, or None when it is missing, forged or expired (or when no
    API token is configured: the console is closed then, like the API)."""
    if not api_token or not cookie or cookie.count(".") != 1:
        return None
    body, sig = cookie.split(".")
    expected = _b64(hmac.new(_key(api_token), body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected.encode(), sig.encode()):
        return None
    try:
        data = json.loads(_unb64(body))
        sid, exp = str(data["sid"]), int(data["exp"])
    except (ValueError, KeyError, TypeError):
        return None
    if exp <= now:
        return None
    return ConsoleSession(sid=sid, expires=exp, csrf=csrf_token(api_token, sid))


def csrf_ok(session: ConsoleSession, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf.encode(), (given or "").encode())

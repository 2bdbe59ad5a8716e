"""Write keys: where a request carries one, and whether it is an active key.

A key is never logged, never put in an error message and never kept in memory in plaintext:
the cache holds SHA-256 digests only.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.keys import find_active_key, hash_key

MISSING_KEY: Final = (
    "missing write key: send it as the HTTP Basic user name (empty password), "
    "in the X-Write-Key header, or as writeKey in the body"
)
UNKNOWN_KEY: Final = "unknown or revoked write key"
MAX_KEY_CHARS: Final = 200


class Unauthorized(Exception):
    """401; the message is safe to return and never contains the key."""


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    """The key from ``Authorization: Basic`` (user name, or password when the user is empty)
    or from ``X-Write-Key``; None when neither is present."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "basic":
            raise Unauthorized("Authorization: only Basic is supported, with the write key as user")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("Authorization: malformed Basic credentials") from None
        user, _, password = decoded.partition(":")
        key = user or password
        if key:
            return key
    header = headers.get("x-write-key")
    if header and header.strip():
        return header.strip()
    return None


def key_from_body(body: Mapping[str, Any]) -> str | None:
    value = body.get("writeKey")
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


@dataclass(frozen=True, slots=True)
class _Entry:
    key_hash: str
    key_id: int | None
    expires_at: float


class WriteKeyAuthenticator:
    """Checks write keys against ``api_keys`` through a TTL cache.

    Guarantees: a key is accepted only if a lookup within the last ``ttl_s`` found it active
    (a revoked key keeps working for at most ``ttl_s``); unknown keys are cached as well, so a
    flood of bad keys costs one query per distinct key per ``ttl_s``, and the cache is bounded.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        ttl_s: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._cache: dict[str, _Entry] = {}
        self.lookups = 0
        """Database lookups made so far (for tests and debugging)."""

    async def authenticate(self, key: str | None) -> int:
        """The id of the active key ``key``; raises :class:`Unauthorized`."""
        if not key:
            raise Unauthorized(MISSING_KEY)
        if len(key) > MAX_KEY_CHARS or not key.isprintable():
            # No issued key has a control character or lone surrogate (which cannot even be
            # hashed): such a key is simply unknown, not a failure of the key database.
            raise Unauthorized(UNKNOWN_KEY)
        digest = hash_key(key)
        now = self._clock()
        entry = self._cache.get(digest)
        if entry is None or entry.expires_at <= now:
            entry = await self._lookup(digest, now)
        if entry.key_id is None or not hmac.compare_digest(entry.key_hash, digest):
            raise Unauthorized(UNKNOWN_KEY)
        return entry.key_id

    async def _lookup(self, digest: str, now: float) -> _Entry:
        self.lookups += 1
        async with self._sessions() as session:
            row = await find_active_key(session, digest)
        if row is not None and hmac.compare_digest(row.key_hash, digest):
            entry = _Entry(row.key_hash, row.id, now + self._ttl_s)
        else:
            entry = _Entry(digest, None, now + self._ttl_s)
        if self._ttl_s > 0:
            if len(self._cache) >= self._max_entries:
                self._evict(now)
            self._cache[digest] = entry
        return entry

    def _evict(self, now: float) -> None:
        self._cache = {d: e for d, e in self._cache.items() if e.expires_at > now}
        if len(self._cache) >= self._max_entries:
            self._cache.clear()

    def forget(self) -> None:
        self._cache.clear()

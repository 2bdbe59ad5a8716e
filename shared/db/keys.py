"""Write keys for the ingest API: generated once, stored as SHA-256, looked up by hash.

Repository functions never commit; the caller (CLI command, request) owns the transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import ApiKey
from shared.db.types import utcnow

KEY_PREFIX = "tend_wk_"


def generate_key() -> str:
    """A new write key: a fixed prefix (so leaked keys are recognisable) and 32 random bytes."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(session: AsyncSession, name: str) -> tuple[ApiKey, str]:
    """Store a new key named ``name``; returns the row and the plaintext key (shown once)."""
    if not name.strip():
        raise ValueError("a write key needs a non-blank name")
    plaintext = generate_key()
    row = ApiKey(name=name.strip(), key_hash=hash_key(plaintext), prefix=plaintext[:12])
    session.add(row)
    await session.flush()
    return row, plaintext


async def list_keys(session: AsyncSession) -> Sequence[ApiKey]:
    return (await session.scalars(select(ApiKey).order_by(ApiKey.id))).all()


async def revoke_key(session: AsyncSession, key_id: int) -> ApiKey | None:
    """Mark the key revoked; returns it, or None when no such key exists. Idempotent."""
    row = await session.get(ApiKey, key_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


async def find_active_key(session: AsyncSession, key_hash: str) -> ApiKey | None:
    """The unrevoked key with this hash, if any.

    The lookup is by hash (an index probe), so no plaintext comparison happens in Python; the
    caller compares the stored and computed digests with :func:`hmac.compare_digest` anyway.
    """
    row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))
    if row is None or row.revoked_at is not None:
        return None
    return row

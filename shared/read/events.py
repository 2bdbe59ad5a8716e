"""The last events counted per account (``recent_events``), with the write key that sent each:
read by ``GET /v1/accounts/{id}/events``, the console's "Last events" section and ``tend tail``.

A write key is shown by its id, name and prefix (the first characters, stored for display);
the key itself is never stored, so it cannot be shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import ApiKey, RecentEvent


@dataclass(frozen=True, slots=True)
class LastEvent:
    """One counted event as people see it."""

    id: int
    """Grows with arrival: a follower asks for the events after the last id it showed."""
    account_id: str
    event_id: str
    type: str
    name: str | None
    user_id: str | None
    occurred_at: datetime
    received_at: datetime
    stored_at: datetime
    key_id: int | None
    key_name: str | None
    key_prefix: str | None


async def last_events(
    session: AsyncSession,
    account_id: str | None = None,
    *,
    limit: int = 50,
    after_id: int | None = None,
) -> list[LastEvent]:
    """The newest ``limit`` events (of one account, or of all), newest first; with
    ``after_id``, only those stored after that event (the oldest of them first dropped past
    ``limit``)."""
    query = (
        select(RecentEvent, ApiKey.name, ApiKey.prefix)
        .outerjoin(ApiKey, ApiKey.id == RecentEvent.write_key_id)
        .order_by(RecentEvent.id.desc())
        .limit(limit)
    )
    if account_id is not None:
        query = query.where(RecentEvent.account_id == account_id)
    if after_id is not None:
        query = query.where(RecentEvent.id > after_id)
    return [
        LastEvent(
            id=e.id,
            account_id=e.account_id,
            event_id=e.event_id,
            type=e.type,
            name=e.name,
            user_id=e.user_id,
            occurred_at=e.occurred_at,
            received_at=e.received_at,
            stored_at=e.stored_at,
            key_id=e.write_key_id,
            key_name=key_name,
            key_prefix=key_prefix,
        )
        for e, key_name, key_prefix in await session.execute(query)
    ]

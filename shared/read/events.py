"""The last events counted per account (``recent_event_pages``), with the write key that sent
each: read by ``GET /v1/accounts/{id}/events``, the console's "Last events" section and
``tend tail``.

The scorer stores them a page (row) per account per batch: ``events`` holds that batch's newest
events of the account as JSON (:func:`encode_page`), in arrival order. An event's id is its
page's id times :data:`PAGE_SLOTS` plus its position in the page, so ids grow with the pages
(with arrival, batch after batch; inside one batch the pages go in the order of each account's
last event) and stay unique. A page holds at most ``services.scorer.recent.RECENT_EVENTS_KEPT``
(< :data:`PAGE_SLOTS`) events.

A write key is shown by its id, name and prefix (the first characters, stored for display);
the key itself is never stored, so it cannot be shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import ApiKey, RecentEventPage

PAGE_SLOTS = 64
"""Ids per page: an event's id is ``page id * PAGE_SLOTS + position``."""

PageEvent = tuple[str, str, str | None, str | None, int | None, datetime, datetime]
"""One event of a page: event_id, type, name, user_id, write_key_id, occurred_at, received_at."""

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(list[PageEvent])


def encode_page(events: Sequence[PageEvent]) -> str:
    """The ``events`` column of a page (times as RFC 3339 text, their offsets kept)."""
    return _ENCODER.encode(events).decode()


def decode_page(text: str) -> list[PageEvent]:
    return _DECODER.decode(text)


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
    ``limit``). Every page holds at least one event, so the newest ``limit`` pages hold them."""
    pages = select(
        RecentEventPage.id,
        RecentEventPage.account_id,
        RecentEventPage.events,
        RecentEventPage.stored_at,
    ).order_by(RecentEventPage.id.desc())
    if account_id is not None:
        pages = pages.where(RecentEventPage.account_id == account_id)
    if after_id is not None:
        pages = pages.where(RecentEventPage.id >= after_id // PAGE_SLOTS)
    found: list[tuple[int, str, PageEvent, datetime]] = []
    for page_id, account, events, stored_at in await session.execute(pages.limit(limit)):
        for position, event in enumerate(decode_page(events)):
            event_id = page_id * PAGE_SLOTS + position
            if after_id is None or event_id > after_id:
                found.append((event_id, account, event, stored_at))
    found.sort(key=lambda f: -f[0])
    found = found[:limit]
    key_ids = {f[2][4] for f in found} - {None}
    keys: dict[int, tuple[str | None, str | None]] = {}
    if key_ids:
        result = await session.execute(
            select(ApiKey.id, ApiKey.name, ApiKey.prefix).where(ApiKey.id.in_(key_ids))
        )
        keys = {key_id: (name, prefix) for key_id, name, prefix in result}
    shown = []
    for event_id, account, (eid, kind, name, user, key_id, occurred, received), stored in found:
        key_name, key_prefix = (
            keys.get(key_id, (None, None)) if key_id is not None else (None, None)
        )
        shown.append(
            LastEvent(
                id=event_id,
                account_id=account,
                event_id=eid,
                type=kind,
                name=name,
                user_id=user,
                occurred_at=occurred.astimezone(UTC),
                received_at=received.astimezone(UTC),
                stored_at=stored,
                key_id=key_id,
                key_name=key_name,
                key_prefix=key_prefix,
            )
        )
    return shown

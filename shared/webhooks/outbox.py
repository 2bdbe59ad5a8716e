"""Writing webhook events into the outbox (``webhook_deliveries``), in the caller's transaction.

The alerts consumer (alert transitions it decides, band changes it sees) and the web service
(manual moves from the API and the console) call these in the transaction that makes the
change, so an event is stored exactly when its change commits. Nothing here commits, and with
no endpoint configured nothing is written.

Which alert event a change is (:func:`alert_event_type`), from the row's status before and
after:

- to ``open`` from a status that is not active, or as a new episode (a new ``opened_at``):
  ``alert.opened``;
- to ``acknowledged``: ``alert.acknowledged``; to ``snoozed`` (or a snooze moved):
  ``alert.snoozed``; from ``snoozed`` back to ``open``: ``alert.snooze_ended``;
- from an active status to any other: ``alert.resolved`` (``resolved_by`` says how).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.alerting.lifecycle import ACTIVE, AlertState
from shared.db.models import Alert, WebhookDelivery
from shared.webhooks.endpoints import EventType, WebhooksConfig
from shared.webhooks.payload import alert_event

__all__ = [
    "AlertChange",
    "alert_event_type",
    "enqueue",
    "record_alert_changes",
    "record_cancelled_alerts",
]

AlertChange = tuple[Alert, AlertState]
"""An alert row after a change, and its state before it."""


def alert_event_type(before: AlertState, row: Alert) -> EventType | None:
    """The event a change of ``row`` from ``before`` is, or None (no status change to tell)."""
    was, now = before.status, row.status
    if now == "open":
        if was not in ACTIVE or before.opened_at != row.opened_at:
            return "alert.opened"
        return "alert.snooze_ended" if was == "snoozed" else None
    if now == "acknowledged":
        return "alert.acknowledged" if was != "acknowledged" else None
    if now == "snoozed":
        changed = was != "snoozed" or before.snoozed_until != row.snoozed_until
        return "alert.snoozed" if changed else None
    return "alert.resolved" if was in ACTIVE else None


def enqueue(
    session: AsyncSession, hooks: WebhooksConfig, event: Mapping[str, Any], now: datetime
) -> int:
    """One outbox row per endpoint that wants ``event``'s type; returns how many."""
    wanted = hooks.wanting(str(event["type"]))
    session.add_all(
        WebhookDelivery(
            delivery_id=f"dlv_{uuid.uuid4().hex}",
            endpoint=e.name,
            event_id=event["id"],
            event_type=event["type"],
            account_id=event["account"]["id"],
            payload=dict(event),
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for e in wanted
    )
    return len(wanted)


def record_alert_changes(
    session: AsyncSession,
    hooks: WebhooksConfig | None,
    changes: Iterable[AlertChange],
    now: datetime,
) -> int:
    """The events of these changes (rows must have their ids: flush first); returns the
    number of outbox rows written."""
    if hooks is None or not hooks.endpoints:
        return 0
    written = 0
    for row, before in changes:
        event_type = alert_event_type(before, row)
        if event_type is not None and hooks.wanting(event_type):
            written += enqueue(session, hooks, alert_event(event_type, row, now), now)
    return written


async def record_cancelled_alerts(
    session: AsyncSession, hooks: WebhooksConfig | None, resolved: Sequence[Alert], now: datetime
) -> int:
    """``alert.resolved`` for the alerts a cancellation resolved
    (:func:`shared.alerting.cancellation.resolve_cancelled_alerts`: all were active)."""
    if hooks is None or not hooks.endpoints or not resolved:
        return 0
    await session.flush()
    was = [(r, AlertState(status="open", opened_at=r.opened_at)) for r in resolved]
    return record_alert_changes(session, hooks, was, now)

"""The audit log: who did what, when, and why. Append-only: this module only inserts and reads
(on PostgreSQL a trigger refuses UPDATE and DELETE of ``audit_log``). Entries are written in
the transaction of the change they describe, so one is never kept without the other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Alert, AuditEntry, Person
from shared.db.types import utcnow
from shared.people.caller import Caller

ACTIONS = (
    "alert.acknowledge",
    "alert.snooze",
    "alert.resolve",
    "write_key.create",
    "write_key.revoke",
    "token.create",
    "token.revoke",
    "person.add",
    "person.role",
    "person.disable",
    "person.enable",
    "person.password",
    "profile.update",
    "accounts.import",
    "outcome.record",
    "outcomes.import",
)
ALERT_MOVES = {"ack": "alert.acknowledge", "snooze": "alert.snooze", "resolve": "alert.resolve"}


def record(
    session: AsyncSession,
    caller: Caller,
    action: str,
    *,
    target: str | None = None,
    account_id: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Add one entry to the session (it is stored when the caller's transaction commits)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    session.add(
        AuditEntry(
            at=at or utcnow(),
            actor_id=caller.person_id,
            actor=caller.actor,
            action=action,
            target=target,
            account_id=account_id,
            reason=reason,
            details=details or {},
        )
    )


def record_alert_move(
    session: AsyncSession,
    caller: Caller,
    row: Alert,
    move: str,
    reason: str | None,
    at: datetime,
    via: str,
) -> None:
    """An alert move (``move``: ack, snooze or resolve) of ``row`` as it is after the move."""
    details = {"rule": row.rule, "status": row.status, "via": via}
    if row.snoozed_until is not None and move == "snooze":
        details["until"] = row.snoozed_until.isoformat()
    record(
        session,
        caller,
        ALERT_MOVES[move],
        target=f"alert:{row.id}",
        account_id=row.account_id,
        reason=reason or None,
        details=details,
        at=at,
    )


@dataclass(frozen=True, slots=True)
class AuditQuery:
    action: str | None = None
    actor: str | None = None
    account_id: str | None = None
    limit: int = 100
    offset: int = 0


async def entries(session: AsyncSession, q: AuditQuery) -> tuple[int, list[AuditEntry]]:
    """The total matching and one page, newest first."""
    conditions: list[Any] = []
    if q.action:
        conditions.append(AuditEntry.action == q.action)
    if q.actor:
        conditions.append(AuditEntry.actor == q.actor.strip().lower())
    if q.account_id:
        conditions.append(AuditEntry.account_id == q.account_id)
    total = await session.scalar(select(func.count()).select_from(AuditEntry).where(*conditions))
    rows = await session.scalars(
        select(AuditEntry)
        .where(*conditions)
        .order_by(AuditEntry.id.desc())
        .limit(q.limit)
        .offset(q.offset)
    )
    return int(total or 0), list(rows)


@dataclass(frozen=True, slots=True)
class LastMove:
    """The latest manual move of an alert: what, by whom (their name), when."""

    action: str
    actor: str
    at: datetime


async def last_moves(session: AsyncSession, alert_ids: Sequence[int]) -> dict[int, LastMove]:
    """Each alert's latest recorded move (``target`` ``alert:<id>``), naming the person by
    their name when the actor is a person."""
    if not alert_ids:
        return {}
    targets = [f"alert:{i}" for i in alert_ids]
    rows = await session.execute(
        select(AuditEntry.target, AuditEntry.action, AuditEntry.actor, Person.name, AuditEntry.at)
        .outerjoin(Person, Person.id == AuditEntry.actor_id)
        .where(AuditEntry.target.in_(targets), AuditEntry.action.in_(ALERT_MOVES.values()))
        .order_by(AuditEntry.id)
    )
    found: dict[int, LastMove] = {}
    for target, action, actor, name, at in rows:
        found[int(str(target).split(":", 1)[1])] = LastMove(action, name or actor, at)
    return found


async def movers(session: AsyncSession, alert_ids: Sequence[int]) -> dict[int, str]:
    """Who made each alert's latest move (their name), for "acknowledged by <name>"."""
    return {i: m.actor for i, m in (await last_moves(session, alert_ids)).items()}

"""Alert rows and the life cycle: reading a row's state, writing one, manual moves.

A manual move (acknowledge, snooze, resolve; from the alerts API or the console) runs in the
caller's transaction on rows locked ``FOR UPDATE``: the consumer locks the same rows for its
batch (:func:`lock_account_alerts`), so the two never overwrite each other. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.alerting.lifecycle import ACTIVE, AlertState, LifecycleError
from shared.db.models import Alert

AlertKey = tuple[str, str, str]
"""(account_id, rule, feature)"""

Move = Callable[[AlertState, datetime], AlertState]
"""A manual move: :func:`~shared.alerting.lifecycle.acknowledge`, ``snooze`` (bound to its
time and reason) or ``resolve``; raises :class:`LifecycleError` when the status forbids it."""

STATE_FIELDS: tuple[str, ...] = tuple(AlertState.model_fields)


def state_of(row: Alert) -> AlertState:
    return AlertState.model_validate({name: getattr(row, name) for name in STATE_FIELDS})


def set_state(row: Alert, state: AlertState, now: datetime) -> None:
    for name in STATE_FIELDS:
        setattr(row, name, getattr(state, name))
    row.updated_at = now


def key_of(row: Alert) -> AlertKey:
    return (row.account_id, row.rule, row.feature)


def apply_move(row: Alert, move: Move, now: datetime) -> AlertState:
    """Move one (locked) row; :class:`LifecycleError` leaves it as it was. Returns its state
    before the move."""
    before = state_of(row)
    set_state(row, move(before, now), now)
    return before


async def lock_account_alerts(
    session: AsyncSession, account_ids: Iterable[str]
) -> dict[AlertKey, Alert]:
    """Every alert row of these accounts, locked until the transaction ends, so a manual move
    waits for a consumer batch instead of being overwritten by it (and the other way round)."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    rows = await session.scalars(
        select(Alert).where(Alert.account_id.in_(ids)).order_by(Alert.id).with_for_update()
    )
    return {key_of(r): r for r in rows}


async def move_incident(
    session: AsyncSession,
    account_id: str,
    move: Move,
    now: datetime,
    changes: list[tuple[Alert, AlertState]] | None = None,
) -> list[Alert]:
    """Apply a manual move to every active alert of an account (its incident), locked; one the
    move makes no sense for (acknowledging an acknowledged one) stays as it is. Returns the
    account's active alerts before the move (none: nothing to move); ``changes`` receives each
    moved row with its state before the move."""
    rows = await lock_account_alerts(session, [account_id])
    active = [r for r in rows.values() if r.status in ACTIVE]
    for row in active:
        try:
            before = apply_move(row, move, now)
        except LifecycleError:
            continue
        if changes is not None:
            changes.append((row, before))
    return active

"""Alerts: search, one alert with its deliveries, an account's alerts, counts per account.

Rows with status ``none`` (a remembered condition that does not hold) are never shown to
people; ``pending`` ones (held, not long enough to fire) only when asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.alerting.lifecycle import ACTIVE
from shared.db.models import Alert, AlertAction, AlertNotification
from shared.people.caller import alerts_in_book

ACTIVE_STATUSES: tuple[str, ...] = tuple(sorted(ACTIVE))
SHOWN_STATUSES: tuple[str, ...] = (*ACTIVE_STATUSES, "resolved")
"""The alert rows people see by default: active and resolved ones."""


async def search_alerts(
    session: AsyncSession,
    *,
    statuses: Sequence[str],
    account: str | None = None,
    rule: str | None = None,
    csm: str | None = None,
    limit: int = 100,
    offset: int = 0,
    book: str | None = None,
) -> tuple[int, list[Alert]]:
    """The total matching and one page, most recently changed first (``book``: only alerts of
    accounts in that CSM's book)."""
    conditions: list[Any] = [Alert.status.in_(list(statuses))]
    if book is not None:
        conditions.append(alerts_in_book(book))
    if account:
        conditions.append(Alert.account_id == account)
    if rule:
        conditions.append(Alert.rule == rule)
    if csm:
        conditions.append((Alert.csm_email == csm) | (Alert.csm_slack == csm))
    total = await session.scalar(select(func.count()).select_from(Alert).where(*conditions))
    rows = await session.scalars(
        select(Alert)
        .where(*conditions)
        .order_by(Alert.updated_at.desc(), Alert.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return int(total or 0), list(rows)


async def get_alert(session: AsyncSession, alert_id: int, *, lock: bool = False) -> Alert | None:
    """One alert row; ``lock``: locked until the caller's transaction ends (a manual move)."""
    stmt = select(Alert).where(Alert.id == alert_id)
    if lock:
        stmt = stmt.with_for_update()
    row: Alert | None = await session.scalar(stmt)
    return row


async def actions(session: AsyncSession, alert_id: int) -> list[AlertAction]:
    """Who moved the alert by hand from Slack, oldest first."""
    rows = await session.scalars(
        select(AlertAction).where(AlertAction.alert_id == alert_id).order_by(AlertAction.id)
    )
    return list(rows)


async def deliveries(session: AsyncSession, alert_id: int) -> list[AlertNotification]:
    """The alert's notifications (outbox rows), oldest first: its own, and the messages that
    spoke of it among the account's alerts decided together (a grouped message is one row,
    led by the most urgent alert, its ``items`` naming every alert in it)."""
    account = await session.scalar(select(Alert.account_id).where(Alert.id == alert_id))
    if account is None:
        return []
    return (await account_deliveries(session, account)).get(alert_id, [])


async def account_deliveries(
    session: AsyncSession, account_id: str
) -> dict[int, list[AlertNotification]]:
    """Each alert of the account -> the notifications that spoke of it, oldest first (one
    query; see :func:`deliveries`)."""
    rows = await session.scalars(
        select(AlertNotification)
        .join(Alert, Alert.id == AlertNotification.alert_id)
        .where(Alert.account_id == account_id)
        .order_by(AlertNotification.id)
    )
    out: dict[int, list[AlertNotification]] = {}
    for n in rows:
        about = {n.alert_id, *_items_of(n)}
        for alert_id in sorted(about):
            out.setdefault(alert_id, []).append(n)
    return out


def _items_of(n: AlertNotification) -> set[int]:
    """The alert ids a grouped message's payload lists in its ``items``."""
    items = n.payload.get("items") if isinstance(n.payload, dict) else None
    if not isinstance(items, list):
        return set()
    found: set[int] = set()
    for item in items:
        raw = item.get("alert_id") if isinstance(item, dict) else None
        if isinstance(raw, int | str) and str(raw).isdigit():
            found.add(int(raw))
    return found


async def account_alerts(
    session: AsyncSession, account_id: str, statuses: Sequence[str] = SHOWN_STATUSES
) -> list[Alert]:
    """The account's alerts in ``statuses``, most recently changed first."""
    rows = await session.scalars(
        select(Alert)
        .where(Alert.account_id == account_id, Alert.status.in_(list(statuses)))
        .order_by(Alert.updated_at.desc(), Alert.id.desc())
    )
    return list(rows)


async def active_alerts(
    session: AsyncSession, csm: str | None = None, book: str | None = None
) -> list[Alert]:
    """Every active alert (of one CSM: email or Slack handle; in one book), by id."""
    stmt = select(Alert).where(Alert.status.in_(ACTIVE_STATUSES))
    if book is not None:
        stmt = stmt.where(alerts_in_book(book))
    if csm:
        stmt = stmt.where((Alert.csm_email == csm) | (Alert.csm_slack == csm))
    return list(await session.scalars(stmt.order_by(Alert.id)))


async def active_counts(session: AsyncSession, account_ids: Select[tuple[str]]) -> dict[str, int]:
    """The number of active alerts of each account (``account_ids``: a subquery of ids)."""
    found = await session.execute(
        select(Alert.account_id, func.count())
        .where(Alert.account_id.in_(account_ids), Alert.status.in_(ACTIVE_STATUSES))
        .group_by(Alert.account_id)
    )
    return {a: int(n) for a, n in found}

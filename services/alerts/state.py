"""Alert state and the notification outbox in the database.

:class:`AlertRepository` holds the queries. It never commits: the consumer's flush (one
transaction with the partition offsets) or the API request commits, so an alert transition and
the outbox rows it asks for are written together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.lifecycle import AlertState
from services.alerts.notifiers.base import Notification, NotificationKind
from services.alerts.rules import Finding, ScorePoint
from shared.db.models import Alert, AlertNotification, AlertScorePoint
from shared.db.upsert import upsert
from shared.scores import ScoreMessage

__all__ = [
    "STATE_FIELDS",
    "AlertKey",
    "AlertRepository",
    "build_notification",
    "console_link",
    "set_state",
    "state_of",
]

AlertKey = tuple[str, str, str]
"""(account_id, rule, feature)"""

STATE_FIELDS: tuple[str, ...] = tuple(AlertState.model_fields)


def state_of(row: Alert) -> AlertState:
    return AlertState.model_validate({name: getattr(row, name) for name in STATE_FIELDS})


def set_state(row: Alert, state: AlertState, now: datetime) -> None:
    for name in STATE_FIELDS:
        setattr(row, name, getattr(state, name))
    row.updated_at = now


def key_of(row: Alert) -> AlertKey:
    return (row.account_id, row.rule, row.feature)


def console_link(console_url: str, account_id: str) -> str:
    return f"{console_url.rstrip('/')}/accounts/{quote(account_id, safe='')}"


def build_notification(
    row: Alert,
    kind: NotificationKind,
    console_url: str,
    as_of: date,
    *,
    renewal_date: date | None = None,
) -> Notification:
    """What a channel renders, from the alert row as it stands after the transition."""
    return Notification(
        alert_id="" if row.id is None else str(row.id),  # None: not flushed yet
        rule=row.rule,
        feature=row.feature,
        severity=row.severity,
        kind=kind,
        as_of=as_of,
        account_id=row.account_id,
        account_name=row.account_name,
        score=row.score,
        band=row.band or "unknown",
        mrr=row.mrr,
        renewal_date=renewal_date,
        reason=row.reason,
        next_step=row.next_step,
        console_url=console_link(console_url, row.account_id),
        csm_email=row.csm_email,
    )


class AlertRepository:
    """Queries and writes of alerts, score history and the outbox (never commits)."""

    # -- the consumer's side -------------------------------------------------------------------

    async def load(
        self, session: AsyncSession, account_ids: Iterable[str]
    ) -> dict[AlertKey, Alert]:
        """Every alert row of these accounts, locked until the transaction ends, so a manual
        move from the API waits for the batch instead of being overwritten by it."""
        ids = sorted(set(account_ids))
        if not ids:
            return {}
        rows = await session.scalars(
            select(Alert).where(Alert.account_id.in_(ids)).order_by(Alert.id).with_for_update()
        )
        return {key_of(r): r for r in rows}

    async def history(
        self, session: AsyncSession, account_ids: Iterable[str], since: date
    ) -> dict[str, list[ScorePoint]]:
        ids = sorted(set(account_ids))
        found: dict[str, list[ScorePoint]] = {a: [] for a in ids}
        if not ids:
            return found
        rows = await session.execute(
            select(AlertScorePoint)
            .where(AlertScorePoint.account_id.in_(ids), AlertScorePoint.as_of >= since)
            .order_by(AlertScorePoint.account_id, AlertScorePoint.as_of)
        )
        for (p,) in rows:
            found[p.account_id].append(
                ScorePoint.model_validate(
                    {"as_of": p.as_of, "score": p.score, "band": p.band, "scorecard": p.scorecard}
                )
            )
        return found

    async def record_scores(self, session: AsyncSession, snapshots: Sequence[ScoreMessage]) -> None:
        """Remember each account's score per day (the last message of a day wins)."""
        latest: dict[tuple[str, date], dict[str, Any]] = {}
        for m in snapshots:
            latest[(m.account_id, m.as_of)] = {
                "account_id": m.account_id,
                "as_of": m.as_of,
                "score": m.score,
                "band": m.band,
                "scorecard": m.scorecard,
            }
        await upsert(
            session,
            AlertScorePoint.__table__,  # type: ignore[arg-type]
            list(latest.values()),
            keys=["account_id", "as_of"],
            update=["score", "band", "scorecard"],
        )

    def add(self, session: AsyncSession, account_id: str, finding: Finding, now: datetime) -> Alert:
        row = Alert(
            account_id=account_id,
            rule=finding.rule,
            feature=finding.feature,
            status="none",
            severity=finding.severity,
            reason=finding.reason,
            next_step=finding.next_step,
            facts=dict(finding.facts),
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        return row

    @staticmethod
    def apply(
        row: Alert,
        state: AlertState,
        snapshot: ScoreMessage,
        finding: Finding,
        now: datetime,
        *,
        describe: bool,
    ) -> None:
        """Write ``state`` and the snapshot's account facts onto ``row``; with ``describe``, also
        the finding's severity, reason, next step and facts (the alert's explanation)."""
        set_state(row, state, now)
        if describe:
            row.severity = finding.severity
            row.reason = finding.reason
            row.next_step = finding.next_step
            row.facts = dict(finding.facts)
        row.as_of = snapshot.as_of
        row.score = snapshot.score
        row.band = snapshot.band
        row.account_name = snapshot.name
        row.mrr = snapshot.mrr
        row.csm_email = snapshot.csm_email
        row.csm_slack = snapshot.csm_slack

    @staticmethod
    def enqueue(
        session: AsyncSession,
        row: Alert,
        notification: Notification,
        destinations: Sequence[tuple[str, str]],
        now: datetime,
        *,
        due_at: datetime | None = None,
    ) -> list[AlertNotification]:
        """Outbox rows, one per destination, due at ``due_at`` (default: now); ``row`` must
        have its id (flush first)."""
        payload = notification.model_dump(mode="json")
        outbox = [
            AlertNotification(
                alert_id=row.id,
                kind=notification.kind,
                channel=channel,
                destination=destination,
                payload=payload,
                status="pending",
                attempts=0,
                next_attempt_at=due_at or now,
                created_at=now,
            )
            for channel, destination in destinations
        ]
        session.add_all(outbox)
        return outbox

    # -- the API's side ----------------------------------------------------------------------

    async def get(
        self, session: AsyncSession, alert_id: int, *, lock: bool = False
    ) -> Alert | None:
        stmt = select(Alert).where(Alert.id == alert_id)
        if lock:
            stmt = stmt.with_for_update()
        row: Alert | None = await session.scalar(stmt)
        return row

    async def search(
        self,
        session: AsyncSession,
        *,
        statuses: Sequence[str],
        account: str | None = None,
        rule: str | None = None,
        csm: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[int, list[Alert]]:
        conditions: list[Any] = [Alert.status.in_(list(statuses))]
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

    async def notifications_of(
        self, session: AsyncSession, alert_id: int
    ) -> list[AlertNotification]:
        rows = await session.scalars(
            select(AlertNotification)
            .where(AlertNotification.alert_id == alert_id)
            .order_by(AlertNotification.id)
        )
        return list(rows)

    # -- housekeeping ------------------------------------------------------------------------

    async def purge(
        self, session: AsyncSession, *, delivered_before: datetime, scores_before: date
    ) -> tuple[int, int]:
        """Delete sent and failed outbox rows created before ``delivered_before`` and score
        points older than ``scores_before``; pending rows are never touched."""
        outbox = await session.execute(
            delete(AlertNotification).where(
                AlertNotification.status.in_(["sent", "failed"]),
                AlertNotification.created_at < delivered_before,
            )
        )
        points = await session.execute(
            delete(AlertScorePoint).where(AlertScorePoint.as_of < scores_before)
        )
        return int(getattr(outbox, "rowcount", 0) or 0), int(getattr(points, "rowcount", 0) or 0)

"""The alerts consumer's side of alert state: day states, episodes, score history, the outbox.

:class:`AlertRepository` holds the queries. It never commits: the consumer's flush (one
transaction with the partition offsets) commits, so an alert transition and the outbox rows it
asks for are written together or not at all. Reading and writing a row's life-cycle state and
manual moves (the web service's side) live in :mod:`shared.alerting.state`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import Table, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.notifiers.base import Notification, NotificationItem, NotificationKind
from services.alerts.rules import Finding, ScorePoint
from shared.alerting.lifecycle import AlertState, DayState, Episode
from shared.alerting.state import AlertKey, lock_account_alerts, set_state
from shared.db.models import Alert, AlertEpisode, AlertNotification, AlertScorePoint
from shared.db.upsert import insert_for, upsert
from shared.scores import ScoreMessage

__all__ = [
    "AlertRepository",
    "build_notification",
    "console_link",
    "group_notification",
]


def state_key(rule: str, feature: str) -> str:
    """The key of a day state in a checkpoint's JSON (rule names have no ``/``)."""
    return f"{rule}/{feature}"


def encode_states(states: Mapping[tuple[str, str], DayState]) -> dict[str, Any]:
    return {state_key(*k): v.model_dump(mode="json") for k, v in sorted(states.items())}


def decode_states(data: Mapping[str, Any]) -> dict[tuple[str, str], DayState]:
    out: dict[tuple[str, str], DayState] = {}
    for k, v in data.items():
        rule, _, feature = k.partition("/")
        out[(rule, feature)] = DayState.model_validate(v)
    return out


WORST_MOVE = "worst_move"
"""The key of the entry of a stored day's findings that is not a finding (below)."""

Mover = tuple[str, float]


def encode_findings(findings: Sequence[Finding], mover: Mover | None) -> list[Any]:
    """A stored day's ``findings`` column: the day's findings, then ``{"worst_move": [name,
    delta] or null}``: what ``health_drop`` reads of the day besides its score
    (:func:`~services.alerts.rules.worst_move`), so that the day can be judged again when an
    earlier day's score changes and the day's own message is not published again."""
    return [
        *(f.model_dump(mode="json") for f in findings),
        {WORST_MOVE: None if mover is None else list(mover)},
    ]


def decode_findings(data: Sequence[Any] | None) -> tuple[list[Finding], Mover | None]:
    """:func:`encode_findings`'s findings and mover. A day stored before the mover was kept has
    none: judged again, its ``health_drop`` reason names no mover (its verdict is the same)."""
    findings: list[Finding] = []
    mover: Mover | None = None
    for entry in data or ():
        if WORST_MOVE in entry:
            kept = entry[WORST_MOVE]
            mover = None if kept is None else (str(kept[0]), float(kept[1]))
        else:
            findings.append(Finding.model_validate(entry))
    return findings, mover


def day_state_of(row: Alert) -> DayState:
    """A row's state as a day state: the start of a replay when no checkpoint precedes it (rows
    written before day checkpoints existed)."""
    status = {"acknowledged": "open", "snoozed": "open"}.get(row.status, row.status)
    last = row.last_evaluated_as_of
    holds = bool(row.last_holds)
    opened = row.opened_on or (last if status == "open" else None)
    return DayState.model_validate(
        {
            "status": status,
            "last_day": last,
            "last_holds": row.last_holds,
            "held_since": last if holds else None,
            "cleared_since": last if last is not None and not holds else None,
            "started_on": row.started_on or opened,
            "opened_on": opened,
            "resolved_on": row.resolved_on or (last if status == "resolved" else None),
            "resolved_by": row.resolved_by if status == "resolved" else None,
            "reopenings": row.reopenings or 0,
        }
    )


async def _upsert_many(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    keys: Sequence[str],
    update: Sequence[str],
) -> None:
    """One INSERT ... ON CONFLICT executed for many rows: compiled once and cached, where a
    multi-row VALUES is compiled again for every number of rows (most of a batch's time)."""
    if not rows:
        return
    stmt = insert_for(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: stmt.excluded[c] for c in update}
    )
    await session.execute(stmt, [dict(r) for r in rows])


def _by_day(since: Mapping[str, date]) -> list[tuple[date, list[str]]]:
    """Accounts grouped by their day (a batch's accounts mostly share it): few OR terms."""
    groups: dict[date, list[str]] = {}
    for account_id, day in since.items():
        groups.setdefault(day, []).append(account_id)
    return sorted((d, sorted(ids)) for d, ids in groups.items())


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
        started_on=row.started_on,
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


_KIND_ORDER = {"open": 0, "repeat": 1, "resolve": 2}
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "opportunity": 2, "info": 3}


def group_notification(members: Sequence[tuple[Alert, Notification]]) -> tuple[Alert, Notification]:
    """One notification for an account's alerts decided together, led by the most urgent
    (newly open before still open before resolved, then by severity), whose next step is the
    one suggested; with one member, that member's notification as it is."""
    ordered = sorted(
        members,
        key=lambda m: (
            _KIND_ORDER[m[1].kind],
            _SEVERITY_ORDER.get(m[1].severity, 9),
            m[1].rule,
            m[1].feature,
        ),
    )
    lead, notification = ordered[0]
    if len(ordered) == 1:
        return lead, notification
    items = tuple(
        NotificationItem(
            alert_id=n.alert_id,
            rule=n.rule,
            feature=n.feature,
            severity=n.severity,
            kind=n.kind,
            reason=n.reason,
            started_on=n.started_on,
        )
        for _, n in ordered
    )
    return lead, notification.model_copy(update={"items": items})


class AlertRepository:
    """Queries and writes of alerts, score history and the outbox (never commits)."""

    # -- the consumer's side -------------------------------------------------------------------

    async def load(
        self, session: AsyncSession, account_ids: Iterable[str]
    ) -> dict[AlertKey, Alert]:
        """Every alert row of these accounts, locked until the transaction ends, so a manual
        move from the API or the console waits for the batch instead of being overwritten."""
        return await lock_account_alerts(session, account_ids)

    async def days(
        self, session: AsyncSession, since: Mapping[str, date]
    ) -> dict[str, list[AlertScorePoint]]:
        """Each account's stored days from its ``since`` day on, oldest first."""
        found: dict[str, list[AlertScorePoint]] = {a: [] for a in since}
        if not since:
            return found
        rows = await session.scalars(
            select(AlertScorePoint)
            .where(
                or_(
                    *(
                        (AlertScorePoint.account_id.in_(ids)) & (AlertScorePoint.as_of >= day)
                        for day, ids in _by_day(since)
                    )
                )
            )
            .order_by(AlertScorePoint.account_id, AlertScorePoint.as_of)
        )
        for p in rows:
            found[p.account_id].append(p)
        return found

    async def checkpoints(
        self, session: AsyncSession, before: Mapping[str, date]
    ) -> dict[str, AlertScorePoint]:
        """Each account's last stored day before its ``before`` day that has a checkpoint."""
        if not before:
            return {}
        p = AlertScorePoint
        latest = (
            select(p.account_id, func.max(p.as_of).label("as_of"))
            .where(
                p.states.is_not(None),
                or_(*((p.account_id.in_(ids)) & (p.as_of < day) for day, ids in _by_day(before))),
            )
            .group_by(p.account_id)
            .subquery()
        )
        rows = await session.scalars(
            select(p).join(
                latest, (p.account_id == latest.c.account_id) & (p.as_of == latest.c.as_of)
            )
        )
        return {r.account_id: r for r in rows}

    async def save_days(self, session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert (account, as_of) days with their score, findings and checkpoint."""
        await _upsert_many(
            session,
            AlertScorePoint.__table__,  # type: ignore[arg-type]
            rows,
            keys=("account_id", "as_of"),
            update=("score", "band", "scorecard", "findings", "states"),
        )

    async def save_episodes(
        self,
        session: AsyncSession,
        since: Mapping[str, date],
        episodes: Mapping[str, Sequence[Episode]],
    ) -> None:
        """Replace each account's episodes that were open on or after its ``since`` day (what a
        replay from there recomputed) by ``episodes``; episodes that ended before stay."""
        if not since:
            return
        await session.execute(
            delete(AlertEpisode).where(
                or_(
                    *(
                        (AlertEpisode.account_id.in_(ids))
                        & (AlertEpisode.resolved_on.is_(None) | (AlertEpisode.resolved_on >= day))
                        for day, ids in _by_day(since)
                    )
                )
            )
        )
        await _upsert_many(
            session,
            AlertEpisode.__table__,  # type: ignore[arg-type]
            [
                {
                    "account_id": account_id,
                    "rule": e.rule,
                    "feature": e.feature,
                    "started_on": e.started_on,
                    "opened_on": e.opened_on,
                    "resolved_on": e.resolved_on,
                    "resolved_by": e.resolved_by,
                    "reopenings": e.reopenings,
                }
                for account_id, found in sorted(episodes.items())
                for e in found
            ],
            keys=("account_id", "rule", "feature", "started_on"),
            update=("opened_on", "resolved_on", "resolved_by", "reopenings"),
        )

    async def episodes(self, session: AsyncSession, account_id: str) -> list[AlertEpisode]:
        rows = await session.scalars(
            select(AlertEpisode)
            .where(AlertEpisode.account_id == account_id)
            .order_by(AlertEpisode.rule, AlertEpisode.feature, AlertEpisode.started_on)
        )
        return list(rows)

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
        point: ScorePoint | None = None,
    ) -> None:
        """Write ``state`` and the snapshot's account facts onto ``row``; with ``describe``, also
        the finding's severity, reason, next step and facts (the alert's explanation).
        ``point``: the day the state is as of, when it is not the snapshot's (a replay)."""
        set_state(row, state, now)
        if describe:
            row.severity = finding.severity
            row.reason = finding.reason
            row.next_step = finding.next_step
            row.facts = dict(finding.facts)
        day = point or ScorePoint.of(snapshot)
        row.as_of = day.as_of
        row.score = day.score
        row.band = day.band
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

    @staticmethod
    def record_unrouted(
        session: AsyncSession, row: Alert, notification: Notification, reason: str, now: datetime
    ) -> AlertNotification:
        """An outbox row that records a notification that had nowhere to go (status
        ``unrouted``, ``reason`` as its error): never claimed by the dispatcher, but the
        alert's deliveries say what became of it. ``row`` must have its id."""
        unsent = AlertNotification(
            alert_id=row.id,
            kind=notification.kind,
            channel="none",
            destination="",
            payload=notification.model_dump(mode="json"),
            status="unrouted",
            attempts=0,
            next_attempt_at=now,
            last_error=reason,
            created_at=now,
        )
        session.add(unsent)
        return unsent

    # -- housekeeping ------------------------------------------------------------------------

    async def purge(
        self, session: AsyncSession, *, delivered_before: datetime, scores_before: date
    ) -> tuple[int, int]:
        """Delete sent, failed and unrouted outbox rows created before ``delivered_before``
        and score points older than ``scores_before``; pending rows are never touched."""
        outbox = await session.execute(
            delete(AlertNotification).where(
                AlertNotification.status.in_(["sent", "failed", "unrouted"]),
                AlertNotification.created_at < delivered_before,
            )
        )
        points = await session.execute(
            delete(AlertScorePoint).where(AlertScorePoint.as_of < scores_before)
        )
        return int(getattr(outbox, "rowcount", 0) or 0), int(getattr(points, "rowcount", 0) or 0)

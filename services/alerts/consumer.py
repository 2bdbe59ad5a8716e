"""The alerts service as a process: consume ``tend.scores.v1`` into alert state and the outbox.

``AlertsService.run`` runs two loops until ``stop`` is set: the batch consumer (score snapshots
-> rules -> life cycle -> alert rows and outbox rows, with the offsets, in one transaction; see
:mod:`shared.consumer`) and the :class:`~services.alerts.dispatcher.Dispatcher`, woken after
each commit that wrote notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import cast

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import metrics as alert_metrics
from services.alerts.dispatcher import Dispatcher
from services.alerts.lifecycle import AlertState, transition
from services.alerts.notifiers.base import Notification, NotificationKind
from services.alerts.routing import (
    DIGEST_CHANNEL,
    Defaults,
    destinations,
    digest_destinations,
    next_digest,
)
from services.alerts.rules import ScoreHistory, ScorePoint, evaluate
from services.alerts.state import AlertKey, AlertRepository, build_notification, state_of
from shared import topics
from shared.alert_rules import RuleName, RulesConfig
from shared.bus.base import Bus, Producer, Record
from shared.clock import Clock
from shared.consumer import BatchConsumer, PoisonRecord
from shared.db.models import Alert
from shared.scores import ScoreMessage

log = logging.getLogger(__name__)

GROUP_ID = "tend-alerts"

_KIND: dict[str, NotificationKind] = {
    "notify_open": "open",
    "notify_repeat": "repeat",
    "notify_resolve": "resolve",
}


class AlertsHandler:
    """Evaluates score snapshots and writes alert transitions and their outbox rows.

    Guarantees, with :class:`~shared.consumer.BatchConsumer`: a transition and the notifications
    it asks for are in the same transaction as the batch's offsets, so a crash replays the batch
    and decides again, never twice; a snapshot whose ``as_of`` an alert has already counted
    (a re-score of the same day, a replay) changes nothing. Snapshots of one account are applied
    in offset order.
    """

    def __init__(
        self,
        rules: RulesConfig,
        clock: Clock,
        *,
        defaults: Defaults,
        console_url: str,
        on_notifications: asyncio.Event | None = None,
    ) -> None:
        self.rules = rules
        self.clock = clock
        self.defaults = defaults
        self.console_url = console_url
        self.on_notifications = on_notifications
        self.repo = AlertRepository()
        self.history_days = rules.health_drop.within_days
        self._wrote = 0

    def decode(self, record: Record) -> ScoreMessage:
        try:
            message = ScoreMessage.from_bytes(record.value)
        except ValidationError as err:
            raise PoisonRecord(f"not a score message: {err.error_count()} errors: {err}") from err
        if record.key is not None and record.key.decode(errors="replace") != message.account_id:
            raise PoisonRecord(
                f"key {record.key!r} is not the message's account_id {message.account_id!r}"
            )
        return message

    async def flush(self, session: AsyncSession, items: Sequence[ScoreMessage]) -> None:
        self._wrote = 0
        if not items:
            return
        now = self.clock.now()
        accounts = {m.account_id for m in items}
        rows = await self.repo.load(session, accounts)
        since = min(m.as_of for m in items) - timedelta(days=self.history_days)
        points = await self.repo.history(session, accounts, since)
        decided: list[tuple[Alert, Notification]] = []
        for snapshot in items:
            history = ScoreHistory(points=tuple(points[snapshot.account_id]))
            for finding in evaluate(snapshot, history, self.rules):
                key: AlertKey = (snapshot.account_id, finding.rule, finding.feature)
                row = rows.get(key)
                step = transition(
                    state_of(row) if row is not None else AlertState(), finding, now, self.rules
                )
                if not step.counted:
                    continue
                if row is None:
                    if step.state.status == "none":
                        continue  # a condition that never held: nothing to remember
                    row = rows[key] = self.repo.add(session, snapshot.account_id, finding, now)
                describe = finding.holds or step.state.status == "resolved"
                self.repo.apply(row, step.state, snapshot, finding, now, describe=describe)
                if step.action != "none":
                    alert_metrics.TRANSITIONS.labels(finding.rule, step.action).inc()
                    # Built now: a later snapshot of this batch may change the row again.
                    notification = build_notification(
                        row,
                        _KIND[step.action],
                        self.console_url,
                        snapshot.as_of,
                        renewal_date=snapshot.renewal_date,
                    )
                    decided.append((row, notification))
            # Later snapshots of the same account in this batch see this one as history.
            points[snapshot.account_id].append(ScorePoint.of(snapshot))
        alert_metrics.SNAPSHOTS.inc(len(items))
        await self.repo.record_scores(session, items)
        if not decided:
            return
        await session.flush()  # new alerts get their ids
        for row, pending in decided:
            notification = pending.model_copy(update={"alert_id": str(row.id)})
            where = destinations(
                row.csm_email,
                row.csm_slack,
                self.rules.rule(cast(RuleName, row.rule)).route,
                self.defaults,
                account_id=row.account_id,
            )
            if not where:
                alert_metrics.UNROUTED.labels(row.rule).inc()
                log.warning(
                    "alert %s (%s on %s) has nowhere to go: no CSM channel and no default",
                    row.id,
                    row.rule,
                    row.account_id,
                )
                continue
            hour = self.defaults.digest_hour_utc
            if hour is None:
                self.repo.enqueue(session, row, notification, where, now)
                self._wrote += len(where)
                continue
            immediate, addresses = digest_destinations(where)
            self.repo.enqueue(session, row, notification, immediate, now)
            self.repo.enqueue(
                session,
                row,
                notification,
                [(DIGEST_CHANNEL, a) for a in addresses],
                now,
                due_at=next_digest(now, hour),
            )
            self._wrote += len(immediate)

    async def after_commit(self, items: Sequence[ScoreMessage]) -> None:
        if self._wrote and self.on_notifications is not None:
            self.on_notifications.set()


class AlertsService:
    """All of the alerts service's background work, for ``tend alerts`` and ``tend up``."""

    def __init__(
        self,
        bus: Bus,
        sessions: async_sessionmaker[AsyncSession],
        producer: Producer,
        rules: RulesConfig,
        clock: Clock,
        *,
        defaults: Defaults,
        console_url: str,
        dispatcher: Dispatcher | None,
        group_id: str = GROUP_ID,
        max_records: int = 500,
        max_wait_s: float = 0.2,
        retention: timedelta = timedelta(days=30),
    ) -> None:
        self.sessions = sessions
        self.dispatcher = dispatcher
        self.clock = clock
        self.retention = retention
        # health_drop looks back at most 90 days; keep a little more.
        self.score_history = timedelta(days=max(rules.health_drop.within_days, 7) + 7)
        self.handler = AlertsHandler(
            rules,
            clock,
            defaults=defaults,
            console_url=console_url,
            on_notifications=dispatcher.wake_event if dispatcher is not None else None,
        )
        self.consumer: BatchConsumer[ScoreMessage] = BatchConsumer(
            bus,
            sessions,
            group_id=group_id,
            topics=[topics.SCORES],
            handler=self.handler,
            dlq_topic=topics.SCORES_DLQ,
            producer=producer,
            max_records=max_records,
            max_wait_s=max_wait_s,
        )

    async def purge_once(self) -> tuple[int, int]:
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            return await self.handler.repo.purge(
                session,
                delivered_before=now - self.retention,
                scores_before=(now - self.score_history).date(),
            )

    async def purge_loop(self, stop: asyncio.Event, interval_s: float = 3600.0) -> None:
        while not stop.is_set():
            try:
                outbox, points = await self.purge_once()
                if outbox or points:
                    log.info("purged %d delivered notifications, %d score points", outbox, points)
            except Exception:
                log.exception("purging the outbox failed; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [
            asyncio.create_task(self.consumer.run(stop), name="alerts-consumer"),
            asyncio.create_task(self.purge_loop(stop), name="alerts-purge"),
        ]
        if self.dispatcher is not None:
            tasks.append(asyncio.create_task(self.dispatcher.run(stop), name="alerts-dispatcher"))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                if t.exception() is not None:
                    stop.set()
                    raise t.exception()  # type: ignore[misc]
        finally:
            stop.set()
            if self.dispatcher is not None:
                self.dispatcher.wake()
            for t in tasks:
                if not t.done():
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.wait_for(t, 30)

"""The alerts service as a process: consume ``tend.scores.v1`` into alert state and the outbox.

``AlertsService.run`` runs two loops until ``stop`` is set: the batch consumer (score snapshots
-> rules -> life cycle -> alert rows and outbox rows, with the offsets, in one transaction; see
:mod:`shared.consumer`) and the :class:`~services.alerts.dispatcher.Dispatcher`, woken after
each commit that wrote notifications.

Replicas share the work by partition: alert state is written only by the consumer, for the
accounts of the ``tend.scores.v1`` partitions it owns; the purge of old outbox rows and score
points runs on the owner of partition 0 only (:meth:`shared.ownership.Ownership.leads`); the
dispatchers of all replicas share the outbox row by row (``FOR UPDATE SKIP LOCKED``, see
:mod:`services.alerts.dispatcher`), since a CSM's digest gathers accounts of every partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import metrics as alert_metrics
from services.alerts.dispatcher import Dispatcher
from services.alerts.notifiers.base import Notification, NotificationKind
from services.alerts.routing import (
    DIGEST_CHANNEL,
    Defaults,
    destinations,
    digest_destinations,
    next_digest,
)
from services.alerts.rules import (
    READS_OTHER_DAYS,
    RULES,
    Finding,
    ScoreHistory,
    ScorePoint,
    evaluate,
    judge_again,
    worst_move,
)
from services.alerts.state import (
    AlertRepository,
    Mover,
    build_notification,
    day_state_of,
    decode_findings,
    decode_states,
    encode_findings,
    encode_states,
    group_notification,
)
from services.alerts.webhooks import WebhookDispatcher
from shared import topics
from shared.alert_rules import RULE_NAMES, RuleName, RulesConfig
from shared.alerting.cancellation import load_cancellations, resolve_cancelled_alerts
from shared.alerting.lifecycle import AlertState, DayState, Episode, Key, present, replay
from shared.alerting.state import state_of
from shared.bus.base import Bus, Producer, Record
from shared.clock import Clock
from shared.consumer import BatchConsumer, PoisonRecord, RunnerOptions
from shared.db.models import Alert, AlertScorePoint
from shared.ownership import Ownership
from shared.scores import ScoreMessage
from shared.service_app import run_loops
from shared.webhooks.endpoints import WebhooksConfig
from shared.webhooks.outbox import (
    AlertChange,
    enqueue,
    record_alert_changes,
    record_cancelled_alerts,
)
from shared.webhooks.payload import band_event

log = logging.getLogger(__name__)

GROUP_ID = "tend-alerts"

UNSENT_EMAIL_OFF = (
    "not sent: email is off (TEND_SMTP_HOST is not set) and there is no Slack channel "
    "(the account's csm_slack or TEND_SLACK_WEBHOOK_URL)"
)
UNSENT_NO_CHANNEL = (
    "not sent: no CSM channel and no default (set the account's csm_email or csm_slack, "
    "TEND_ALERTS__DEFAULT_EMAILS or TEND_SLACK_WEBHOOK_URL)"
)

LEADER_CHECK_S = 30.0
"""How often a replica that does not purge checks whether it now owns partition 0."""

_RULE_ORDER = {name: i for i, name in enumerate(RULES)}
"""Findings of a day are stored in the order :func:`evaluate` gives them."""

_KIND: dict[str, NotificationKind] = {
    "notify_open": "open",
    "notify_repeat": "repeat",
    "notify_resolve": "resolve",
}


def _point(p: AlertScorePoint) -> ScorePoint:
    return ScorePoint.model_validate(
        {"as_of": p.as_of, "score": p.score, "band": p.band, "scorecard": p.scorecard}
    )


def _placeholder(row: Alert, as_of: date) -> Finding:
    """A finding that changes nothing of the row's explanation (describe=False)."""
    return Finding.model_validate(
        {
            "rule": row.rule,
            "feature": row.feature,
            "as_of": as_of,
            "holds": False,
            "severity": row.severity,
            "reason": row.reason,
            "next_step": row.next_step,
        }
    )


def _explained_before(stored: Sequence[AlertScorePoint], first: date, key: Key) -> Finding | None:
    """The finding that explains an alert still open (or pending) when no day from ``first``
    on does (they all cleared, and not for long enough): its latest holding day before
    ``first``. The row may hold the explanation of a later day of an earlier version of the
    scores, which the replay has just replaced."""
    for p in reversed(stored):
        if p.as_of >= first:
            continue
        for f in decode_findings(p.findings)[0]:
            if (f.rule, f.feature) == key and f.holds:
                return f
    return None


@dataclass(slots=True)
class _Replayed:
    """One account's share of a batch: its stored days and episodes, and what to notify."""

    days: list[dict[str, Any]]
    episodes: list[Episode]
    decided: list[tuple[Alert, Notification]] = field(default_factory=list)
    changes: list[AlertChange] = field(default_factory=list)
    """Alert rows changed in the present, with their state before (webhooks)."""
    band_change: dict[str, Any] | None = None
    """A ``score.band_changed`` event (webhooks)."""


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
        webhooks: WebhooksConfig | None = None,
        on_webhooks: asyncio.Event | None = None,
    ) -> None:
        self.rules = rules
        # Webhook events are only worked out when an endpoint exists.
        self.webhooks = webhooks if webhooks is not None and webhooks.endpoints else None
        self.on_webhooks = on_webhooks
        self._hooked = 0
        self.clock = clock
        self.defaults = defaults
        self.console_url = console_url
        self.on_notifications = on_notifications
        self.repo = AlertRepository()
        self.history_days = rules.health_drop.within_days
        self.lookback = timedelta(days=lookback_days(rules))
        self._wrote = 0
        self._warned_unrouted: set[str] = set()
        """Accounts whose undeliverable alerts were warned about (once per process each)."""

    def decode(self, record: Record) -> ScoreMessage:
        try:
            message = ScoreMessage.from_bytes(record.value)
        except ValidationError as err:
            raise PoisonRecord(f"not a score message: {err.error_count()} errors: {err}") from err
        except Exception as err:  # any producer may write onto the topic: never stop on it
            raise PoisonRecord(f"not a score message: {type(err).__name__}: {err}") from err
        if record.key is not None and record.key.decode(errors="replace") != message.account_id:
            raise PoisonRecord(
                f"key {record.key!r} is not the message's account_id {message.account_id!r}"
            )
        return message

    async def flush(self, session: AsyncSession, items: Sequence[ScoreMessage]) -> None:
        self._wrote = self._hooked = 0
        alert_metrics.SNAPSHOTS.inc(len(items))
        # A provisional score (today, incomplete) is never judged: only final days count.
        final = [m for m in items if not m.provisional]
        if not final:
            return
        now = self.clock.now()
        # A cancelled account raises nothing: its scores of days it is cancelled, and any
        # while it is cancelled today, are not judged, and its active alerts resolve.
        cancelled = await load_cancellations(session, {m.account_id for m in final})
        if cancelled:
            today = now.date()
            final = [
                m
                for m in final
                if not cancelled.on(m.account_id, m.as_of) and not cancelled.on(m.account_id, today)
            ]
            ended = await resolve_cancelled_alerts(session, cancelled.cancelled_on(today), now)
            self._hooked += await record_cancelled_alerts(session, self.webhooks, ended, now)
            if not final:
                return
        by_account: dict[str, dict[date, ScoreMessage]] = {}
        for m in final:  # offset order: the last message of an (account, day) wins
            by_account.setdefault(m.account_id, {})[m.as_of] = m
        rows = await self.repo.load(session, by_account)
        own: dict[str, dict[tuple[str, str], Alert]] = {a: {} for a in by_account}
        for (account_id, rule, feature), row in rows.items():
            own[account_id][(rule, feature)] = row
        firsts = {a: min(days) for a, days in by_account.items()}
        stored = await self.repo.days(session, {a: d - self.lookback for a, d in firsts.items()})
        day_rows: list[dict[str, Any]] = []
        episodes: dict[str, list[Episode]] = {}
        decided: list[tuple[Alert, Notification]] = []
        changes: list[AlertChange] = []
        bands: list[dict[str, Any]] = []
        checkpoints: dict[str, AlertScorePoint] = {}
        for account, first in firsts.items():
            loaded = [p for p in stored[account] if p.as_of < first and p.states]
            if loaded:
                checkpoints[account] = loaded[-1]
        # Accounts new to the batch's window (first days, long gaps): one query for them all.
        missing = {a: d for a, d in firsts.items() if a not in checkpoints}
        checkpoints.update(await self.repo.checkpoints(session, missing))
        for account in sorted(by_account):
            replayed = self._replay(
                session,
                account,
                by_account[account],
                stored[account],
                checkpoints.get(account),
                own[account],
                now,
            )
            day_rows += replayed.days
            episodes[account] = replayed.episodes
            decided += replayed.decided
            changes += replayed.changes
            bands += [replayed.band_change] if replayed.band_change else []
        await self.repo.save_days(session, day_rows)
        # An account without alert rows has no episodes (an episode opened a row): skip it.
        await self.repo.save_episodes(
            session, {a: d for a, d in firsts.items() if own[a] or episodes[a]}, episodes
        )
        if not decided and not changes and not bands:
            return
        await session.flush()  # new alerts get their ids
        if self.webhooks is not None:
            self._hooked += record_alert_changes(session, self.webhooks, changes, now)
            self._hooked += sum(enqueue(session, self.webhooks, e, now) for e in bands)
        self._enqueue(session, decided, now)

    def _replay(
        self,
        session: AsyncSession,
        account: str,
        messages: dict[date, ScoreMessage],
        stored: list[AlertScorePoint],
        checkpoint: AlertScorePoint | None,
        own: dict[tuple[str, str], Alert],
        now: datetime,
    ) -> _Replayed:
        """Judge the account's new days, replay its alert state from the first of them through
        its latest stored day (``stored``: its days from a little before the first on), and
        bring its alert rows to the present."""
        first = min(messages)
        points = {p.as_of: _point(p) for p in stored}
        findings: dict[date, list[Finding]] = {}
        movers: dict[date, Mover | None] = {}
        for p in stored:
            if p.as_of >= first:
                findings[p.as_of], movers[p.as_of] = decode_findings(p.findings)
        for day in sorted(messages):
            points[day] = ScorePoint.of(messages[day])
        for day in sorted(messages):
            history = ScoreHistory(points=tuple(points[d] for d in sorted(points) if d < day))
            findings[day] = evaluate(messages[day], history, self.rules)
            movers[day] = worst_move(messages[day])
        self._judge_again(findings, points, movers, messages.keys())

        if checkpoint is not None and checkpoint.states is not None:
            start = decode_states(checkpoint.states)
        else:
            start = {
                k: day_state_of(r)
                for k, r in own.items()
                if r.last_evaluated_as_of is not None and r.last_evaluated_as_of < first
            }
        manual = {k: r.manual_resolved_on for k, r in own.items() if r.manual_resolved_on}
        days = sorted(findings)
        result = replay(
            start,
            [(d, {(f.rule, f.feature): f.holds for f in findings[d]}) for d in days],
            lambda rule: self.rules.policy(cast(RuleName, rule)),
            manual,
        )
        episodes = result.episodes + self._ended_before(start, first, result.episodes)
        out = _Replayed(
            days=[
                {
                    "account_id": account,
                    "as_of": d,
                    "score": points[d].score,
                    "band": points[d].band,
                    "scorecard": points[d].scorecard,
                    "findings": encode_findings(findings[d], movers.get(d)),
                    "states": encode_states(result.days[d]),
                }
                for d in days
            ],
            episodes=sorted(episodes, key=lambda e: (e.rule, e.feature, e.started_on)),
        )

        latest = days[-1]
        profile = messages[max(messages)]
        in_present = latest >= self.clock.now().date() - timedelta(days=self.rules.present_days)
        if self.webhooks is not None and in_present:
            before = stored[-1] if stored else checkpoint
            out.band_change = self._band_change(before, points[max(points)], profile, now)
        latest_finding: dict[tuple[str, str], Finding] = {}
        described = self._descriptions(findings, result.days)
        for d in days:
            latest_finding.update({(f.rule, f.feature): f for f in findings[d]})
        for key, day_state in sorted(result.final.items()):
            row = own.get(key)
            finding = latest_finding.get(key)
            if row is None and (day_state.status == "none" or finding is None):
                continue  # a condition that never held: nothing to remember
            rule = cast(RuleName, key[0])
            step = present(
                state_of(row) if row is not None else AlertState(),
                day_state,
                now,
                self.rules.policy(rule),
                in_present=in_present,
            )
            text = described.get(key)
            if finding is not None and step.state.status in ("resolved", "none"):
                text = finding
            elif text is None and day_state.status in ("open", "pending"):
                text = _explained_before(stored, first, key)
            if row is None:
                assert finding is not None
                row = own[key] = self.repo.add(session, account, text or finding, now)
            self.repo.apply(
                row,
                step.state,
                profile,
                text or finding or _placeholder(row, latest),
                now,
                describe=text is not None,
                point=points[latest],
            )
            if self.webhooks is not None and in_present and step.changed:
                out.changes.append((row, step.previous))
            if step.reopened:
                alert_metrics.REOPENED.labels(rule).inc()
            if step.action != "none":
                alert_metrics.TRANSITIONS.labels(rule, step.action).inc()
                notification = build_notification(
                    row,
                    _KIND[step.action],
                    self.console_url,
                    latest,
                    renewal_date=profile.renewal_date,
                )
                out.decided.append((row, notification))
        return out

    @staticmethod
    def _descriptions(
        findings: Mapping[date, list[Finding]], states: Mapping[date, Mapping[Key, DayState]]
    ) -> dict[Key, Finding]:
        """Each alert's explanation: its latest finding that held, or that left it resolved
        (or at rest). An open alert keeps saying why it fired through the days that have not
        cleared it yet, whether those days came in one batch or one by one."""
        out: dict[Key, Finding] = {}
        for day in sorted(findings):
            for f in findings[day]:
                key = (f.rule, f.feature)
                if f.holds or states[day][key].status in ("resolved", "none"):
                    out[key] = f
        return out

    def _ended_before(
        self, start: Mapping[Key, DayState], first: date, replayed: Sequence[Episode]
    ) -> list[Episode]:
        """The episodes that had ended before ``first`` (as the checkpoint says) and that a
        return on or after ``first`` could have continued, when the replay did not continue
        them: as they ended.

        The stored episodes open on or after ``first`` are replaced by the replay's, and an
        earlier version of the scores may have continued one of these (a return within the
        cool-down: ``resolved_on`` cleared, ``reopenings`` + 1); if the new version does not,
        the replay never sees it open, so it is written again here as it ended, not lost."""
        seen = {(e.rule, e.feature, e.started_on) for e in replayed}
        out: list[Episode] = []
        for (rule, feature), s in start.items():
            if (
                s.started_on is None
                or s.opened_on is None
                or s.resolved_on is None
                or s.status == "open"
                or (rule, feature, s.started_on) in seen
            ):
                continue
            p = self.rules.policy(cast(RuleName, rule))
            # A return that continues it starts within the cool-down of the resolve, and may
            # have begun to hold up to for_days before first.
            if (first - s.resolved_on).days > p.reopen_cooldown_days + p.for_days:
                continue
            out.append(
                Episode(
                    rule,
                    feature,
                    s.started_on,
                    s.opened_on,
                    s.resolved_on,
                    s.resolved_by,
                    s.reopenings,
                )
            )
        return out

    def _judge_again(
        self,
        findings: dict[date, list[Finding]],
        points: Mapping[date, ScorePoint],
        movers: Mapping[date, Mover | None],
        new: Collection[date],
    ) -> None:
        """Judge the stored days that compare with a new day again, with the rules that read
        other days (:data:`~services.alerts.rules.READS_OTHER_DAYS`: ``health_drop``).

        A re-score that changes day D's score publishes D (and D + 1, whose previous score
        moved), not the later days whose own score stayed the same; their verdicts, stored
        when they were judged against the old D, would stay stale. So would those of days that
        arrived before D did. Judged again from their stored score and mover, they say what an
        in-order pass would have said."""
        reach = timedelta(days=self.rules.health_drop.within_days)
        for day in sorted(findings):
            if day in new or not any(day - reach <= d < day for d in new):
                continue
            history = ScoreHistory(points=tuple(points[d] for d in sorted(points) if d < day))
            again = judge_again(points[day], movers.get(day), history, self.rules)
            kept = [f for f in findings[day] if f.rule not in READS_OTHER_DAYS]
            findings[day] = sorted([*kept, *again], key=lambda f: _RULE_ORDER[f.rule])

    @staticmethod
    def _band_change(
        before: AlertScorePoint | None, latest: ScorePoint, profile: ScoreMessage, now: datetime
    ) -> dict[str, Any] | None:
        """The account's latest day's band against the latest day stored before the batch;
        an account's first score is not a change."""
        if before is None or before.band == latest.band or before.as_of > latest.as_of:
            return None
        return band_event(
            {"id": profile.account_id, "name": profile.name, "mrr": profile.mrr,
             "csm_email": profile.csm_email},
            as_of=latest.as_of, score=latest.score, band=latest.band,
            previous_as_of=before.as_of, previous_score=before.score,
            previous_band=before.band, now=now,
        )  # fmt: skip

    def _enqueue(
        self, session: AsyncSession, decided: list[tuple[Alert, Notification]], now: datetime
    ) -> None:
        """One outbox row per account and destination for everything decided together: the
        account's newly open, still open and resolved alerts in one message."""
        groups: dict[tuple[str, str, str], list[tuple[Alert, Notification]]] = {}
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
                reason = self._unrouted(row)
                self.repo.record_unrouted(session, row, notification, reason, now)
                continue
            targets: list[tuple[str, str]] = list(where)
            if self.defaults.digest_hour_utc is not None:
                immediate, addresses = digest_destinations(where)
                targets = [*immediate, *((DIGEST_CHANNEL, a) for a in addresses)]
            for channel, destination in targets:
                groups.setdefault((row.account_id, channel, destination), []).append(
                    (row, notification)
                )
        hour = self.defaults.digest_hour_utc
        for (_, target, destination), members in groups.items():
            lead, notification = group_notification(members)
            if hour is not None and target == DIGEST_CHANNEL:
                self.repo.enqueue(
                    session,
                    lead,
                    notification,
                    [(DIGEST_CHANNEL, destination)],
                    now,
                    due_at=next_digest(now, hour),
                )
                continue
            self.repo.enqueue(session, lead, notification, [(target, destination)], now)
            self._wrote += 1

    def _unrouted(self, row: Alert) -> str:
        """Why the alert's notification goes nowhere, recorded in its outbox row. When email
        is off that is said once at start (``email_off_notice``); otherwise warned once per
        account and process, not once per alert."""
        route = self.rules.rule(cast(RuleName, row.rule)).route
        emails = row.csm_email or self.defaults.emails or (route is not None and route.emails)
        if emails and not self.defaults.email_enabled:
            log.debug("alert %s of %s not sent: email is off", row.id, row.account_id)
            return UNSENT_EMAIL_OFF
        if row.account_id not in self._warned_unrouted:
            self._warned_unrouted.add(row.account_id)
            log.warning(
                "alerts of %s have nowhere to go: %s (said once per account)",
                row.account_id,
                UNSENT_NO_CHANNEL,
                extra={"alert_id": row.id, "rule": row.rule, "account_id": row.account_id},
            )
        return UNSENT_NO_CHANNEL

    async def after_commit(self, items: Sequence[ScoreMessage]) -> None:
        if self._wrote and self.on_notifications is not None:
            self.on_notifications.set()
        if self._hooked and self.on_webhooks is not None:
            self.on_webhooks.set()


def lookback_days(rules: RulesConfig) -> int:
    """How many days before a batch's first day the stored days are read: ``health_drop``'s
    window (what a new day is judged against), or the longest ``keep_firing_for_days`` if
    longer (an alert still open was explained by a day at most that many scored days back)."""
    keep = max(rules.policy(name).keep_firing_for_days for name in RULE_NAMES)
    return max(rules.health_drop.within_days, keep, 1)


def kept_score_days(rules: RulesConfig, rescore_horizon_days: int) -> timedelta:
    """How far back score points must be kept so that no purge changes an alert history.

    The scorer re-publishes days up to ``rescore_horizon_days`` back (its
    ``TEND_SCORER__RESCORE_HORIZON_DAYS``); replaying such a day needs the checkpoint of the day
    before and the days read before it (:func:`lookback_days`). A purge that cut into those would
    let a re-score replay across a gap, so the result would depend on when the purge ran. At
    least 90 days are kept, and a week of margin on top (the purge runs hourly)."""
    reach = rescore_horizon_days + lookback_days(rules) + 1
    return timedelta(days=max(reach, 90) + 7)


class AlertsService:
    """All of the alerts service's background work, for ``tend alerts`` and ``tend up``.

    ``rescore_horizon_days`` is the scorer's re-score horizon: score points within reach of a
    re-score are never purged (see :func:`kept_score_days`)."""

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
        webhooks: WebhookDispatcher | None = None,
        group_id: str = GROUP_ID,
        max_records: int = 500,
        max_wait_s: float = 0.2,
        retention: timedelta = timedelta(days=30),
        runner: RunnerOptions | None = None,
        rescore_horizon_days: int = 35,
    ) -> None:
        self.sessions = sessions
        self.dispatcher = dispatcher
        self.webhooks = webhooks
        self.clock = clock
        self.retention = retention
        self.ownership = Ownership(topics.SCORES)
        self.score_history = kept_score_days(rules, rescore_horizon_days)
        """How long score points (the replay's checkpoints and judged days) are kept."""
        self.handler = AlertsHandler(
            rules,
            clock,
            defaults=defaults,
            console_url=console_url,
            on_notifications=dispatcher.wake_event if dispatcher is not None else None,
            webhooks=webhooks.hooks if webhooks is not None else None,
            on_webhooks=webhooks.wake_event if webhooks is not None else None,
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
            options=runner,
            ownership=self.ownership,
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
            if not self.ownership.leads():
                # Another replica purges (the owner of partition 0).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), min(interval_s, LEADER_CHECK_S))
                continue
            try:
                outbox, points = await self.purge_once()
                if outbox or points:
                    log.info(
                        "purged %d delivered notifications, %d score points",
                        outbox,
                        points,
                        extra={"notifications": outbox, "score_points": points},
                    )
            except Exception:
                log.exception("purging the outbox failed; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)

    async def run(self, stop: asyncio.Event) -> None:
        loops = {
            "alerts-consumer": self.consumer.run(stop),
            "alerts-purge": self.purge_loop(stop),
        }
        if self.dispatcher is not None:
            loops["alerts-dispatcher"] = self.dispatcher.run(stop)
        if self.webhooks is not None:
            loops["alerts-webhooks"] = self.webhooks.run(stop)
        await run_loops(stop, loops)

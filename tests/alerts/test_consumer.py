"""The alerts consumer on real PostgreSQL: snapshots -> rules -> life cycle -> alert rows and
outbox rows in the batch's transaction; and the whole service on the in-process bus."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.consumer import (
    UNSENT_EMAIL_OFF,
    UNSENT_NO_CHANNEL,
    AlertsHandler,
    AlertsService,
)
from services.alerts.dispatcher import Dispatcher
from services.alerts.notifiers.slack import SlackNotifier
from services.alerts.routing import Defaults, next_digest
from shared import topics
from shared.alert_rules import RulesConfig
from shared.bus.base import Message, Record
from shared.bus.memory import InProcessBus
from shared.clock import FixedClock
from shared.consumer import PoisonRecord
from shared.db.migrate import upgrade_async
from shared.db.models import Alert, AlertNotification, BusRecord, ConsumerOffset
from shared.db.session import create_engine, create_sessionmaker
from shared.scores import ScoreMessage
from tests.alerts.snapshots import (
    DAY0,
    DEFAULT_WEBHOOK,
    alerts_of,
    create_defaults,
    create_snapshot,
    only_rules,
    outbox_of,
    unique_account,
)
from tests.support.postgres import create_database, drop_database
from tests.support.servers import SlackWebhookServer

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
DORMANT = only_rules("dormant")


def create_handler(
    clock: FixedClock | None = None,
    rules: RulesConfig = DORMANT,
    defaults: Defaults | None = None,
) -> AlertsHandler:
    return AlertsHandler(
        rules,
        clock or FixedClock(T0),
        defaults=defaults or create_defaults(),
        console_url="http://console.example",
    )


async def flush(
    sessions: async_sessionmaker[AsyncSession],
    handler: AlertsHandler,
    snapshots: Sequence[ScoreMessage],
) -> None:
    async with sessions() as session, session.begin():
        await handler.flush(session, snapshots)


class TestDecode:
    def test_a_score_message_decodes(self) -> None:
        snap = create_snapshot("a1")
        record = Record(topics.SCORES, 0, 0, snap.to_bytes(), key=b"a1")
        assert create_handler().decode(record) == snap

    @pytest.mark.parametrize(
        ("value", "key"),
        [
            (b"", None),
            (b"not json", None),
            (b'{"account_id": "a1"}', b"a1"),
            (create_snapshot("a1").to_bytes(), b"someone-else"),
        ],
    )
    def test_poison_is_refused(self, value: bytes, key: bytes | None) -> None:
        with pytest.raises(PoisonRecord):
            create_handler().decode(Record(topics.SCORES, 0, 0, value, key=key))


class TestHysteresisAndDedup:
    async def test_fires_on_the_second_holding_day_with_one_outbox_row_per_channel(
        self, db: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account()
        handler = create_handler()
        await flush(db, handler, [create_snapshot(account, 0)])
        [alert] = await alerts_of(db, account)
        assert (alert.status, alert.consecutive_holds) == ("pending", 1)
        assert await outbox_of(db, account) == []

        await flush(db, handler, [create_snapshot(account, 1)])
        [alert] = await alerts_of(db, account)
        assert alert.status == "open"
        assert alert.rule == "dormant" and alert.feature == ""
        assert alert.severity == "critical"
        assert "no login for 20 days" in alert.reason
        assert alert.opened_at == T0
        outbox = await outbox_of(db, account)
        assert sorted((n.channel, n.destination, n.kind) for n in outbox) == [
            ("email", "dana@vendor.example", "open"),
            ("slack", DEFAULT_WEBHOOK, "open"),
        ]
        payload = outbox[0].payload
        assert payload["alert_id"] == str(alert.id)
        assert payload["console_url"] == f"http://console.example/accounts/{account}"
        assert payload["as_of"] == "2026-11-03"
        assert all(n.status == "pending" and n.attempts == 0 for n in outbox)

    @pytest.mark.parametrize("times", [2, 3])
    async def test_the_same_as_of_counts_once(
        self, db: async_sessionmaker[AsyncSession], times: int
    ) -> None:
        account = unique_account()
        handler = create_handler()
        for _ in range(times):  # a re-published score of the same day, batch after batch
            await flush(db, handler, [create_snapshot(account, 0)])
        # ... and twice within one batch
        await flush(db, handler, [create_snapshot(account, 0)] * times)
        [alert] = await alerts_of(db, account)
        assert (alert.status, alert.consecutive_holds) == ("pending", 1)
        assert await outbox_of(db, account) == []

    async def test_one_alert_per_key_however_long_it_holds(
        self, db: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account()
        clock = FixedClock(T0)
        handler = create_handler(clock)
        for day in range(6):
            await flush(db, handler, [create_snapshot(account, day)])
            clock.advance(timedelta(days=1))
        alerts = await alerts_of(db, account)
        assert [(a.rule, a.status, a.consecutive_holds) for a in alerts] == [("dormant", "open", 6)]
        assert [n.kind for n in await outbox_of(db, account)] == ["open", "open"]

    async def test_an_unacknowledged_alert_repeats_after_the_interval(
        self, db: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account()
        clock = FixedClock(T0)
        handler = create_handler(clock, defaults=create_defaults(email_enabled=False))
        for day in range(9):
            await flush(db, handler, [create_snapshot(account, day)])
            clock.advance(timedelta(days=1))
        assert [n.kind for n in await outbox_of(db, account)] == ["open", "repeat"]

    async def test_clear_days_resolve_and_notify(
        self, db: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account()
        clock = FixedClock(T0)
        handler = create_handler(clock, defaults=create_defaults(email_enabled=False))
        # holds, holds (open), clears, holds, clears x3 (keep_firing_for_days 3: resolved)
        days = [20, 20, 3, 20, 3, 3, 3]
        for i, d in enumerate(days):
            await flush(db, handler, [create_snapshot(account, i, dormant_days=d)])
            clock.advance(timedelta(days=1))
        [alert] = await alerts_of(db, account)
        assert (alert.status, alert.resolved_by) == ("resolved", "condition")
        assert (alert.started_on, alert.opened_on, alert.resolved_on) == (
            DAY0,
            DAY0 + timedelta(days=1),
            DAY0 + timedelta(days=6),
        )
        assert "no login for 3 days" in alert.reason  # why it resolved
        outbox = await outbox_of(db, account)
        assert [n.kind for n in outbox] == ["open", "resolve"]
        assert "no login for 20 days" in outbox[0].payload["reason"]
        assert outbox[0].payload["as_of"] == "2026-11-03"
        assert "no login for 3 days" in outbox[1].payload["reason"]
        assert outbox[1].payload["alert_id"] == str(alert.id)

    async def test_an_episode_that_ends_within_one_batch_is_recorded_not_notified(
        self, db: async_sessionmaker[AsyncSession]
    ) -> None:
        # New semantics (issue 10): only what is open as of the latest day is notified.
        account = unique_account()
        handler = create_handler(defaults=create_defaults(email_enabled=False))
        days = [20, 20, 3, 20, 3, 3, 3]
        await flush(
            db,
            handler,
            [create_snapshot(account, i, dormant_days=d) for i, d in enumerate(days)],
        )
        [alert] = await alerts_of(db, account)
        assert (alert.status, alert.notifications) == ("resolved", 0)
        assert await outbox_of(db, account) == []
        async with db() as session:
            [episode] = await handler.repo.episodes(session, account)
        assert (episode.started_on, episode.opened_on, episode.resolved_on) == (
            DAY0,
            DAY0 + timedelta(days=1),
            DAY0 + timedelta(days=6),
        )

    async def test_a_healthy_account_leaves_no_rows(
        self, db: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account()
        handler = create_handler()
        snaps = [create_snapshot(account, d, dormant_days=1) for d in range(5)]
        await flush(db, handler, snaps)
        assert await alerts_of(db, account) == []


class TestOutboxTransaction:
    async def test_a_rolled_back_batch_leaves_neither_alert_nor_outbox(
        self, db: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account()
        handler = create_handler()
        snaps = [create_snapshot(account, 0), create_snapshot(account, 1)]
        with pytest.raises(RuntimeError):
            async with db() as session, session.begin():
                await handler.flush(session, snaps)
                assert await session.scalar(
                    select(func.count())
                    .select_from(AlertNotification)
                    .join(Alert)
                    .where(Alert.account_id == account)
                )
                raise RuntimeError("the database went away before the commit")
        assert await alerts_of(db, account) == []
        assert await outbox_of(db, account) == []
        # The retried batch decides the same thing again, exactly once.
        await flush(db, handler, snaps)
        [alert] = await alerts_of(db, account)
        assert alert.status == "open"
        assert len(await outbox_of(db, account)) == 2


class TestRouting:
    async def test_csm_webhook_and_email_win_over_the_defaults(
        self, db: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account()
        hook = "https://hooks.slack.example/services/T1/B1/csm"
        defaults = create_defaults(
            emails=("team@vendor.example",), slack_webhook_hosts=("hooks.slack.example",)
        )
        handler = create_handler(defaults=defaults)
        await flush(
            db,
            handler,
            [create_snapshot(account, d, csm_slack=hook, csm_email="jo@v.example") for d in (0, 1)],
        )
        assert sorted((n.channel, n.destination) for n in await outbox_of(db, account)) == [
            ("email", "jo@v.example"),
            ("slack", hook),
        ]

    async def test_without_csm_the_default_email_list(
        self, db: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account()
        handler = create_handler(
            defaults=create_defaults(slack_webhook_url=None, emails=("a@v.example", "b@v.example"))
        )
        await flush(db, handler, [create_snapshot(account, d, csm_email=None) for d in (0, 1)])
        assert [(n.channel, n.destination) for n in await outbox_of(db, account)] == [
            ("email", "a@v.example, b@v.example")
        ]

    async def test_a_rule_route_replacing_the_csm(
        self, db: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account()
        rules = only_rules(
            "dormant",
            dormant={"route": {"emails": ["exec@v.example"], "replace_csm": True}},
        )
        handler = create_handler(rules=rules)
        await flush(db, handler, [create_snapshot(account, d) for d in (0, 1)])
        assert [(n.channel, n.destination) for n in await outbox_of(db, account)] == [
            ("email", "exec@v.example")
        ]

    async def test_nowhere_to_go_still_opens_the_alert(
        self, db: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account()
        handler = create_handler(defaults=Defaults())
        await flush(db, handler, [create_snapshot(account, d, csm_email=None) for d in (0, 1)])
        [alert] = await alerts_of(db, account)
        assert alert.status == "open"
        # Recorded, never dispatched: the alert's deliveries say where it went (nowhere, why).
        [unsent] = await outbox_of(db, account)
        assert (unsent.channel, unsent.destination, unsent.status) == ("none", "", "unrouted")
        assert unsent.last_error == UNSENT_NO_CHANNEL

    async def test_email_off_is_the_reason_when_the_csm_has_an_email(
        self, db: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
    ) -> None:
        account = unique_account()
        handler = create_handler(defaults=Defaults(email_enabled=False))
        with caplog.at_level(logging.WARNING, logger="services.alerts.consumer"):
            await flush(db, handler, [create_snapshot(account, d) for d in (0, 1, 2)])
        [unsent] = await outbox_of(db, account)
        assert unsent.status == "unrouted" and unsent.last_error == UNSENT_EMAIL_OFF
        assert caplog.records == []  # said once at start, not per alert

    async def test_no_channel_is_warned_once_per_account(
        self, db: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
    ) -> None:
        accounts = [unique_account(), unique_account()]
        handler = create_handler(defaults=Defaults())
        with caplog.at_level(logging.WARNING, logger="services.alerts.consumer"):
            for day in range(4):
                await flush(
                    db, handler, [create_snapshot(a, day, csm_email=None) for a in accounts]
                )
        warned = [r.getMessage() for r in caplog.records]
        assert len(warned) == 2
        assert all("nowhere to go" in w and "TEND_SLACK_WEBHOOK_URL" in w for w in warned)


# -- the whole service on the in-process bus ----------------------------------------------------


@pytest_asyncio.fixture
async def own_db() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A database of its own: the service reads the whole scores topic from the start."""
    url = await create_database("tend_alerts")
    await upgrade_async(url)
    engine = create_engine(url)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()
        await drop_database(url)


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


class TestService:
    async def run_service(
        self,
        sessions: async_sessionmaker[AsyncSession],
        slack: SlackWebhookServer,
        until: Callable[[], Awaitable[bool]],
    ) -> None:
        bus = InProcessBus(sessions, 2)
        producer = bus.producer()
        await producer.start()
        notifier = SlackNotifier(timeout_s=2, min_interval_s=0)
        dispatcher = Dispatcher(sessions, {"slack": notifier}, FixedClock(T0), idle_s=0.1)
        service = AlertsService(
            bus,
            sessions,
            producer,
            DORMANT,
            FixedClock(T0),
            defaults=create_defaults(slack_webhook_url=slack.url(), email_enabled=False),
            console_url="http://console.example",
            dispatcher=dispatcher,
            max_wait_s=0.05,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        try:
            await wait_for(until)
        finally:
            stop.set()
            await task
            await producer.stop()
            await bus.close()

    async def test_poison_to_dlq_one_alert_one_post_and_a_replay_changes_nothing(
        self, own_db: async_sessionmaker[AsyncSession], slack: SlackWebhookServer
    ) -> None:
        account = unique_account()
        bus = InProcessBus(own_db, 2)
        producer = bus.producer()
        await producer.start()
        day0, day1 = create_snapshot(account, 0), create_snapshot(account, 1)
        await producer.publish(
            topics.SCORES,
            [
                Message(b"{not json", key=account.encode()),
                Message(day0.to_bytes(), key=account.encode()),
                Message(day1.to_bytes(), key=account.encode()),
            ],
        )

        async def posted() -> bool:
            sent = [n for n in await outbox_of(own_db, account) if n.status == "sent"]
            return len(slack.requests) >= 1 and len(sent) == 1

        await self.run_service(own_db, slack, posted)
        assert len(slack.requests) == 1
        blocks = slack.requests[0].json()
        assert account in str(blocks)

        dlq = bus.consumer("dlq-reader", [topics.SCORES_DLQ])
        await dlq.start()
        dead = await dlq.poll(max_records=10, timeout_s=1.0)
        await dlq.stop()
        assert [r.value for r in dead] == [b"{not json"]
        assert dict(dead[0].headers)["error"].startswith(b"PoisonRecord")

        # The scorer re-publishes the same day: nothing new is decided or sent.
        await producer.publish(topics.SCORES, [Message(day1.to_bytes(), key=account.encode())])
        await producer.stop()
        await bus.close()

        async def consumed() -> bool:
            return await _caught_up(own_db)

        await self.run_service(own_db, slack, consumed)
        [alert] = await alerts_of(own_db, account)
        assert (alert.status, alert.consecutive_holds) == ("open", 2)
        assert len(await outbox_of(own_db, account)) == 1
        assert len(slack.requests) == 1


async def _caught_up(sessions: async_sessionmaker[AsyncSession]) -> bool:
    """The alerts group's stored offsets are past every record of the scores topic."""
    async with sessions() as session:
        ends = await session.execute(
            select(BusRecord.partition, func.max(BusRecord.offset) + 1)
            .where(BusRecord.topic == topics.SCORES)
            .group_by(BusRecord.partition)
        )
        stored = await session.execute(
            select(ConsumerOffset.partition, ConsumerOffset.next_offset).where(
                ConsumerOffset.group_id == "tend-alerts",
                ConsumerOffset.topic == topics.SCORES,
            )
        )
        end_of = {int(p): int(e) for p, e in ends.all()}
        stored_of = {int(p): int(o) for p, o in stored.all()}
    return bool(end_of) and all(stored_of.get(p, 0) >= e for p, e in end_of.items())


class TestDigest:
    async def test_email_waits_for_the_digest_hour_one_row_per_address(
        self, db: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account()
        handler = create_handler(
            defaults=create_defaults(emails=("a@v.example", "b@v.example"), digest_hour_utc=8)
        )
        await flush(db, handler, [create_snapshot(account, d, csm_email=None) for d in (0, 1)])
        outbox = await outbox_of(db, account)
        assert [(n.channel, n.destination, n.next_attempt_at) for n in outbox] == [
            ("slack", DEFAULT_WEBHOOK, T0),
            ("email_digest", "a@v.example", datetime(2026, 11, 3, 8, 0, tzinfo=UTC)),
            ("email_digest", "b@v.example", datetime(2026, 11, 3, 8, 0, tzinfo=UTC)),
        ]


class TestNextDigest:
    @pytest.mark.parametrize(
        ("now", "expected"),
        [
            ("2026-11-02T07:59:59+00:00", "2026-11-02T08:00:00+00:00"),
            ("2026-11-02T08:00:00+00:00", "2026-11-02T08:00:00+00:00"),
            ("2026-11-02T08:00:01+00:00", "2026-11-03T08:00:00+00:00"),
            ("2026-11-02T09:30:00+02:00", "2026-11-02T08:00:00+00:00"),
            ("2026-12-31T23:00:00+00:00", "2027-01-01T08:00:00+00:00"),
        ],
    )
    def test_the_first_digest_hour_at_or_after_now(self, now: str, expected: str) -> None:
        got = next_digest(datetime.fromisoformat(now), 8)
        assert got == datetime.fromisoformat(expected)

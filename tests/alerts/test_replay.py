"""Alert history in event time through the consumer, on PostgreSQL and SQLite: score messages
arriving in different orders (a backfill in batches, all at once, shuffled, then re-scores of
past days) give the same alerts and episodes, and exactly the expected notifications; and an
account's alerts decided together go out as one Slack post and one email."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.app import build_service
from services.alerts.consumer import AlertsHandler
from services.alerts.dispatcher import Dispatcher
from services.alerts.notifiers.email import EmailNotifier, SmtpSettings
from services.alerts.notifiers.slack import SlackNotifier
from shared.alert_rules import RULE_NAMES
from shared.alerting.lifecycle import acknowledge, resolve
from shared.alerting.state import set_state, state_of
from shared.bus.memory import InProcessBus
from shared.clock import FixedClock
from shared.config import parse_config
from shared.db.models import Alert, AlertScorePoint
from shared.db.session import create_engine, create_sessionmaker
from shared.scores import ScoreMessage
from shared.settings import ScorerSettings, Settings
from tests.alerts.snapshots import (
    DAY0,
    alerts_of,
    create_defaults,
    create_snapshot,
    only_rules,
    outbox_of,
    unique_account,
)
from tests.support.servers import SlackWebhookServer, SmtpServer

pytestmark = pytest.mark.integration

DAYS = 60
NOW = datetime.combine(DAY0 + timedelta(days=DAYS), datetime.min.time(), UTC) + timedelta(hours=9)
"""Day 59 is yesterday: the latest final day."""
RULES = only_rules("dormant", "health_red")
WEBHOOK = "http://127.0.0.1:9/services/T0/B0/default"

SICK: dict[str, Any] = {"dormant_days": 20, "band": "red", "score": 31.0}
WELL: dict[str, Any] = {"dormant_days": 1, "band": "green", "score": 82.0}


def first_version(day: int) -> dict[str, Any]:
    """Sick on days 10-19 (an episode wholly in the past) and from day 45 on."""
    return SICK if 10 <= day <= 19 or day >= 45 else WELL


def rescored(day: int) -> dict[str, Any]:
    """Late events show the account was well until day 49: sick from day 50 on."""
    if day >= 40:
        return SICK if day >= 50 else WELL
    return first_version(day)


def scores(account: str, days: Sequence[int], version: Any) -> list[ScoreMessage]:
    return [create_snapshot(account, d, **version(d)) for d in days]


def create_handler(defaults: Any = None) -> AlertsHandler:
    return AlertsHandler(
        RULES,
        FixedClock(NOW),
        defaults=defaults or create_defaults(slack_webhook_url=WEBHOOK, email_enabled=False),
        console_url="http://console.example",
    )


async def feed(
    sessions: async_sessionmaker[AsyncSession],
    handler: AlertsHandler,
    messages: Sequence[ScoreMessage],
    batch: int,
) -> None:
    for i in range(0, len(messages), batch):
        async with sessions() as session, session.begin():
            await handler.flush(session, messages[i : i + batch])


async def table(sessions: async_sessionmaker[AsyncSession], account: str) -> list[tuple[Any, ...]]:
    """The alerts in event time (what must not depend on arrival order)."""
    return [
        (
            a.rule,
            a.status,
            a.started_on,
            a.opened_on,
            a.resolved_on,
            a.reopenings,
            a.consecutive_holds,
            a.consecutive_clears,
            a.last_evaluated_as_of,
            a.as_of,
            a.band,
            a.reason,
        )
        for a in await alerts_of(sessions, account)
    ]


async def episodes(
    sessions: async_sessionmaker[AsyncSession], handler: AlertsHandler, account: str
) -> list[tuple[Any, ...]]:
    async with sessions() as session:
        found = await handler.repo.episodes(session, account)
    return [(e.rule, e.started_on, e.opened_on, e.resolved_on, e.resolved_by) for e in found]


def day(n: int) -> Any:
    return DAY0 + timedelta(days=n)


EXPECTED_EPISODES = [
    ("dormant", day(10), day(11), day(22), "condition"),
    ("dormant", day(50), day(51), None, None),
    ("health_red", day(10), day(11), day(22), "condition"),
    ("health_red", day(50), day(51), None, None),
]


class TestArrivalOrder:
    async def reference(
        self, sessions: async_sessionmaker[AsyncSession]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """The final history, all at once in one batch."""
        account = unique_account("ref")
        handler = create_handler()
        await feed(sessions, handler, scores(account, range(DAYS), rescored), DAYS)
        assert await episodes(sessions, handler, account) == EXPECTED_EPISODES
        outbox = await outbox_of(sessions, account)
        # one post for the account, both rules in it, only the episode open in the present
        assert [n.kind for n in outbox] == ["open"]
        items = outbox[0].payload["items"]
        assert [(i["rule"], i["kind"], i["started_on"]) for i in items] == [
            ("dormant", "open", day(50).isoformat()),
            ("health_red", "open", day(50).isoformat()),
        ]
        return [row[1:] for row in await table(sessions, account)], [
            e for e in await episodes(sessions, handler, account)
        ]

    @pytest.mark.parametrize("batch", [1, 5, 23])
    async def test_a_backfill_then_rescored_days_give_the_all_at_once_history(
        self, db: async_sessionmaker[AsyncSession], batch: int
    ) -> None:
        want_table, want_episodes = await self.reference(db)
        account = unique_account("fill")
        handler = create_handler()
        await feed(db, handler, scores(account, range(DAYS), first_version), batch)
        # the backfill's past is recorded, its present (sick since day 45) announced once
        outbox = await outbox_of(db, account)
        assert [n.kind for n in outbox] == ["open"]
        assert [i["started_on"] for i in outbox[0].payload["items"]] == [day(45).isoformat()] * 2

        # The scorer re-publishes days 40-59 after late events: the replay moves the episode's
        # start to day 50; it is the same problem, still open, so nothing new is sent.
        await feed(db, handler, scores(account, range(40, DAYS), rescored), batch)
        assert [row[1:] for row in await table(db, account)] == want_table
        assert await episodes(db, handler, account) == want_episodes
        assert [n.kind for n in await outbox_of(db, account)] == ["open"]

        # ...and the same re-score again changes nothing
        await feed(db, handler, scores(account, range(40, DAYS), rescored), DAYS)
        assert [row[1:] for row in await table(db, account)] == want_table
        assert len(await outbox_of(db, account)) == 1

    @pytest.mark.parametrize("seed", [1, 2])
    async def test_shuffled_batches_give_the_same_history(
        self, db: async_sessionmaker[AsyncSession], seed: int
    ) -> None:
        want_table, want_episodes = await self.reference(db)
        account = unique_account("shuf")
        handler = create_handler()
        messages = scores(account, range(DAYS), rescored)
        random.Random(seed).shuffle(messages)
        await feed(db, handler, messages, 7)
        assert [row[1:] for row in await table(db, account)] == want_table
        assert await episodes(db, handler, account) == want_episodes

    async def test_an_episode_wholly_in_the_past_is_recorded_not_notified(
        self, db: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account("past")
        handler = create_handler()
        await feed(
            db, handler, scores(account, range(DAYS), lambda d: first_version(min(d, 30))), 5
        )
        assert [a.status for a in await alerts_of(db, account)] == ["resolved", "resolved"]
        assert await outbox_of(db, account) == []
        assert [e[1:4] for e in await episodes(db, handler, account)] == [
            (day(10), day(11), day(22))
        ] * 2

    async def test_provisional_scores_are_not_judged(
        self, db: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account("prov")
        handler = create_handler()
        today = [create_snapshot(account, DAYS + i, provisional=True, **SICK) for i in range(3)]
        await feed(db, handler, today, 3)
        assert await alerts_of(db, account) == []
        async with db() as session:
            stored = await session.scalars(
                select(AlertScorePoint).where(AlertScorePoint.account_id == account)
            )
            assert list(stored) == []


class TestManualActionsSurviveReplays:
    async def test_an_acknowledged_alert_stays_acknowledged_through_a_rescore(
        self, db: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account("ack")
        handler = create_handler()
        await feed(db, handler, scores(account, range(DAYS), first_version), 10)
        async with db() as session, session.begin():
            row = await session.scalar(
                select(Alert).where(Alert.account_id == account, Alert.rule == "dormant")
            )
            assert row is not None
            set_state(row, acknowledge(state_of(row), NOW), NOW)
        await feed(db, handler, scores(account, range(40, DAYS), rescored), 20)
        by_rule = {a.rule: a for a in await alerts_of(db, account)}
        assert (by_rule["dormant"].status, by_rule["dormant"].started_on) == (
            "acknowledged",
            day(50),
        )
        assert by_rule["health_red"].status == "open"
        assert len(await outbox_of(db, account)) == 1

    async def test_a_manual_resolve_survives_a_rescore(
        self, db: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account("res")
        handler = create_handler()
        await feed(db, handler, scores(account, range(DAYS - 2), rescored), 10)
        async with db() as session, session.begin():
            rows = await session.scalars(select(Alert).where(Alert.account_id == account))
            for row in rows:
                set_state(row, resolve(state_of(row), NOW), NOW)  # on day 57, the latest
        # days 56-57 re-scored, 58-59 new: still sick, but the resolve holds for the episode
        # open on day 57, and a new one fires after for_days (2) days counted from day 58
        await feed(db, handler, scores(account, range(DAYS - 4, DAYS), rescored), 4)
        by_rule = {a.rule: a for a in await alerts_of(db, account)}
        assert (by_rule["dormant"].status, by_rule["dormant"].started_on) == ("open", day(58))
        assert [e[1:] for e in await episodes(db, handler, account) if e[0] == "dormant"] == [
            (day(10), day(11), day(22), "condition"),
            (day(50), day(51), day(57), "manual"),
            (day(58), day(59), None, None),
        ]
        kinds = [n.kind for n in await outbox_of(db, account)]
        assert kinds == ["open"]  # the new episode, once (day 57 is not in the present)


class TestOneIncidentPerAccount:
    async def test_one_slack_post_and_one_email_per_account_with_every_rule(
        self, db: async_sessionmaker[AsyncSession], slack: SlackWebhookServer, smtp: SmtpServer
    ) -> None:
        account = unique_account("grp")
        handler = create_handler(create_defaults(slack_webhook_url=slack.url()))
        await feed(db, handler, scores(account, range(DAYS - 5, DAYS), lambda d: SICK), 5)
        outbox = await outbox_of(db, account)
        assert sorted(n.channel for n in outbox) == ["email", "slack"]

        email = EmailNotifier(
            SmtpSettings(
                host="127.0.0.1", port=smtp.port, from_address="tend@v.example", tls="none"
            )
        )
        slack_notifier = SlackNotifier(timeout_s=2, min_interval_s=0)
        dispatcher = Dispatcher(db, {"slack": slack_notifier, "email": email}, FixedClock(NOW))
        await dispatcher.run_once()
        await slack_notifier.aclose()
        await email.aclose()

        # The run's database is shared: other tests' pending rows may be claimed too (and a
        # loopback port reused), so only this account's messages are counted.
        [post] = [r for r in slack.requests if account in r.body.decode()]
        text = str(post.json())
        assert "2 alerts: dormant, health red" in text
        assert "no login for 20 days" in text and f"since {day(55).isoformat()}" in text
        assert str(post.json()["blocks"]).count("Next step") == 1  # one next step
        [mail] = [m for m in smtp.messages if account in str(m.message.get_body(("plain",)))]
        message = mail.message
        assert message["To"] == "dana@vendor.example"
        assert "2 new alerts" in message["Subject"]
        body = message.get_body(("plain",))
        assert body is not None
        content = body.get_content()
        assert "- dormant (since" in content and "- health red (since" in content

    async def test_resolves_of_one_account_are_grouped_too(
        self, db: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account("grpr")
        handler = create_handler()
        sick_then_well = scores(account, range(DAYS - 8, DAYS - 3), lambda d: SICK)
        well = scores(account, range(DAYS - 3, DAYS), lambda d: WELL)
        # days 52-56 sick, announced as of day 56 with the clock on day 57
        handler.clock = FixedClock(NOW - timedelta(days=3))
        await feed(db, handler, sick_then_well, 5)
        handler.clock = FixedClock(NOW)
        await feed(db, handler, well, 3)
        outbox = await outbox_of(db, account)
        assert [n.kind for n in outbox] == ["open", "resolve"]
        assert [i["kind"] for i in outbox[1].payload["items"]] == ["resolve", "resolve"]


class TestThePurgeKeepsWhatARescoreReaches:
    """The alerts service purges old score points, which are the replay's checkpoints and the
    days a re-scored day is judged against. The scorer re-scores days up to its
    ``rescore_horizon_days`` back, so a purge between a backfill and a later re-score of its
    days (the leader's first purge runs once it owns partition 0, in the middle of a
    backfill; the portfolio test's ``stream`` order lost 51 days to it and opened alerts
    weeks late) must change no alert history."""

    HORIZON = 120
    LONG = 200

    def sick_once(self, until: int) -> Any:
        return lambda d: SICK if 90 <= d <= until else WELL

    async def test_a_purge_between_a_backfill_and_a_rescore_changes_no_history(
        self, own_db_url: str
    ) -> None:
        now = datetime.combine(DAY0 + timedelta(days=self.LONG), datetime.min.time(), UTC)
        settings = Settings(
            database_url=own_db_url,
            slack_webhook_url=SecretStr(WEBHOOK),
            scorer=ScorerSettings(rescore_horizon_days=self.HORIZON),
        )
        config = parse_config({"rules": {n: {"enabled": n == "dormant"} for n in RULE_NAMES}})
        engine = create_engine(own_db_url)
        sessions = create_sessionmaker(engine)
        bus = InProcessBus(sessions, 2)
        try:
            service = build_service(
                settings,
                config,
                bus,
                sessions,
                bus.producer(),
                FixedClock(now + timedelta(hours=9)),
            )
            reference = unique_account("all")
            await feed(
                sessions,
                service.handler,
                scores(reference, range(self.LONG), self.sick_once(119)),
                50,
            )

            account = unique_account("cut")
            await feed(
                sessions,
                service.handler,
                scores(account, range(self.LONG), self.sick_once(109)),
                50,
            )
            _, purged = await service.purge_once()
            assert purged > 0  # days no re-score reaches go
            # Late events re-score days 95 on (within the horizon): the account was sick
            # until day 119, not 109.
            await feed(
                sessions,
                service.handler,
                scores(account, range(95, self.LONG), self.sick_once(119)),
                50,
            )
            got = await episodes(sessions, service.handler, account)
            want = await episodes(sessions, service.handler, reference)
            assert [e[1:] for e in got] == [e[1:] for e in want]
            assert [e[1:3] for e in got] == [(day(90), day(91))]
        finally:
            await bus.close()
            await engine.dispose()

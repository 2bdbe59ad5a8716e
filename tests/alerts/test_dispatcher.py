"""The dispatcher on real PostgreSQL against a real loopback Slack webhook server and a real SMTP
server (aiosmtpd): delivery, Retry-After, backoff, permanent failures, giving up, and a crash
between a send and its mark (at most one duplicate, never none)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import metrics as alert_metrics
from services.alerts.dispatcher import Dispatcher
from services.alerts.notifiers.base import DeliveryResult, Notification, NotificationKind
from services.alerts.notifiers.email import EmailNotifier, SmtpSettings
from services.alerts.notifiers.slack import SlackNotifier
from services.alerts.rules import Finding
from services.alerts.state import AlertRepository, build_notification
from shared.alerting.lifecycle import AlertState, Status
from shared.clock import FixedClock
from shared.db.migrate import upgrade_async
from shared.db.models import Alert, AlertNotification
from shared.db.session import create_engine, create_sessionmaker
from shared.db.types import utcnow
from tests.alerts.snapshots import DAY0, create_snapshot, unique_account
from tests.support.postgres import create_database, drop_database
from tests.support.servers import Reply, SlackWebhookServer, SmtpServer

pytestmark = pytest.mark.integration  # a PostgreSQL database of its own, loopback servers

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
LEASE_S = 60.0


@pytest_asyncio.fixture(scope="module")
async def module_db() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A database of its own: a dispatcher claims every due row of its database."""
    url = await create_database("tend_dispatch")
    await upgrade_async(url)
    engine = create_engine(url)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()
        await drop_database(url)


@pytest_asyncio.fixture
async def clean_db(
    module_db: async_sessionmaker[AsyncSession],
) -> async_sessionmaker[AsyncSession]:
    async with module_db() as session, session.begin():
        await session.execute(delete(AlertNotification))
        await session.execute(delete(Alert))
    return module_db


@pytest_asyncio.fixture
async def clock() -> FixedClock:
    return FixedClock(T0)


@pytest_asyncio.fixture
async def dispatcher(
    clean_db: async_sessionmaker[AsyncSession], clock: FixedClock, smtp: SmtpServer
) -> AsyncIterator[Dispatcher]:
    email = EmailNotifier(
        SmtpSettings(host="127.0.0.1", port=smtp.port, from_address="tend@v.example", tls="none"),
        backoff_base_s=60.0,
    )
    slack_notifier = SlackNotifier(
        timeout_s=2,
        min_interval_s=0,
        backoff_base_s=10.0,
        clock=lambda: clock.now().timestamp(),  # a 429 blocks the webhook on the test's clock
    )
    d = Dispatcher(
        clean_db,
        {"slack": slack_notifier, "email": email},
        clock,
        max_attempts=3,
        lease_s=LEASE_S,
        max_backoff_s=300,
        digests=email,
    )
    yield d
    await slack_notifier.aclose()


async def enqueue(
    sessions: async_sessionmaker[AsyncSession],
    *destinations: tuple[str, str],
    due_at: datetime | None = None,
    kind: NotificationKind = "open",
    status: Status = "open",
    **snapshot: Any,
) -> tuple[str, list[int]]:
    """An open dormant alert on a new account with one outbox row per destination."""
    account = unique_account()
    finding = Finding(
        rule="dormant",
        as_of=DAY0,
        holds=True,
        severity="critical",
        reason="no login for 20 days",
        next_step="Call the account's main contact.",
    )
    repo = AlertRepository()
    async with sessions() as session, session.begin():
        row = repo.add(session, account, finding, T0)
        repo.apply(
            row,
            AlertState(status=status),
            create_snapshot(account, **snapshot),
            finding,
            T0,
            describe=True,
        )
        await session.flush()
        n = build_notification(row, kind, "http://console.example", DAY0)
        rows = repo.enqueue(session, row, n, list(destinations), T0, due_at=due_at)
        await session.flush()
        ids = [r.id for r in rows]
    return account, ids


async def outbox_row(sessions: async_sessionmaker[AsyncSession], id: int) -> AlertNotification:
    async with sessions() as session:
        row = await session.scalar(select(AlertNotification).where(AlertNotification.id == id))
        assert row is not None
        return row


class TestSlack:
    async def test_delivered_once_and_marked_sent(
        self,
        clean_db: async_sessionmaker[AsyncSession],
        dispatcher: Dispatcher,
        slack: SlackWebhookServer,
    ) -> None:
        account, [nid] = await enqueue(clean_db, ("slack", slack.url()))
        assert await dispatcher.run_once() == 1
        assert await dispatcher.run_once() == 0
        assert len(slack.requests) == 1
        body = slack.requests[0].json()
        assert "Acme Corp" in str(body) and f"/accounts/{account}" in str(body)
        row = await outbox_row(clean_db, nid)
        assert (row.status, row.attempts, row.sent_at, row.last_error) == ("sent", 1, T0, None)

    async def test_amounts_are_in_the_configured_currency(
        self,
        clean_db: async_sessionmaker[AsyncSession],
        dispatcher: Dispatcher,
        slack: SlackWebhookServer,
        smtp: SmtpServer,
    ) -> None:
        """The installation's one currency (``currency:`` of TEND_CONFIG), as on the console
        and in the report: stamped on each message when it is sent."""
        dispatcher.currency = "EUR"
        await enqueue(clean_db, ("slack", slack.url()), ("email", "dana@vendor.example"), mrr=4500)
        assert await dispatcher.run_once() == 2
        slack_text = str(slack.requests[0].json())
        assert "€4,500 MRR" in slack_text and "$" not in slack_text
        [mail] = smtp.messages
        body = mail.message.get_body(("plain",))
        assert body is not None and "€4,500 MRR" in body.get_content()

    async def test_429_waits_for_retry_after_then_delivers(
        self,
        clean_db: async_sessionmaker[AsyncSession],
        dispatcher: Dispatcher,
        slack: SlackWebhookServer,
        clock: FixedClock,
    ) -> None:
        slack.script(Reply(429, "rate_limited", {"Retry-After": "7"}))
        _, [nid] = await enqueue(clean_db, ("slack", slack.url("/services/T/B/rate")))
        await dispatcher.run_once()
        row = await outbox_row(clean_db, nid)
        assert (row.status, row.attempts) == ("pending", 1)
        assert row.next_attempt_at == T0 + timedelta(seconds=7)
        assert "429" in (row.last_error or "")
        clock.advance(timedelta(seconds=6))
        assert await dispatcher.run_once() == 0
        clock.advance(timedelta(seconds=1))
        assert await dispatcher.run_once() == 1
        assert (await outbox_row(clean_db, nid)).status == "sent"
        assert len(slack.requests) == 2

    async def test_outbox_depth_and_oldest_age_are_reported(
        self,
        clean_db: async_sessionmaker[AsyncSession],
        dispatcher: Dispatcher,
        slack: SlackWebhookServer,
        clock: FixedClock,
    ) -> None:
        slack.script(Reply(500, "oops"))
        _, [nid] = await enqueue(clean_db, ("slack", slack.url("/services/T/B/age")))
        async with clean_db() as session, session.begin():
            row = await session.get(AlertNotification, nid)
            assert row is not None
            row.created_at = utcnow() - timedelta(hours=1)
        await dispatcher.run_once()
        assert (await outbox_row(clean_db, nid)).status == "pending"
        assert alert_metrics.OUTBOX_PENDING._value.get() >= 1
        assert alert_metrics.OUTBOX_OLDEST_AGE._value.get() >= 3600
        clock.set((await outbox_row(clean_db, nid)).next_attempt_at)
        assert await dispatcher.run_once() == 1
        assert (await outbox_row(clean_db, nid)).status == "sent"
        await dispatcher.run_once()
        assert alert_metrics.OUTBOX_OLDEST_AGE._value.get() < 3600

    async def test_500_then_success_with_backoff(
        self,
        clean_db: async_sessionmaker[AsyncSession],
        dispatcher: Dispatcher,
        slack: SlackWebhookServer,
        clock: FixedClock,
    ) -> None:
        slack.script(Reply(500, "oops"))
        _, [nid] = await enqueue(clean_db, ("slack", slack.url()))
        await dispatcher.run_once()
        row = await outbox_row(clean_db, nid)
        assert row.status == "pending"
        assert row.next_attempt_at == T0 + timedelta(seconds=10)
        clock.advance(timedelta(seconds=10))
        await dispatcher.run_once()
        row = await outbox_row(clean_db, nid)
        assert (row.status, row.attempts) == ("sent", 2)
        assert len(slack.requests) == 2

    async def test_410_is_permanent(
        self,
        clean_db: async_sessionmaker[AsyncSession],
        dispatcher: Dispatcher,
        slack: SlackWebhookServer,
    ) -> None:
        slack.script(Reply(410, "channel_is_archived"))
        _, [nid] = await enqueue(clean_db, ("slack", slack.url()))
        await dispatcher.run_once()
        row = await outbox_row(clean_db, nid)
        assert (row.status, row.attempts) == ("failed", 1)
        assert "410" in (row.last_error or "")
        assert await dispatcher.run_once() == 0
        assert len(slack.requests) == 1

    async def test_a_channel_that_keeps_failing_gives_up_after_max_attempts(
        self,
        clean_db: async_sessionmaker[AsyncSession],
        dispatcher: Dispatcher,
        slack: SlackWebhookServer,
        clock: FixedClock,
    ) -> None:
        slack.script(*[Reply(503, "down")] * 5)
        _, [nid] = await enqueue(clean_db, ("slack", slack.url()))
        waits = []
        for _ in range(3):
            await dispatcher.run_once()
            row = await outbox_row(clean_db, nid)
            waits.append(row.next_attempt_at - clock.now())
            clock.set(row.next_attempt_at)
        row = await outbox_row(clean_db, nid)
        assert (row.status, row.attempts) == ("failed", 3)
        assert (row.last_error or "").startswith("gave up after 3 attempts")
        assert waits[:2] == [timedelta(seconds=10), timedelta(seconds=20)]  # doubling backoff
        assert len(slack.requests) == 3


class TestEmail:
    async def test_451_then_delivered(
        self,
        clean_db: async_sessionmaker[AsyncSession],
        dispatcher: Dispatcher,
        smtp: SmtpServer,
        clock: FixedClock,
    ) -> None:
        smtp.script_data("451 4.3.0 Try again later")
        _, [nid] = await enqueue(clean_db, ("email", "dana@vendor.example, lee@vendor.example"))
        await dispatcher.run_once()
        row = await outbox_row(clean_db, nid)
        assert row.status == "pending" and "451" in (row.last_error or "")
        clock.set(row.next_attempt_at)
        await dispatcher.run_once()
        assert (await outbox_row(clean_db, nid)).status == "sent"
        [mail] = smtp.messages
        assert sorted(mail.rcpt_tos) == ["dana@vendor.example", "lee@vendor.example"]
        message = mail.message
        assert "Acme Corp" in str(message["Subject"])
        assert {p.get_content_type() for p in message.iter_parts()} == {"text/plain", "text/html"}

    async def test_550_fails(
        self, clean_db: async_sessionmaker[AsyncSession], dispatcher: Dispatcher, smtp: SmtpServer
    ) -> None:
        smtp.script_data("550 5.1.1 No such user")
        _, [nid] = await enqueue(clean_db, ("email", "ghost@vendor.example"))
        await dispatcher.run_once()
        row = await outbox_row(clean_db, nid)
        assert row.status == "failed" and "550" in (row.last_error or "")
        assert smtp.messages == []


class TestCrashBetweenSendAndMark:
    async def test_resent_once_the_lease_ends_at_most_one_duplicate(
        self,
        clean_db: async_sessionmaker[AsyncSession],
        dispatcher: Dispatcher,
        slack: SlackWebhookServer,
        clock: FixedClock,
    ) -> None:
        _, [nid] = await enqueue(clean_db, ("slack", slack.url()))
        [claim] = await dispatcher.claim()
        notification = Notification.model_validate(claim.payload)
        await dispatcher.notifiers["slack"].send(notification, claim.destination)
        # ... and the dispatcher dies here, before marking the row.
        assert await dispatcher.run_once() == 0  # the claim still holds
        clock.advance(timedelta(seconds=LEASE_S))
        assert await dispatcher.run_once() == 1
        row = await outbox_row(clean_db, nid)
        assert (row.status, row.attempts) == ("sent", 2)
        clock.advance(timedelta(seconds=LEASE_S))
        assert await dispatcher.run_once() == 0
        assert len(slack.requests) == 2

    async def test_a_stale_mark_does_not_overwrite_a_newer_claim(
        self,
        clean_db: async_sessionmaker[AsyncSession],
        dispatcher: Dispatcher,
        slack: SlackWebhookServer,
        clock: FixedClock,
    ) -> None:
        _, [nid] = await enqueue(clean_db, ("slack", slack.url()))
        [old] = await dispatcher.claim()
        clock.advance(timedelta(seconds=LEASE_S))
        [new] = await dispatcher.claim()
        assert new.attempts == old.attempts + 1
        await dispatcher._mark(old, DeliveryResult.failed_permanently("stale"))
        row = await outbox_row(clean_db, nid)
        assert (row.status, row.attempts) == ("pending", 2)
        await dispatcher._mark(new, DeliveryResult.delivered())
        assert (await outbox_row(clean_db, nid)).status == "sent"


class TestUnknownChannel:
    async def test_a_channel_without_notifier_fails_the_row(
        self, clean_db: async_sessionmaker[AsyncSession], clock: FixedClock
    ) -> None:
        _, [nid] = await enqueue(clean_db, ("pager", "x"))
        d = Dispatcher(clean_db, {}, clock)
        await d.run_once()
        row = await outbox_row(clean_db, nid)
        assert row.status == "failed" and "not configured" in (row.last_error or "")


class TestDigest:
    async def test_one_mail_per_address_with_every_due_alert_largest_mrr_first(
        self,
        clean_db: async_sessionmaker[AsyncSession],
        dispatcher: Dispatcher,
        smtp: SmtpServer,
        clock: FixedClock,
    ) -> None:
        due = T0 + timedelta(hours=20)
        _, small_ids = await enqueue(
            clean_db, ("email_digest", "dana@v.example"), due_at=due, name="Small Co", mrr=100.0
        )
        _, big_ids = await enqueue(
            clean_db,
            ("email_digest", "dana@v.example"),
            ("email_digest", "lee@v.example"),
            due_at=due,
            name="Big Co",
            mrr=9000.0,
        )
        assert await dispatcher.run_once() == 0
        assert smtp.messages == []
        clock.set(due)
        await dispatcher.run_once()
        mails = {m.rcpt_tos[0]: m for m in smtp.messages}
        assert sorted(mails) == ["dana@v.example", "lee@v.example"]
        dana = mails["dana@v.example"].message.get_body(("plain",))
        assert dana is not None
        text = dana.get_content()
        assert "Big Co" in text and "Small Co" in text
        assert text.index("Big Co") < text.index("Small Co")
        assert "Small Co" not in mails["lee@v.example"].raw.decode()
        for nid in small_ids + big_ids:
            assert (await outbox_row(clean_db, nid)).status == "sent"
        assert await dispatcher.run_once() == 0
        assert len(smtp.messages) == 2


class TestPacing:
    async def test_claims_per_destination_fit_in_the_lease(
        self,
        clean_db: async_sessionmaker[AsyncSession],
        slack: SlackWebhookServer,
        clock: FixedClock,
    ) -> None:
        hook, other = slack.url("/services/T/B/one"), slack.url("/services/T/B/two")
        for _ in range(5):
            await enqueue(clean_db, ("slack", hook))
        await enqueue(clean_db, ("slack", other))
        notifier = SlackNotifier(timeout_s=2, min_interval_s=0)
        d = Dispatcher(clean_db, {"slack": notifier}, clock, lease_s=8.0)  # 2 per destination
        try:
            assert await d.run_once() == 3
            assert await d.run_once() == 2
            assert await d.run_once() == 1
            assert await d.run_once() == 0
        finally:
            await notifier.aclose()
        assert sorted(r.path for r in slack.requests) == ["/services/T/B/one"] * 5 + [
            "/services/T/B/two"
        ]


class TestStaleReminders:
    @pytest.mark.parametrize("status", ["acknowledged", "snoozed", "resolved"])
    async def test_a_reminder_of_an_alert_no_longer_open_is_skipped(
        self,
        clean_db: async_sessionmaker[AsyncSession],
        dispatcher: Dispatcher,
        slack: SlackWebhookServer,
        status: Status,
    ) -> None:
        _, [nid] = await enqueue(clean_db, ("slack", slack.url()), kind="repeat", status=status)
        assert await dispatcher.run_once() == 0
        row = await outbox_row(clean_db, nid)
        assert (row.status, row.attempts) == ("skipped", 0)
        assert row.last_error == f"not sent: the alert is {status}"
        assert slack.requests == []

    async def test_a_resolve_message_still_goes_out(
        self,
        clean_db: async_sessionmaker[AsyncSession],
        dispatcher: Dispatcher,
        slack: SlackWebhookServer,
    ) -> None:
        _, [nid] = await enqueue(
            clean_db, ("slack", slack.url()), kind="resolve", status="resolved"
        )
        assert await dispatcher.run_once() == 1
        assert (await outbox_row(clean_db, nid)).status == "sent"

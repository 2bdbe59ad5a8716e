"""The monthly send through the report_deliveries outbox (PostgreSQL and SQLite, a real SMTP
server): nothing before the send day, once per account and month across rounds, restarts and
replicas, retried with a backoff that has jitter, given up after max_attempts, and a run that
ends when shutdown is asked for."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.web.reports.schedule import ReportScheduler
from shared.clock import FixedClock
from shared.db.models import Account, ReportDelivery
from shared.settings import Settings
from tests.support.servers import SmtpServer, _free_port
from tests.web.test_report import seed_account

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
SEND_DAY = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)  # reports of October 2026 are due


@pytest.fixture
def mail() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


def scheduler(
    db: Sessions, clock: FixedClock, port: int, *, seed: int = 1, **reports: Any
) -> ReportScheduler:
    settings = Settings.model_validate(
        {
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_tls": "none",
            "smtp_timeout_s": 5,
            "reports": {"send_day": 3, "send_hour_utc": 8, "chromium": "", **reports},
        }
    )
    return ReportScheduler(db, settings, clock=clock, rng=random.Random(seed))


async def customers(db: Sessions, uid: str, n: int = 2) -> list[str]:
    """``n`` accounts with contacts, customers since September 2026, and one without."""
    ids = [f"{uid}-c{i}" for i in range(n)]
    for aid in [*ids, f"{uid}-quiet"]:
        await seed_account(db, aid)
    async with db() as s, s.begin():
        for aid in ids:
            account = await s.get(Account, aid)
            assert account is not None
            account.customer_emails = [f"ops@{aid}.example"]
    return ids


async def deliveries(db: Sessions, uid: str) -> dict[str, ReportDelivery]:
    async with db() as s:
        rows = await s.scalars(
            select(ReportDelivery).where(ReportDelivery.account_id.like(f"{uid}-%"))
        )
        return {r.account_id: r for r in rows}


def ours(server: SmtpServer, uid: str) -> list[str]:
    """The customers of this test that got mail (the database may hold other tests' too)."""
    return sorted(t for m in server.messages for t in m.rcpt_tos if t.startswith(f"ops@{uid}"))


class TestOncePerMonth:
    async def test_nothing_before_the_send_day(
        self, db: Sessions, uid: str, mail: SmtpServer
    ) -> None:
        await customers(db, uid)
        clock = FixedClock(SEND_DAY - timedelta(minutes=1))
        await scheduler(db, clock, mail.port).run_once()
        assert await deliveries(db, uid) == {} and ours(mail, uid) == []

    async def test_each_account_once_across_rounds_restarts_and_replicas(
        self, db: Sessions, uid: str, mail: SmtpServer
    ) -> None:
        ids = await customers(db, uid)
        clock = FixedClock(SEND_DAY)
        first, second = scheduler(db, clock, mail.port), scheduler(db, clock, mail.port, seed=2)
        await asyncio.gather(first.run_once(), second.run_once())  # two replicas
        clock.advance(timedelta(days=3))
        await scheduler(db, clock, mail.port).run_once()  # a restart, days later
        assert ours(mail, uid) == sorted(f"ops@{aid}.example" for aid in ids)
        rows = await deliveries(db, uid)
        assert sorted(rows) == ids  # the account without contacts has no row
        for aid, row in rows.items():
            assert (row.month, row.status, row.attempts) == ("2026-10", "sent", 1)
            assert row.recipients == [f"ops@{aid}.example", f"csm-{aid}@vendor.example"]
        # The next month is its own report.
        clock.set(SEND_DAY.replace(month=12))
        await scheduler(db, clock, mail.port).run_once()
        assert len(ours(mail, uid)) == 4


class TestRetries:
    async def test_an_smtp_outage_is_retried_with_backoff_then_given_up(
        self, db: Sessions, uid: str, mail: SmtpServer
    ) -> None:
        [aid] = await customers(db, uid, 1)
        clock = FixedClock(SEND_DAY)
        down = scheduler(
            db, clock, _free_port(), max_attempts=3, retry_initial_s=60, max_backoff_s=3600
        )
        assert await down.run_once() == 0
        row = (await deliveries(db, uid))[aid]
        assert (row.status, row.attempts) == ("pending", 1)
        assert row.last_error is not None and "SMTP server 127.0.0.1" in row.last_error
        wait = (row.next_attempt_at - clock.now()).total_seconds()
        assert 30 <= wait <= 60  # the first delay, jittered over its upper half
        assert await down.run_once() == 0  # not due yet: no attempt
        assert (await deliveries(db, uid))[aid].attempts == 1
        clock.advance(timedelta(seconds=61))
        await down.run_once()
        row = (await deliveries(db, uid))[aid]
        assert (
            row.attempts == 2 and 60 <= (row.next_attempt_at - clock.now()).total_seconds() <= 120
        )
        clock.advance(timedelta(seconds=121))
        await down.run_once()
        row = (await deliveries(db, uid))[aid]
        assert (row.status, row.attempts) == ("failed", 3)
        clock.advance(timedelta(days=1))
        await scheduler(db, clock, mail.port).run_once()  # given up stays given up
        assert ours(mail, uid) == []

    async def test_jitter_spreads_replicas(self, db: Sessions, uid: str) -> None:
        ids = await customers(db, uid, 4)
        clock = FixedClock(SEND_DAY)
        await scheduler(db, clock, _free_port(), seed=7).run_once()
        waits = {
            (r.next_attempt_at - clock.now()).total_seconds()
            for r in (await deliveries(db, uid)).values()
        }
        assert len(waits) == len(ids)  # each row its own delay

    async def test_a_lost_claim_comes_back_after_the_lease(
        self, db: Sessions, uid: str, mail: SmtpServer
    ) -> None:
        """A replica that claimed and died: the row is sent again once the lease ends."""
        [aid] = await customers(db, uid, 1)
        clock = FixedClock(SEND_DAY)
        dead = scheduler(db, clock, mail.port, claim_lease_s=600)
        await dead.enqueue()
        assert [c.account_id for c in await dead.claim()] == [aid]
        alive = scheduler(db, clock, mail.port, claim_lease_s=600)
        await alive.run_once()
        assert ours(mail, uid) == []  # claimed by the dead one
        clock.advance(timedelta(seconds=601))
        await alive.run_once()
        row = (await deliveries(db, uid))[aid]
        assert (row.status, row.attempts) == ("sent", 2)
        assert ours(mail, uid) == [f"ops@{aid}.example"]


class TestShutdown:
    async def test_run_ends_when_stop_is_set(self, db: Sessions, mail: SmtpServer) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(
            scheduler(db, FixedClock(SEND_DAY), mail.port, interval_s=3600).run(stop)
        )
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.wait_for(task, 5)  # not the hour its interval would wait

    def test_the_schedule_needs_a_send_day(self, db: Sessions) -> None:
        with pytest.raises(ValueError, match="TEND_REPORTS__SEND_DAY"):
            ReportScheduler(db, Settings(smtp_host="127.0.0.1"))

    async def test_a_report_month_is_the_month_before(
        self, db: Sessions, uid: str, mail: SmtpServer
    ) -> None:
        await customers(db, uid, 1)
        clock = FixedClock(datetime(2027, 1, 28, 9, 0, tzinfo=UTC))
        await scheduler(db, clock, mail.port).run_once()
        assert {r.month for r in (await deliveries(db, uid)).values()} == {"2026-12"}
        assert date(2026, 12, 1) < clock.now().date()


class TestWebService:
    async def test_tend_web_sends_on_the_send_day_and_stops_with_the_app(
        self, sqlite_url: str, sqlite_sessions: Sessions, uid: str, mail: SmtpServer
    ) -> None:
        """The web app's own lifespan (``tend web``) runs the schedule and ends it at shutdown."""
        from services.web.app import create_app

        [aid] = await customers(sqlite_sessions, uid, 1)
        settings = Settings.model_validate(
            {
                "database_url": sqlite_url,
                "smtp_host": "127.0.0.1",
                "smtp_port": mail.port,
                "smtp_tls": "none",
                "reports": {"send_day": 3, "chromium": "", "interval_s": 3600},
            }
        )
        app = create_app(settings, clock=FixedClock(SEND_DAY))
        async with app.router.lifespan_context(app):
            for _ in range(100):
                if ours(mail, uid):
                    break
                await asyncio.sleep(0.1)
        assert ours(mail, uid) == [f"ops@{aid}.example"]
        assert (await deliveries(sqlite_sessions, uid))[aid].status == "sent"

    async def test_tend_up_runs_it_until_stopping(
        self, sqlite_sessions: Sessions, uid: str, mail: SmtpServer
    ) -> None:
        from services.cli.up import Embedded, embedded_services
        from shared.config import TendConfig

        [aid] = await customers(sqlite_sessions, uid, 1)
        settings = Settings.model_validate(
            {
                "smtp_host": "127.0.0.1",
                "smtp_port": mail.port,
                "smtp_tls": "none",
                "reports": {"send_day": 1, "send_hour_utc": 0, "chromium": "", "interval_s": 3600},
            }
        )
        env = Embedded(settings, TendConfig(), sqlite_sessions, None, asyncio.Event())  # type: ignore[arg-type]
        task = asyncio.create_task(embedded_services()["reports"](env))
        for _ in range(100):
            if ours(mail, uid):
                break
            await asyncio.sleep(0.1)
        env.stopping.set()
        await asyncio.wait_for(task, 5)
        assert ours(mail, uid) == [f"ops@{aid}.example"]  # last month's, sent on day 1

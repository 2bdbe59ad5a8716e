"""The re-scorer: dirty accounts, backfilled score history, dry runs (on a private SQLite)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.rescorer import Rescorer
from services.scorer.writer import RollupWriter
from shared.bus.base import Delivery, Message
from shared.bus.memory import InProcessBus, InProcessProducer
from shared.clock import FixedClock
from shared.config import TendConfig, parse_config
from shared.db.models import Account, HealthScore
from tests.support.events import create_event
from tests.support.producers import DelegatingProducer

Sessions = async_sessionmaker[AsyncSession]
TODAY = date(2026, 11, 20)


async def write_days(
    sqlite_sessions: Sessions, account: str, days: int, users: int = 3, every: int = 1
) -> None:
    events = [
        create_event(
            f"{account}-{d}-{u}",
            account_id=account,
            user_id=f"{account}-u{u}",
            name="Signed In",
            is_login=True,
            at=datetime.combine(TODAY - timedelta(days=d), datetime.min.time(), UTC)
            + timedelta(hours=9),
        )
        for d in range(0, days, every)
        for u in range(users)
    ]
    async with sqlite_sessions() as session, session.begin():
        await RollupWriter().flush(session, "test", events, {})


async def score_days(sqlite_sessions: Sessions, account: str) -> list[date]:
    async with sqlite_sessions() as session:
        rows = await session.scalars(
            select(HealthScore.as_of)
            .where(HealthScore.account_id == account)
            .order_by(HealthScore.as_of)
        )
        return list(rows)


def rescorer(sqlite_sessions: Sessions, config: TendConfig | None = None, **kw: int) -> Rescorer:
    clock = FixedClock(datetime.combine(TODAY, datetime.min.time(), UTC) + timedelta(hours=23))
    return Rescorer(sqlite_sessions, None, config or TendConfig(), clock, **kw)


class TestBackfill:
    async def test_a_new_account_gets_one_score_per_day_since_it_was_first_seen(
        self, sqlite_sessions: Sessions
    ) -> None:
        await write_days(sqlite_sessions, "acme", days=10)
        assert await rescorer(sqlite_sessions).rescore_dirty() == 1
        days = await score_days(sqlite_sessions, "acme")
        assert days == [TODAY - timedelta(days=d) for d in range(9, -1, -1)]
        async with sqlite_sessions() as session:
            account = await session.get(Account, "acme")
        assert account is not None
        assert account.scored_as_of == TODAY and account.dirty is False

    async def test_backfill_is_bounded(self, sqlite_sessions: Sessions) -> None:
        await write_days(sqlite_sessions, "acme", days=10)
        await rescorer(sqlite_sessions, backfill_days=3).rescore_dirty()
        assert await score_days(sqlite_sessions, "acme") == [
            TODAY - timedelta(days=d) for d in (3, 2, 1, 0)
        ]

    async def test_already_scored_today_means_only_today_again(
        self, sqlite_sessions: Sessions
    ) -> None:
        await write_days(sqlite_sessions, "acme", days=5)
        r = rescorer(sqlite_sessions)
        await r.rescore_dirty()
        await write_days(sqlite_sessions, "acme", days=1, users=5)  # new events today: dirty again
        assert await r.rescore_dirty() == 1
        assert len(await score_days(sqlite_sessions, "acme")) == 5

    async def test_an_explicit_day_scores_only_that_day(self, sqlite_sessions: Sessions) -> None:
        await write_days(sqlite_sessions, "acme", days=10)
        await rescorer(sqlite_sessions).sweep(TODAY - timedelta(days=2))
        assert await score_days(sqlite_sessions, "acme") == [TODAY - timedelta(days=2)]

    async def test_nothing_dirty_scores_nothing(self, sqlite_sessions: Sessions) -> None:
        assert await rescorer(sqlite_sessions).rescore_dirty() == 0


class TestDryRun:
    async def test_lists_band_changes_and_writes_nothing(self, sqlite_sessions: Sessions) -> None:
        await write_days(sqlite_sessions, "acme", days=40)
        await write_days(sqlite_sessions, "beta", days=40, users=3, every=7)
        await rescorer(sqlite_sessions).sweep(TODAY)
        async with sqlite_sessions() as session:
            before = await session.scalar(select(func.count()).select_from(HealthScore))
            rows = await session.execute(select(Account.account_id, Account.band, Account.score))
            current = {a: (band, score) for a, band, score in rows}
        bands = {a: band for a, (band, _) in current.items()}
        # Every day, every user: full marks. Once a week: less, so red under this model.
        assert current["acme"] == ("green", 100.0)
        assert current["beta"][1] is not None and current["beta"][1] < 99.9
        strict = parse_config({"scoring": {"bands": {"green": 99.9, "yellow": 99.8}}})
        report = await rescorer(sqlite_sessions).dry_run(strict, TODAY)
        assert report.accounts == 2
        changed = {c.account_id: (c.before, c.after) for c in report.changes}
        assert changed == {"beta": (bands["beta"], "red")}
        async with sqlite_sessions() as session:
            assert await session.scalar(select(func.count()).select_from(HealthScore)) == before
            rows = await session.execute(select(Account.account_id, Account.band))
            assert {a: band for a, band in rows} == bands


class StopAfterFirstPublish(DelegatingProducer):
    """The in-process producer, asking the re-scorer to stop once its first chunk-day is
    published (a shutdown arriving in the middle of a long pass)."""

    def __init__(self, inner: InProcessProducer, stop: asyncio.Event) -> None:
        super().__init__(inner)
        self.shutdown = stop
        self.chunk_days = 0

    async def publish(
        self, topic: str, messages: Sequence[Message], *, timeout_s: float | None = None
    ) -> list[Delivery]:
        self.chunk_days += 1
        self.shutdown.set()
        return await super().publish(topic, messages, timeout_s=timeout_s)


async def stopping_rescorer(
    sqlite_sessions: Sessions, stop: asyncio.Event
) -> tuple[Rescorer, StopAfterFirstPublish]:
    producer = StopAfterFirstPublish(InProcessBus(sqlite_sessions, partitions=1).producer(), stop)
    await producer.start()
    clock = FixedClock(datetime.combine(TODAY, datetime.min.time(), UTC) + timedelta(hours=23))
    return Rescorer(sqlite_sessions, producer, TendConfig(), clock, chunk_size=1), producer


class TestStopEndsALongPass:
    """Shutdown is honoured between chunks and between days: a sweep or a backfill of many
    accounts does not hold the scorer's stop until it is done; what is left stays dirty."""

    async def test_run_returns_after_the_chunk_day_in_progress(
        self, sqlite_sessions: Sessions
    ) -> None:
        for n in range(4):
            await write_days(sqlite_sessions, f"acct-{n}", days=10)
        stop = asyncio.Event()
        r, producer = await stopping_rescorer(sqlite_sessions, stop)
        await asyncio.wait_for(r.run(stop), timeout=60)
        assert producer.chunk_days == 1
        scored = [await score_days(sqlite_sessions, f"acct-{n}") for n in range(4)]
        assert [len(days) for days in scored] == [1, 0, 0, 0]
        async with sqlite_sessions() as session:
            dirty = await session.scalar(select(func.count()).where(Account.dirty))
        assert dirty == 4  # acct-0's later days are still to do, the others untouched

    async def test_a_second_run_finishes_what_the_first_left(
        self, sqlite_sessions: Sessions
    ) -> None:
        for n in range(3):
            await write_days(sqlite_sessions, f"acct-{n}", days=5)
        stop = asyncio.Event()
        first, _ = await stopping_rescorer(sqlite_sessions, stop)
        await asyncio.wait_for(first.run(stop), timeout=60)
        second = rescorer(sqlite_sessions, chunk_size=1)
        assert await second.rescore_dirty() == 3
        assert [len(await score_days(sqlite_sessions, f"acct-{n}")) for n in range(3)] == [5, 5, 5]

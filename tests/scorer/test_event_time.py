"""Scores in event time: the score history is a function of the events, not of their arrival.

The same synthetic events are fed all at once, oldest first (live: the clock moving with the
batches; and as a backfill: small batches, the clock at the end) with the re-scorer running
between batches, and shuffled in batches; every way must leave the
same ``health_scores`` history (every account-day, every field but ``computed_at``), on
PostgreSQL and on SQLite, each way in a database of its own. Late events re-score the days
they touch and every later day, within the horizon and not beyond; the re-score mark is
durable, so a crash between the rollups' commit and the re-score loses nothing.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.rescorer import Rescorer
from services.scorer.writer import RollupWriter
from shared import topics
from shared.bus.base import BusUnavailable, Delivery, Message
from shared.bus.memory import InProcessBus, InProcessProducer
from shared.clock import FixedClock
from shared.db.migrate import upgrade_async
from shared.db.models import Account, BusRecord, HealthScore
from shared.db.session import create_engine, create_sessionmaker
from shared.events import CanonicalEvent
from shared.scores import ScoreMessage
from tests.scorer.synthetic import CONFIG, Replay, generate
from tests.support.events import create_event
from tests.support.postgres import create_database, drop_database
from tests.support.producers import DelegatingProducer

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
History = dict[tuple[str, date], dict[str, Any]]

REPLAY = generate("evt", weeks=4)
"""28 days of 7 archetypes, 2,968 events (a few of them out of order). Before the re-scorer
kept event time, the backfill and shuffled orders below left 6 and 17 of its 196 account-days
in another band than all at once, and about 150 of them with some other difference."""
HORIZON = 40
"""Longer than the replay, so every arrival order may re-score every day of it."""


@contextlib.asynccontextmanager
async def fresh_db(kind: str, db_file: Path) -> AsyncIterator[Sessions]:
    """A migrated, empty database of its own (the sweep scores every account in it); on
    SQLite, in ``db_file``."""
    if kind == "postgresql":
        url = await create_database("tend_evt")
    else:
        url = f"sqlite+aiosqlite:///{db_file}"
    try:
        await upgrade_async(url)
        engine = create_engine(url)
        try:
            yield create_sessionmaker(engine)
        finally:
            await engine.dispose()
    finally:
        if kind == "postgresql":
            await drop_database(url)


def end_of(day: date) -> datetime:
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)


async def flush(sessions: Sessions, events: Sequence[CanonicalEvent]) -> None:
    async with sessions() as session, session.begin():
        await RollupWriter().flush(session, "test", events, {})


async def history(sessions: Sessions) -> History:
    """Every stored account-day score, all fields but when it was computed."""
    async with sessions() as session:
        rows = (await session.execute(select(HealthScore))).scalars().all()
    return {
        (r.account_id, r.as_of): {
            "score": r.score,
            "band": r.band,
            "components": r.components,
            "left_out": r.left_out,
            "metrics": r.metrics,
            "moved": r.moved,
            "previous_score": r.previous_score,
            "previous_band": r.previous_band,
            "provisional": r.provisional,
        }
        for r in rows
    }


async def published(sessions: Sessions) -> list[ScoreMessage]:
    async with sessions() as session:
        values = await session.scalars(
            select(BusRecord.value)
            .where(BusRecord.topic == topics.SCORES)
            .order_by(BusRecord.partition, BusRecord.offset)
        )
        return [ScoreMessage.from_bytes(v) for v in values]


async def make_rescorer(
    sessions: Sessions, clock: FixedClock, horizon: int = HORIZON, producer: Any = None
) -> Rescorer:
    """A re-scorer publishing on the in-process bus kept in the same database."""
    producer = producer or InProcessBus(sessions, partitions=1).producer()
    await producer.start()
    return Rescorer(sessions, producer, CONFIG, clock, horizon_days=horizon)


def in_time_order(replay: Replay) -> list[CanonicalEvent]:
    return sorted(replay.events, key=lambda e: (e.occurred_at, e.event_id))


async def live(sessions: Sessions, replay: Replay) -> None:
    """Oldest first, a batch per day with the clock just past it and the re-scorer after each
    batch: the way a live system sees them (each day scored provisional, then final)."""
    clock = FixedClock(end_of(replay.start))
    rescorer = await make_rescorer(sessions, clock)
    by_day: dict[date, list[CanonicalEvent]] = {}
    for e in in_time_order(replay):
        by_day.setdefault(e.occurred_at.astimezone(UTC).date(), []).append(e)
    for day in sorted(by_day):
        await flush(sessions, by_day[day])
        clock.set(max(e.occurred_at for e in by_day[day]) + timedelta(minutes=1))
        await rescorer.rescore_dirty()
    clock.set(end_of(replay.end))
    await rescorer.sweep()


async def backfill(sessions: Sessions, replay: Replay) -> None:
    """Oldest first in 8 batches with the re-scorer after each, the clock at the end: the way
    ``tend demo`` loads history (the first batch is scored through today)."""
    rescorer = await make_rescorer(sessions, FixedClock(end_of(replay.end)))
    events = in_time_order(replay)
    size = len(events) // 8 + 1
    for start in range(0, len(events), size):
        await flush(sessions, events[start : start + size])
        await rescorer.rescore_dirty()
    await rescorer.sweep()


async def all_at_once(sessions: Sessions, replay: Replay) -> None:
    rescorer = await make_rescorer(sessions, FixedClock(end_of(replay.end)))
    await flush(sessions, replay.events)
    await rescorer.rescore_dirty()
    await rescorer.sweep()


async def shuffled(sessions: Sessions, replay: Replay) -> None:
    """Shuffled into six batches, the re-scorer after each, the clock at the end."""
    rescorer = await make_rescorer(sessions, FixedClock(end_of(replay.end)))
    events = list(replay.events)
    random.Random(11).shuffle(events)
    size = len(events) // 6 + 1
    for start in range(0, len(events), size):
        await flush(sessions, events[start : start + size])
        await rescorer.rescore_dirty()
    await rescorer.sweep()


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
class TestArrivalOrder:
    async def test_every_arrival_order_gives_one_history(self, kind: str, tmp_path: Path) -> None:
        histories: dict[str, History] = {}
        last_published: dict[str, dict[tuple[str, date], ScoreMessage]] = {}
        ways = (
            ("all at once", all_at_once),
            ("oldest first, live", live),
            ("oldest first, backfill", backfill),
            ("shuffled", shuffled),
        )
        for n, (name, feed) in enumerate(ways):
            async with fresh_db(kind, tmp_path / f"way{n}.db") as sessions:
                await feed(sessions, REPLAY)
                histories[name] = await history(sessions)
                messages = await published(sessions)
                async with sessions() as session:
                    pending = await session.scalars(
                        select(Account.account_id).where(
                            Account.dirty.is_(True) | Account.rescore_from.is_not(None)
                        )
                    )
                    assert list(pending) == [], f"{name}: marks left behind"
            # Per account, days go out in ascending order within each re-score pass, and the
            # last message of each (account, day) is the stored score.
            last_published[name] = {(m.account_id, m.as_of): m for m in messages}

        reference = histories["all at once"]
        days = (REPLAY.end - REPLAY.start).days + 1
        assert len(reference) == len(REPLAY.accounts) * days
        for name, got in histories.items():
            differ = sorted(
                k for k in reference.keys() | got.keys() if reference.get(k) != got.get(k)
            )
            assert differ == [], f"{name}: {len(differ)} account-days differ, first {differ[:3]}"
            assert {k: m.band for k, m in last_published[name].items()} == {
                k: row["band"] for k, row in got.items()
            }
        assert {k[1] for k, row in reference.items() if row["provisional"]} == {REPLAY.end}


async def account_history(sessions: Sessions, account: str) -> dict[date, HealthScore]:
    async with sessions() as session:
        rows = await session.scalars(select(HealthScore).where(HealthScore.account_id == account))
        return {r.as_of: r for r in rows}


TODAY = date(2026, 11, 20)


def logins(account: str, days: range, users: int, tag: str) -> list[CanonicalEvent]:
    return [
        create_event(
            f"{account}-{tag}-{d}-{u}",
            account_id=account,
            user_id=f"{account}-u{u}",
            name="Signed In",
            is_login=True,
            at=datetime.combine(TODAY - timedelta(days=d), time(9), UTC),
        )
        for d in days
        for u in range(users)
    ]


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
class TestLateEvents:
    async def test_rescore_the_day_they_touch_and_every_later_day(
        self, kind: str, tmp_path: Path
    ) -> None:
        async with fresh_db(kind, tmp_path / "tend.db") as sessions:
            rescorer = await make_rescorer(sessions, FixedClock(end_of(TODAY)), horizon=35)
            await flush(sessions, logins("acme", range(20, -1, -1), users=3, tag="on-time"))
            await rescorer.rescore_dirty()
            before = await account_history(sessions, "acme")
            published_before = rescorer.published

            # A fourth user, ten days ago, arriving now.
            await flush(sessions, logins("acme", range(10, 9, -1), users=4, tag="late"))
            await rescorer.rescore_dirty()
            after = await account_history(sessions, "acme")
            messages = await published(sessions)

        late = TODAY - timedelta(days=10)
        assert sorted(after) == sorted(before)
        for day, row in after.items():
            expected_mau = 4 if day >= late else 3
            assert row.metrics["mau"] == expected_mau, day
            if day < late:
                assert row.computed_at == before[day].computed_at, day
        republished = [m.as_of for m in messages[published_before:]]
        assert republished == [late + timedelta(days=i) for i in range(11)]

    async def test_never_beyond_the_horizon(self, kind: str, tmp_path: Path) -> None:
        async with fresh_db(kind, tmp_path / "tend.db") as sessions:
            rescorer = await make_rescorer(sessions, FixedClock(end_of(TODAY)), horizon=5)
            await flush(sessions, logins("acme", range(20, -1, -1), users=3, tag="on-time"))
            await rescorer.rescore_dirty()
            await flush(sessions, logins("acme", range(10, 9, -1), users=4, tag="late"))
            await rescorer.rescore_dirty()
            after = await account_history(sessions, "acme")
            async with sessions() as session:
                account = await session.get(Account, "acme")

        horizon_start = TODAY - timedelta(days=5)
        assert {d for d, r in after.items() if r.metrics["mau"] == 4} == {
            horizon_start + timedelta(days=i) for i in range(6)
        }
        assert account is not None
        assert (account.rescore_from, account.dirty) == (None, False)


class FailingProducer(DelegatingProducer):
    """The in-process producer, refusing every publish after the first ``ok`` ones (a broker
    outage in the middle of a re-score pass)."""

    def __init__(self, inner: InProcessProducer, ok: int) -> None:
        super().__init__(inner)
        self.ok = ok

    async def publish(
        self, topic: str, messages: Sequence[Message], *, timeout_s: float | None = None
    ) -> list[Delivery]:
        if self.ok <= 0:
            raise BusUnavailable("broker went away")
        self.ok -= 1
        return await super().publish(topic, messages, timeout_s=timeout_s)


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
class TestDurableMark:
    async def test_a_crash_after_the_rollups_commit_still_rescores(
        self, kind: str, tmp_path: Path
    ) -> None:
        async with fresh_db(kind, tmp_path / "tend.db") as sessions:
            clock = FixedClock(end_of(TODAY))
            first = await make_rescorer(sessions, clock, horizon=35)
            await flush(sessions, logins("acme", range(20, -1, -1), users=3, tag="on-time"))
            await first.rescore_dirty()
            # The late batch commits, then the process dies before its re-score runs.
            await flush(sessions, logins("acme", range(10, 9, -1), users=4, tag="late"))
            async with sessions() as session:
                account = await session.get(Account, "acme")
            assert account is not None
            assert account.rescore_from == TODAY - timedelta(days=10)

            restarted = await make_rescorer(sessions, clock, horizon=35)
            assert await restarted.rescore_dirty() == 1
            after = await account_history(sessions, "acme")
        assert {d for d, r in after.items() if r.metrics["mau"] == 4} == {
            TODAY - timedelta(days=i) for i in range(11)
        }

    async def test_a_pass_that_fails_halfway_resumes_where_it_stopped(
        self, kind: str, tmp_path: Path
    ) -> None:
        async with fresh_db(kind, tmp_path / "crash.db") as sessions:
            clock = FixedClock(end_of(TODAY))
            bus = InProcessBus(sessions, partitions=1)
            failing = FailingProducer(bus.producer(), ok=4)
            crashing = await make_rescorer(sessions, clock, horizon=35, producer=failing)
            await flush(sessions, logins("acme", range(20, -1, -1), users=3, tag="on-time"))
            with pytest.raises(BusUnavailable):
                await crashing.rescore_dirty()
            async with sessions() as session:
                account = await session.get(Account, "acme")
            assert account is not None
            # Four days were scored and committed; the mark moved past them, no further.
            assert (account.rescore_from, account.dirty) == (TODAY - timedelta(days=16), True)

            resumed = await make_rescorer(sessions, clock, horizon=35)
            await resumed.rescore_dirty()
            crashed = await history(sessions)
            async with sessions() as session:
                account = await session.get(Account, "acme")
            assert account is not None and account.rescore_from is None

        async with fresh_db(kind, tmp_path / "clean.db") as sessions:
            clean = await make_rescorer(sessions, FixedClock(end_of(TODAY)), horizon=35)
            await flush(sessions, logins("acme", range(20, -1, -1), users=3, tag="on-time"))
            await clean.rescore_dirty()
            assert crashed == await history(sessions)

"""The re-scorer on PostgreSQL reads the next chunk-day while it scores one (``overlap``): the
same stored history and the same published messages, in the same order, as one chunk-day after
the other; a revoke between two chunk-days drops what was read ahead; a stop ends the pass
between them, with nothing of the next one written and no connection left checked out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.rescorer import Rescorer
from services.scorer.writer import RollupWriter
from shared import topics
from shared.bus.base import Delivery, Message, TopicPartition
from shared.bus.memory import InProcessBus, InProcessProducer
from shared.clock import FixedClock
from shared.config import TendConfig
from shared.db.migrate import upgrade_async
from shared.db.models import Account, BusRecord, HealthScore
from shared.db.session import create_engine, create_sessionmaker
from shared.events import CanonicalEvent
from shared.ownership import Ownership
from shared.scores import ScoreMessage
from tests.scorer.synthetic import CONFIG, generate
from tests.support.events import create_event
from tests.support.postgres import create_database, drop_database
from tests.support.producers import DelegatingProducer

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
REPLAY = generate("ovl", weeks=3, per_archetype=2)
"""14 accounts over 21 days, a few events late."""
TODAY = date(2026, 11, 20)


def end_of(day: date) -> datetime:
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)


async def flush(sessions: Sessions, events: Sequence[CanonicalEvent]) -> None:
    async with sessions() as session, session.begin():
        await RollupWriter().flush(session, "test", events, {})


async def stored(sessions: Sessions) -> dict[tuple[str, date], tuple[Any, ...]]:
    """Every stored account-day score, all fields but when it was computed."""
    async with sessions() as session:
        rows = (await session.execute(select(HealthScore))).scalars().all()
    return {
        (r.account_id, r.as_of): (
            r.score,
            r.band,
            r.components,
            r.left_out,
            r.metrics,
            r.moved,
            r.previous_score,
            r.previous_band,
            r.provisional,
        )
        for r in rows
    }


async def published(sessions: Sessions) -> list[dict[str, Any]]:
    """The published scores in publication order, but when each was computed."""
    async with sessions() as session:
        values = await session.scalars(
            select(BusRecord.value)
            .where(BusRecord.topic == topics.SCORES)
            .order_by(BusRecord.partition, BusRecord.offset)
        )
        return [
            ScoreMessage.from_bytes(v).model_dump(mode="json", exclude={"computed_at"})
            for v in values
        ]


async def run_passes(
    overlap: bool, chunk_size: int
) -> tuple[dict[tuple[str, date], tuple[Any, ...]], list[dict[str, Any]], int]:
    """In a database of its own: half the events (oldest first), a pass over the dirty
    accounts, the rest (late ones among them), another pass, a sweep and a sweep of one
    explicit day. Returns (stored scores, published scores, chunk-days read ahead)."""
    url = await create_database("tend_overlap")
    try:
        await upgrade_async(url)
        engine = create_engine(url)
        try:
            sessions = create_sessionmaker(engine)
            producer = InProcessBus(sessions, partitions=1).producer()
            await producer.start()
            clock = FixedClock(end_of(REPLAY.end))
            r = Rescorer(sessions, producer, CONFIG, clock, chunk_size=chunk_size, overlap=overlap)
            events = sorted(REPLAY.events, key=lambda e: (e.occurred_at, e.event_id))
            half = len(events) // 2
            await flush(sessions, events[:half])
            assert await r.rescore_dirty() > 0
            await flush(sessions, events[half:])
            assert await r.rescore_dirty() > 0
            assert await r.sweep() == len(REPLAY.accounts)
            assert await r.sweep(REPLAY.end - timedelta(days=4)) == len(REPLAY.accounts)
            return await stored(sessions), await published(sessions), r.read_ahead
        finally:
            await engine.dispose()
    finally:
        await drop_database(url)


class TestReadAheadChangesNothing:
    @pytest.mark.parametrize("chunk_size", [1, 3, 500])
    async def test_same_history_and_messages_as_one_chunk_day_after_the_other(
        self, chunk_size: int
    ) -> None:
        history, messages, ahead = await run_passes(overlap=True, chunk_size=chunk_size)
        reference, reference_messages, none_ahead = await run_passes(
            overlap=False, chunk_size=chunk_size
        )
        assert none_ahead == 0
        # One chunk holds every account at 500: nothing to read ahead of.
        assert (ahead > 0) == (chunk_size < len(REPLAY.accounts))
        assert len(history) > len(REPLAY.accounts) * 10
        assert history == reference
        assert messages == reference_messages


class OnFirstPublish(DelegatingProducer):
    """The in-process producer, running ``action`` at the first publish (while the first
    chunk-day holds the ownership lock)."""

    def __init__(self, inner: InProcessProducer, action: Callable[[], Awaitable[None]]) -> None:
        super().__init__(inner)
        self.action = action
        self.chunk_days = 0

    async def publish(
        self, topic: str, messages: Sequence[Message], *, timeout_s: float | None = None
    ) -> list[Delivery]:
        self.chunk_days += 1
        if self.chunk_days == 1:
            await self.action()
        return await super().publish(topic, messages, timeout_s=timeout_s)


async def seed_today(sessions: Sessions, accounts: Sequence[str]) -> None:
    at = datetime.combine(TODAY, time(9), tzinfo=UTC)
    await flush(
        sessions,
        [
            create_event(f"{a}-e", account_id=a, user_id=f"{a}-u", is_login=True, at=at)
            for a in accounts
        ],
    )


async def scored_accounts(sessions: Sessions) -> set[str]:
    async with sessions() as session:
        return set(await session.scalars(select(HealthScore.account_id).distinct()))


def clock() -> FixedClock:
    return FixedClock(end_of(TODAY))


class TestRevokeBetweenChunkDays:
    async def test_the_read_ahead_of_a_revoked_partition_is_not_scored(
        self, database: tuple[str, Sessions]
    ) -> None:
        _, sessions = database
        accounts = [f"acct-{n:02d}" for n in range(12)]
        await seed_today(sessions, accounts)
        ownership = Ownership(topics.EVENTS)
        await ownership.assign([TopicPartition(topics.EVENTS, p) for p in (0, 1)], 2)
        first = accounts[:2]
        later_on_1 = [a for a in accounts[2:4] if ownership.partition_of(a) == 1]
        assert later_on_1, "the second chunk must hold an account of partition 1"
        revoked: list[asyncio.Task[None]] = []

        async def revoke_partition_1() -> None:
            # Waits for the lock the first chunk-day holds, as the consumer's on_revoke does.
            revoked.append(
                asyncio.ensure_future(ownership.revoke([TopicPartition(topics.EVENTS, 1)]))
            )

        producer = OnFirstPublish(
            InProcessBus(sessions, partitions=1).producer(), revoke_partition_1
        )
        await producer.start()
        r = Rescorer(sessions, producer, TendConfig(), clock(), chunk_size=2, ownership=ownership)
        assert r.overlaps()
        await r.sweep(TODAY)
        await revoked[0]
        on_0 = {a for a in accounts if ownership.partition_of(a) == 0}
        assert await scored_accounts(sessions) == set(first) | on_0


class TestStopBetweenChunkDays:
    async def test_the_read_ahead_is_dropped_and_its_connection_returned(self) -> None:
        url = await create_database("tend_overlap")
        try:
            await upgrade_async(url)
            engine = create_engine(url)
            try:
                sessions = create_sessionmaker(engine)
                accounts = [f"acct-{n}" for n in range(4)]
                await seed_today(sessions, accounts)
                stop = asyncio.Event()

                async def stop_now() -> None:
                    stop.set()

                producer = OnFirstPublish(InProcessBus(sessions, partitions=1).producer(), stop_now)
                await producer.start()
                r = Rescorer(sessions, producer, TendConfig(), clock(), chunk_size=1)
                await asyncio.wait_for(r.run(stop), timeout=60)
                assert producer.chunk_days == 1
                assert await scored_accounts(sessions) == {"acct-0"}
                async with sessions() as session:
                    dirty = await session.scalar(select(func.count()).where(Account.dirty))
                assert dirty == 3
                assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
            finally:
                await engine.dispose()
        finally:
            await drop_database(url)

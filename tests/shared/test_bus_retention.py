"""Pruning of the in-process bus: bounded under a long run, and nothing unconsumed ever goes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.bus import Message, Record, TopicPartition, create_bus
from shared.bus.memory import InProcessBus, InProcessConsumer
from shared.db.models import BusRecord
from shared.db.session import create_engine, create_sessionmaker
from shared.settings import Settings

pytestmark = pytest.mark.integration

PARTITIONS = 3
DEADLINE_S = 60.0
"""Safety net so a broken bus fails the test instead of hanging it; never an assertion."""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def messages(n: int, start: int = 0) -> list[Message]:
    return [
        Message(value=f"v{i}".encode(), key=f"account-{i % 7}".encode())
        for i in range(start, start + n)
    ]


@pytest.fixture(params=["sqlite", "postgres"])
def retention_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


@pytest_asyncio.fixture
async def engine(retention_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(retention_url)
    yield engine
    await engine.dispose()


def new_bus(engine: AsyncEngine, *, retention_s: float = 0.0) -> InProcessBus:
    # prune_interval_s tiny: every commit prunes, the worst case for the reader's safety.
    return InProcessBus(
        create_sessionmaker(engine), PARTITIONS, retention_s=retention_s, prune_interval_s=1e-6
    )


async def publish(bus: InProcessBus, topic: str, batch: list[Message]) -> None:
    producer = bus.producer()
    await producer.start()
    await producer.publish(topic, batch)
    await producer.stop()


async def consume(consumer: InProcessConsumer, n: int) -> list[Record]:
    records: list[Record] = []
    async with asyncio.timeout(DEADLINE_S):
        while len(records) < n:
            records.extend(await consumer.poll(max_records=500, timeout_s=1.0))
    return records


async def commit_all(consumer: InProcessConsumer, records: list[Record]) -> None:
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        offsets[r.tp] = max(offsets.get(r.tp, 0), r.offset + 1)
    await consumer.commit(offsets)


async def held(engine: AsyncEngine, topic: str) -> list[tuple[int, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(BusRecord.partition, BusRecord.offset)
            .where(BusRecord.topic == topic)
            .order_by(BusRecord.partition, BusRecord.offset)
        )
        return [(int(p), int(o)) for p, o in rows]


class TestBounded:
    async def test_a_long_run_keeps_rows_and_file_bounded(
        self, engine: AsyncEngine, retention_url: str
    ) -> None:
        topic = unique("t")
        bus = new_bus(engine)
        consumer = bus.consumer(unique("g"), [topic])
        await consumer.start()
        rounds, per_round = 60, 200
        sizes: list[int] = []
        try:
            for r in range(rounds):
                await publish(bus, topic, messages(per_round, r * per_round))
                records = await consume(consumer, per_round)
                await commit_all(consumer, records)
                # Only the newest record of each partition outlives its consumption.
                assert len(await held(engine, topic)) <= PARTITIONS
                if make_url(retention_url).get_backend_name() == "sqlite":
                    async with engine.connect() as conn:
                        await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
                        pages = await conn.execute(text("PRAGMA page_count"))
                        sizes.append(int(pages.scalar_one()))
        finally:
            await bus.close()
        assert bus.pruned >= rounds * per_round - PARTITIONS
        if sizes:
            # Freed pages are reused: the file stops growing once the first rounds filled it.
            assert sizes[-1] <= sizes[rounds // 4]

    async def test_a_retention_keeps_consumed_records_that_long(self, engine: AsyncEngine) -> None:
        topic = unique("t")
        bus = new_bus(engine, retention_s=3600)
        consumer = bus.consumer(unique("g"), [topic])
        await consumer.start()
        try:
            await publish(bus, topic, messages(30))
            await commit_all(consumer, await consume(consumer, 30))
            assert await bus.prune() == 0
        finally:
            await bus.close()
        assert len(await held(engine, topic)) == 30


class TestNothingUnconsumedGoes:
    async def test_the_slowest_group_holds_records_even_while_stopped(
        self, engine: AsyncEngine
    ) -> None:
        topic, fast_group, slow_group = unique("t"), unique("fast"), unique("slow")
        bus = new_bus(engine)
        fast = bus.consumer(fast_group, [topic])
        slow = bus.consumer(slow_group, [topic])
        await fast.start()
        await slow.start()
        await publish(bus, topic, messages(60))
        # The slow group commits a third of what it read, then stops (a restart).
        seen = await consume(slow, 60)
        kept = sorted(seen, key=lambda r: r.offset)[:20]
        await commit_all(slow, kept)
        await slow.stop()
        committed_slow = {r.tp: r.offset + 1 for r in kept}
        await commit_all(fast, await consume(fast, 60))
        await bus.prune()
        for partition, offset in await held(engine, topic):
            assert offset >= committed_slow.get(TopicPartition(topic, partition), 0)
        # The restarted slow group finds every record it had not committed.
        slow = bus.consumer(slow_group, [topic])
        await slow.start()
        try:
            expected = {
                (r.partition, r.offset) for r in seen if r.offset >= committed_slow.get(r.tp, 0)
            }
            again = await consume(slow, len(expected))
            assert {(r.partition, r.offset) for r in again} == expected
        finally:
            await bus.close()

    async def test_a_running_group_that_never_committed_holds_everything(
        self, engine: AsyncEngine
    ) -> None:
        topic = unique("t")
        bus = new_bus(engine)
        reader = bus.consumer(unique("g"), [topic])
        idle = bus.consumer(unique("idle"), [topic])
        await reader.start()
        await idle.start()
        try:
            await publish(bus, topic, messages(25))
            await commit_all(reader, await consume(reader, 25))
            assert await bus.prune() == 0
            assert len(await held(engine, topic)) == 25
        finally:
            await bus.close()

    async def test_a_topic_no_group_reads_is_kept(self, engine: AsyncEngine) -> None:
        dead_letters, topic = unique("dlq"), unique("t")
        bus = new_bus(engine)
        consumer = bus.consumer(unique("g"), [topic])
        await consumer.start()
        try:
            await publish(bus, dead_letters, messages(10))
            await publish(bus, topic, messages(10))
            await commit_all(consumer, await consume(consumer, 10))
            await bus.prune()
            assert len(await held(engine, dead_letters)) == 10
        finally:
            await bus.close()

    async def test_offsets_continue_after_everything_consumed_was_pruned(
        self, engine: AsyncEngine
    ) -> None:
        topic, group = unique("t"), unique("g")
        bus = new_bus(engine)
        consumer = bus.consumer(group, [topic])
        await consumer.start()
        first = await publish_and_consume(bus, consumer, topic, messages(30))
        await bus.prune()
        await bus.close()
        # A new process on the same database: offsets go on, never reused.
        bus = new_bus(engine)
        consumer = bus.consumer(group, [topic])
        await consumer.start()
        try:
            later = await publish_and_consume(bus, consumer, topic, messages(30, 30))
        finally:
            await bus.close()
        last: dict[int, int] = {}
        for r in first:
            last[r.partition] = max(last.get(r.partition, -1), r.offset)
        for r in later:
            assert r.offset > last.get(r.partition, -1)


async def publish_and_consume(
    bus: InProcessBus, consumer: InProcessConsumer, topic: str, batch: list[Message]
) -> list[Record]:
    await publish(bus, topic, batch)
    records = await consume(consumer, len(batch))
    await commit_all(consumer, records)
    return records


class TestSettings:
    def test_the_factory_passes_the_retention(self, pg_sessions: object) -> None:
        settings = Settings(bus={"retention_s": 60, "prune_interval_s": 2})
        bus = create_bus(settings, pg_sessions)  # type: ignore[arg-type]
        assert isinstance(bus, InProcessBus)
        assert (bus.retention_s, bus.prune_interval_s) == (60, 2)

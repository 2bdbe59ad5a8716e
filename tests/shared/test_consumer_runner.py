"""The batch runner: the database's offsets decide where a group resumes (in-process bus)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import Message, Record, TopicPartition, TopicSpec
from shared.bus.memory import InProcessBus
from shared.consumer import BatchConsumer, PoisonRecord
from shared.db.offsets import load_offsets, store_offsets
from shared.db.session import create_engine, create_sessionmaker

TOPIC = "runner.test"


class Collect:
    """Keeps what each committed batch held; rejects the value b"poison"."""

    def __init__(self) -> None:
        self.flushed: list[bytes] = []
        self.seen = asyncio.Event()

    def decode(self, record: Record) -> bytes:
        if record.value == b"poison":
            raise PoisonRecord("poison for the test")
        return record.value

    async def flush(self, session: AsyncSession, items: Sequence[bytes]) -> None:
        self.flushed.extend(items)

    async def after_commit(self, items: Sequence[bytes]) -> None:
        self.seen.set()


@pytest_asyncio.fixture
async def sessions(sqlite_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(sqlite_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def run_until(runner: BatchConsumer[bytes], handler: Collect, n: int) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    for _ in range(200):
        if len(handler.flushed) >= n:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 30)


async def publish(bus: InProcessBus, values: list[bytes]) -> None:
    producer = bus.producer()
    await producer.start()
    await producer.ensure_topics([TopicSpec(TOPIC, 1), TopicSpec("runner.dlq", 1)])
    await producer.publish(TOPIC, [Message(value=v, key=b"k") for v in values])
    await producer.stop()


class TestResume:
    async def test_no_stored_offset_means_from_the_start_whatever_the_bus_remembers(
        self, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        bus = InProcessBus(sessions, 1)
        await publish(bus, [b"a", b"b", b"c"])
        # The bus remembers the group at the end (e.g. a group reused on a fresh database).
        consumer = bus.consumer("g", [TOPIC])
        await consumer.start()
        await consumer.commit({TopicPartition(TOPIC, 0): 3})
        await consumer.stop()

        handler = Collect()
        runner = BatchConsumer(
            bus, sessions, group_id="g", topics=[TOPIC], handler=handler, dlq_topic="runner.dlq"
        )
        await run_until(runner, handler, 3)
        assert handler.flushed == [b"a", b"b", b"c"]
        await bus.close()

    async def test_resumes_after_the_stored_offset_and_stores_the_next_one(
        self, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        bus = InProcessBus(sessions, 1)
        await publish(bus, [b"a", b"b", b"poison", b"d"])
        async with sessions() as session, session.begin():
            await store_offsets(session, "g", {TopicPartition(TOPIC, 0): 1})
        handler = Collect()
        runner = BatchConsumer(
            bus, sessions, group_id="g", topics=[TOPIC], handler=handler, dlq_topic="runner.dlq"
        )
        await run_until(runner, handler, 2)
        assert handler.flushed == [b"b", b"d"]  # poison went to the DLQ, not to the handler
        async with sessions() as session:
            stored = await load_offsets(session, "g", [TopicPartition(TOPIC, 0)])
        assert stored == {TopicPartition(TOPIC, 0): 4}
        await bus.close()

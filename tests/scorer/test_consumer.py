"""The scorer's consumer on the real broker and PostgreSQL: poison records go to the DLQ and
the partition keeps flowing; the database going away stops and retries the batch, and nothing
is lost or counted twice once it is back."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from services.scorer.consumer import ScorerService
from shared import topics
from shared.bus import Message, Record
from shared.clock import FixedClock
from shared.db.migrate import upgrade_async
from tests.scorer.synthetic import (
    CONFIG,
    Stack,
    end_offsets,
    expected_rollups,
    generate,
    kafka_stack,
    publish,
    read_rollups,
    to_message,
    wait_for_offsets,
    wait_until,
)
from tests.support.broker import TansuBroker
from tests.support.events import create_event
from tests.support.postgres import SERVER_DSN, create_database, drop_database

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def private_pg() -> AsyncIterator[str]:
    """A database of this test alone: it may be made unreachable without harming others."""
    url = await create_database("tend_consumer")
    await upgrade_async(url)
    yield url
    await set_connections(url, allowed=True)
    await drop_database(url)


async def set_connections(url: str, *, allowed: bool) -> None:
    """Let clients connect to the database of ``url`` or not; when not, also end every session
    open on it. The PostgreSQL server itself (shared by every test) keeps running."""
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(SERVER_DSN)
    try:
        await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
    finally:
        await conn.close()


def flush_retries(group_id: str) -> float:
    value = REGISTRY.get_sample_value("tend_consumer_flush_retries_total", {"group": group_id})
    return value or 0.0


def start_service(stack: Stack, group_id: str) -> tuple[asyncio.Event, asyncio.Task[None]]:
    service = ScorerService(
        stack.bus,
        stack.sessions,
        stack.producer,
        CONFIG,
        FixedClock(generate("x", weeks=1).as_of_datetime()),
        group_id=group_id,
        max_records=100,
        max_wait_s=0.1,
    )
    stop = asyncio.Event()
    return stop, asyncio.create_task(service.run(stop))


async def stop_service(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await asyncio.wait_for(task, 60)


async def read_topic(stack: Stack, topic: str, n: int) -> list[Record]:
    consumer = stack.bus.consumer(f"reader-{uuid.uuid4().hex[:8]}", [topic])
    await consumer.start()
    got: list[Record] = []
    try:

        async def enough() -> bool:
            got.extend(await consumer.poll(max_records=100, timeout_s=0.5))
            return len(got) >= n

        await wait_until(enough, timeout_s=60, what=f"{n} records on {topic}")
    finally:
        await consumer.stop()
    return got


class TestPoisonRecords:
    async def test_poison_goes_to_the_dlq_and_the_partition_flows(
        self, own_broker: TansuBroker, private_pg: str
    ) -> None:
        account = f"poison-{uuid.uuid4().hex[:8]}"
        key = account.encode()
        good = [
            create_event(f"{account}-{i}", account_id=account, user_id=f"u{i}", is_login=True)
            for i in range(3)
        ]
        no_account = create_event(f"{account}-x", account_id=None, user_id="u9")
        poison = [
            Message(value=b"\x00not json at all", key=key),
            Message(value=json.dumps({"hello": "world"}).encode(), key=key),
            Message(value=no_account.to_bytes(), key=key),
        ]
        # One key, so one partition: good, poison, good, poison, poison, good.
        stream = [
            to_message(good[0]),
            poison[0],
            to_message(good[1]),
            poison[1],
            poison[2],
            to_message(good[2]),
        ]
        stream = [Message(value=m.value, key=key) for m in stream]
        group = f"scorer-{uuid.uuid4().hex[:8]}"
        async with kafka_stack(own_broker.bootstrap, private_pg) as stack:
            deliveries = await publish(stack.producer, topics.EVENTS, stream)
            assert len({d.partition for d in deliveries}) == 1
            stop, task = start_service(stack, group)
            try:
                await wait_for_offsets(stack.sessions, group, end_offsets(deliveries))
            finally:
                await stop_service(stop, task)

            dead = await read_topic(stack, topics.EVENTS_DLQ, 3)
            assert [r.value for r in dead] == [m.value for m in poison]
            offsets = [deliveries[i].offset for i in (1, 3, 4)]
            assert [int(r.header("source_offset") or b"-1") for r in dead] == offsets
            errors = [(r.header("error") or b"").decode() for r in dead]
            assert errors[0].startswith("ValidationError") and "Invalid JSON" in errors[0]
            assert errors[1].startswith("ValidationError") and "event_id" in errors[1]
            assert errors[2] == f"PoisonRecord: track event '{account}-x' has no account_id"
            for r in dead:
                assert r.header("source_topic") == topics.EVENTS.encode()
                assert r.header("consumer_group") == group.encode()
                assert r.key == key

            assert await read_rollups(stack.sessions, [account]) == expected_rollups(good)
        dlq_metric = REGISTRY.get_sample_value(
            "tend_consumer_dlq_records_total", {"group": group, "topic": topics.EVENTS}
        )
        assert dlq_metric == 3


class TestDatabaseOutage:
    async def test_batch_is_retried_until_the_database_is_back(
        self, own_broker: TansuBroker, private_pg: str
    ) -> None:
        replay = generate(uuid.uuid4().hex[:8], weeks=2)
        half = len(replay.events) // 2
        first, second = replay.events[:half], replay.events[half:]
        group = f"scorer-{uuid.uuid4().hex[:8]}"
        async with kafka_stack(own_broker.bootstrap, private_pg) as stack:
            stop, task = start_service(stack, group)
            try:
                ends = end_offsets(
                    await publish(stack.producer, topics.EVENTS, [to_message(e) for e in first])
                )
                await wait_for_offsets(stack.sessions, group, ends)
                assert await read_rollups(stack.sessions) == expected_rollups(first)

                retries_before = flush_retries(group)
                await set_connections(private_pg, allowed=False)
                try:
                    ends = end_offsets(
                        await publish(
                            stack.producer, topics.EVENTS, [to_message(e) for e in second]
                        )
                    )
                    # The batch fails and is retried (with backoff) while the database is away.
                    await wait_until(
                        lambda: flush_retries(group) >= retries_before + 2,
                        timeout_s=60,
                        what="flush retries",
                    )
                    assert not task.done()
                finally:
                    await set_connections(private_pg, allowed=True)
                await wait_for_offsets(stack.sessions, group, ends)
            finally:
                await stop_service(stop, task)
            assert await read_rollups(stack.sessions) == expected_rollups(replay.events)

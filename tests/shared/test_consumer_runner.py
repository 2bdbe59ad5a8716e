"""The batch runner: the database's offsets decide where a group resumes; poison records never
stall it; transient failures are retried and give way to stop; the lag gauge tells the truth,
and an offset past the log's end is caught (tansu + PostgreSQL, in-process bus on SQLite and
PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import metrics
from shared.bus import Bus, Message, Record, TopicPartition, TopicSpec
from shared.bus.kafka import KafkaBus
from shared.bus.memory import InProcessBus
from shared.consumer import BatchConsumer, PoisonRecord, RunnerOptions
from shared.db.offsets import load_offsets, store_offsets
from shared.db.session import create_engine, create_sessionmaker
from shared.retry import Backoff
from shared.settings import KafkaSettings
from tests.scorer.synthetic import wait_until

DEADLINE_S = 60.0
"""Safety net so a broken runner fails the test instead of hanging it; never an assertion."""

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
        self, sqlite_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        bus = InProcessBus(sqlite_sessions, 1)
        await publish(bus, [b"a", b"b", b"c"])
        # The bus remembers the group at the end (e.g. a group reused on a fresh database).
        consumer = bus.consumer("g", [TOPIC])
        await consumer.start()
        await consumer.commit({TopicPartition(TOPIC, 0): 3})
        await consumer.stop()

        handler = Collect()
        runner = BatchConsumer(
            bus,
            sqlite_sessions,
            group_id="g",
            topics=[TOPIC],
            handler=handler,
            dlq_topic="runner.dlq",
        )
        await run_until(runner, handler, 3)
        assert handler.flushed == [b"a", b"b", b"c"]
        await bus.close()

    async def test_resumes_after_the_stored_offset_and_stores_the_next_one(
        self, sqlite_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        bus = InProcessBus(sqlite_sessions, 1)
        await publish(bus, [b"a", b"b", b"poison", b"d"])
        async with sqlite_sessions() as session, session.begin():
            await store_offsets(session, "g", {TopicPartition(TOPIC, 0): 1})
        handler = Collect()
        runner = BatchConsumer(
            bus,
            sqlite_sessions,
            group_id="g",
            topics=[TOPIC],
            handler=handler,
            dlq_topic="runner.dlq",
        )
        await run_until(runner, handler, 2)
        assert handler.flushed == [b"b", b"d"]  # poison went to the DLQ, not to the handler
        async with sqlite_sessions() as session:
            stored = await load_offsets(session, "g", [TopicPartition(TOPIC, 0)])
        assert stored == {TopicPartition(TOPIC, 0): 4}
        await bus.close()


class Sizes(Collect):
    """Also keeps the size of every flushed batch."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    async def flush(self, session: AsyncSession, items: Sequence[bytes]) -> None:
        self.sizes.append(len(items))
        await super().flush(session, items)


class TestAdaptiveBatches:
    async def test_full_batches_double_up_to_the_lagging_limit_then_it_resets(
        self, sqlite_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        bus = InProcessBus(sqlite_sessions, 1)
        values = [f"v{i}".encode() for i in range(50)]
        await publish(bus, values)
        handler = Sizes()
        runner = BatchConsumer(
            bus,
            sqlite_sessions,
            group_id="g",
            topics=[TOPIC],
            handler=handler,
            dlq_topic="runner.dlq",
            max_records=4,
            max_records_lagging=16,
            max_wait_s=0.2,
        )
        await run_until(runner, handler, 50)
        assert handler.flushed == values  # in order, each once
        assert handler.sizes[:3] == [4, 8, 16]
        assert max(handler.sizes) == 16
        assert runner.batch_limit == 4  # caught up: back to the small batches
        await bus.close()

    def test_without_a_lagging_limit_the_size_stays(
        self, sqlite_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        runner: BatchConsumer[bytes] = BatchConsumer(
            InProcessBus(sqlite_sessions, 1),
            sqlite_sessions,
            group_id="g",
            topics=[TOPIC],
            handler=Collect(),
            dlq_topic="runner.dlq",
            max_records=4,
        )
        assert runner.max_records_lagging == 4


class Collector(Collect):
    """Also notes whether the cyclic collector was on in each decode and flush."""

    def __init__(self) -> None:
        super().__init__()
        self.collector_on: list[bool] = []

    def decode(self, record: Record) -> bytes:
        self.collector_on.append(gc.isenabled())
        return super().decode(record)

    async def flush(self, session: AsyncSession, items: Sequence[bytes]) -> None:
        self.collector_on.append(gc.isenabled())
        await super().flush(session, items)


class TestBatchBookkeeping:
    async def test_the_collector_is_off_while_a_batch_is_handled_and_back_after(
        self, sqlite_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        bus = InProcessBus(sqlite_sessions, 1)
        await publish(bus, [b"a", b"poison", b"c"])
        handler = Collector()
        runner = BatchConsumer(
            bus,
            sqlite_sessions,
            group_id="g",
            topics=[TOPIC],
            handler=handler,
            dlq_topic="runner.dlq",
        )
        assert gc.isenabled()
        consumed = counter_value("tend_consumer_records_total", "g", TOPIC)
        await run_until(runner, handler, 2)
        assert handler.flushed == [b"a", b"c"]
        assert handler.collector_on and not any(handler.collector_on)
        assert gc.isenabled()
        # Every record counted once, the poison one too, though counted per batch.
        assert counter_value("tend_consumer_records_total", "g", TOPIC) == consumed + 3
        await bus.close()


def counter_value(name: str, group: str, topic: str) -> float:
    value = REGISTRY.get_sample_value(name, {"group": group, "topic": topic})
    return value or 0.0


# -- on every bus and database: poison, retries, stop, lag, lost logs --------------------------


@dataclass
class Stack:
    """A bus, the database the runner writes to, and names no other test uses."""

    kind: str
    bus: Bus
    sessions: async_sessionmaker[AsyncSession]
    topic: str
    dlq: str
    group: str
    table: str

    @property
    def on_postgres(self) -> bool:
        return self.kind != "in-process+sqlite"


@dataclass(frozen=True)
class Target:
    kind: str
    database_url: str
    bootstrap: str | None


@pytest.fixture(
    params=[
        pytest.param("kafka+postgresql", marks=pytest.mark.integration),
        pytest.param("in-process+sqlite", marks=pytest.mark.integration),
        pytest.param("in-process+postgresql", marks=pytest.mark.integration),
    ]
)
def runner_target(request: pytest.FixtureRequest) -> Target:
    kind = request.param
    if kind == "in-process+sqlite":
        return Target(kind, request.getfixturevalue("sqlite_url"), None)
    url = request.getfixturevalue("pg_url")
    if kind.startswith("kafka"):
        return Target(kind, url, request.getfixturevalue("broker").bootstrap)
    return Target(kind, url, None)


@pytest_asyncio.fixture
async def runner_stack(runner_target: Target) -> AsyncIterator[Stack]:
    kind = runner_target.kind
    engine = create_engine(runner_target.database_url)
    sessions = create_sessionmaker(engine)
    bus: Bus
    if runner_target.bootstrap is not None:
        bus = KafkaBus(
            runner_target.bootstrap,
            KafkaSettings(session_timeout_ms=6000, heartbeat_interval_ms=1000),
        )
    else:
        bus = InProcessBus(sessions, 1)
    uid = uuid.uuid4().hex[:10]
    s = Stack(kind, bus, sessions, f"runner-{uid}", f"runner-{uid}.dlq", f"g-{uid}", f"t_{uid}")
    producer = bus.producer()
    await producer.start()
    await producer.ensure_topics([TopicSpec(s.topic, 1), TopicSpec(s.dlq, 1)])
    await producer.stop()
    async with sessions() as session, session.begin():
        # The database refuses "refused" (a CHECK constraint) on both; PostgreSQL also
        # refuses a NUL in text, which SQLite stores.
        await session.execute(
            text(f"CREATE TABLE {s.table} (value TEXT NOT NULL CHECK (value <> 'refused'))")
        )
    yield s
    await bus.close()
    async with sessions() as session, session.begin():
        await session.execute(text(f"DROP TABLE IF EXISTS {s.table}"))
    await engine.dispose()


class Store:
    """Writes each record's text into the stack's table; records what each commit held."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.committed: list[str] = []
        self.flushes = 0

    def decode(self, record: Record) -> str:
        return record.value.decode()  # bytes that are not UTF-8 raise: a decode poison

    async def flush(self, session: AsyncSession, items: Sequence[str]) -> None:
        self.flushes += 1
        if items:
            await session.execute(
                text(f"INSERT INTO {self.table} (value) VALUES (:v)"), [{"v": v} for v in items]
            )

    async def after_commit(self, items: Sequence[str]) -> None:
        self.committed.extend(items)


def runner_for(s: Stack, handler: Store, **options: Any) -> BatchConsumer[str]:
    return BatchConsumer(
        s.bus,
        s.sessions,
        group_id=s.group,
        topics=[s.topic],
        handler=handler,
        dlq_topic=s.dlq,
        max_records=100,
        max_wait_s=0.1,
        options=RunnerOptions(
            backoff=options.pop("backoff", Backoff(initial_s=0.05, max_s=0.2)),
            lag_interval_s=options.pop("lag_interval_s", 0.0),
            **options,
        ),
    )


@contextlib.asynccontextmanager
async def running(runner: BatchConsumer[str]) -> AsyncIterator[asyncio.Task[None]]:
    """The runner in the background; stopped (and awaited while it drains) on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, DEADLINE_S)


async def publish_values(s: Stack, values: Sequence[bytes]) -> None:
    producer = s.bus.producer()
    await producer.start()
    try:
        await producer.publish(s.topic, [Message(value=v, key=b"k") for v in values])
    finally:
        await producer.stop()


async def stored(s: Stack) -> int | None:
    async with s.sessions() as session:
        return (await load_offsets(session, s.group, [TopicPartition(s.topic, 0)])).get(
            TopicPartition(s.topic, 0)
        )


async def wait_stored(s: Stack, n: int, task: asyncio.Task[None]) -> None:
    async def reached() -> bool:
        if task.done():
            raise AssertionError(f"the runner ended: {task.exception()!r}")
        return await stored(s) == n

    await wait_until(reached, timeout_s=DEADLINE_S, interval_s=0.05, what=f"offset {n}")


async def table_values(s: Stack) -> list[str]:
    async with s.sessions() as session:
        return list((await session.scalars(text(f"SELECT value FROM {s.table}"))).all())


async def dead_letters(s: Stack, n: int) -> list[Record]:
    consumer = s.bus.consumer(f"{s.group}-dlq-reader", [s.dlq])
    await consumer.start()
    got: list[Record] = []
    try:
        async with asyncio.timeout(DEADLINE_S):
            while len(got) < n:
                got.extend(await consumer.poll(max_records=100, timeout_s=0.5))
        got.extend(await consumer.poll(max_records=100, timeout_s=0.5))  # and nothing more
    finally:
        await consumer.stop()
    return got


def counter(name: str, s: Stack) -> float:
    return REGISTRY.get_sample_value(name, {"group": s.group, "topic": s.topic}) or 0.0


def lag_gauge(s: Stack) -> float | None:
    return REGISTRY.get_sample_value(
        "tend_consumer_lag_records", {"group": s.group, "topic": s.topic, "partition": "0"}
    )


class TestPoisonNeverStalls:
    async def test_a_value_the_database_refuses_goes_to_the_dlq_and_the_rest_commits(
        self, runner_stack: Stack, caplog: pytest.LogCaptureFixture
    ) -> None:
        values = [b"a", b"b", b"refused", b"c", b"\xff\xfe", b"d", b"e", b"refused", b"f"]
        await publish_values(runner_stack, values)
        handler = Store(runner_stack.table)
        async with running(runner_for(runner_stack, handler)) as task:
            await wait_stored(runner_stack, len(values), task)

        assert await table_values(runner_stack) == ["a", "b", "c", "d", "e", "f"]
        assert handler.committed == ["a", "b", "c", "d", "e", "f"]
        dlq = await dead_letters(runner_stack, 3)
        by_offset = {int(r.header("source_offset") or b"-1"): r for r in dlq}
        assert sorted(by_offset) == [2, 4, 7]
        for offset in (2, 7):
            refused = by_offset[offset]
            assert refused.value == b"refused"
            assert refused.header("error_kind") == b"database"
            error = (refused.header("error") or b"").decode()
            assert "check" in error.lower(), error
            if runner_stack.on_postgres:
                assert "SQLSTATE 23514" in error
        assert by_offset[4].header("error_kind") == b"decode"
        assert by_offset[4].header("source_topic") == runner_stack.topic.encode()
        assert counter("tend_consumer_db_refused_records_total", runner_stack) == 2
        assert counter("tend_consumer_dlq_records_total", runner_stack) == 3
        # Each line names the record it concerns (JSON logs carry these as fields).
        lines = [r for r in caplog.records if "dead-lettered" in r.getMessage()]
        assert sorted((r.group, r.topic, r.partition, r.offset) for r in lines) == [
            (runner_stack.group, runner_stack.topic, 0, offset) for offset in (2, 4, 7)
        ]
        assert {r.account_id for r in lines} == {"k"}  # the record key

    async def test_a_nul_postgresql_refuses_is_dead_lettered_alone(
        self, runner_stack: Stack
    ) -> None:
        if not runner_stack.on_postgres:
            pytest.skip("SQLite stores NUL")
        values = [b"before", b"nul \x00 inside", b"after"]
        await publish_values(runner_stack, values)
        handler = Store(runner_stack.table)
        async with running(runner_for(runner_stack, handler)) as task:
            await wait_stored(runner_stack, 3, task)

        assert await table_values(runner_stack) == ["before", "after"]
        [refused] = await dead_letters(runner_stack, 1)
        assert refused.value == values[1]
        error = (refused.header("error") or b"").decode()
        assert "0x00" in error and "SQLSTATE 22021" in error, error
        assert counter("tend_consumer_flush_retries_total", runner_stack) == 0


class TestTransientFailures:
    async def test_retried_with_backoff_until_the_database_accepts_then_committed_once(
        self, runner_stack: Stack
    ) -> None:
        await publish_values(runner_stack, [b"a", b"b"])
        async with runner_stack.sessions() as session, session.begin():
            await session.execute(
                text(f"ALTER TABLE {runner_stack.table} RENAME TO {runner_stack.table}_x")
            )
        handler = Store(runner_stack.table)
        retries = REGISTRY.get_sample_value(
            "tend_consumer_flush_retries_total", {"group": runner_stack.group}
        )
        async with running(runner_for(runner_stack, handler)) as task:
            # A missing table is not the data's fault: retried, never dead-lettered.
            await wait_until(lambda: handler.flushes >= 3, timeout_s=DEADLINE_S, what="retries")
            assert await stored(runner_stack) is None
            async with runner_stack.sessions() as session, session.begin():
                await session.execute(
                    text(f"ALTER TABLE {runner_stack.table}_x RENAME TO {runner_stack.table}")
                )
            await wait_stored(runner_stack, 2, task)
        assert await table_values(runner_stack) == ["a", "b"]
        assert handler.committed == ["a", "b"]
        after = REGISTRY.get_sample_value(
            "tend_consumer_flush_retries_total", {"group": runner_stack.group}
        )
        assert (after or 0) - (retries or 0) >= 2
        assert counter("tend_consumer_dlq_records_total", runner_stack) == 0

    async def test_stop_during_a_long_backoff_gives_the_batch_up_uncommitted(
        self, runner_stack: Stack
    ) -> None:
        await publish_values(runner_stack, [b"a", b"b"])
        async with runner_stack.sessions() as session, session.begin():
            await session.execute(text(f"DROP TABLE {runner_stack.table}"))
        handler = Store(runner_stack.table)
        # A backoff far longer than the test's deadline: only waking on stop can end it.
        runner = runner_for(runner_stack, handler, backoff=Backoff(initial_s=600, max_s=600))
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        await wait_until(lambda: handler.flushes >= 1, timeout_s=DEADLINE_S, what="a flush")
        stop.set()
        await asyncio.wait_for(task, DEADLINE_S)
        assert await stored(runner_stack) is None
        assert handler.committed == []

    async def test_stop_while_the_stored_offsets_cannot_be_read(
        self, runner_stack: Stack, caplog: pytest.LogCaptureFixture
    ) -> None:
        await publish_values(runner_stack, [b"a", b"b"])
        handler = Store(runner_stack.table)
        runner = runner_for(runner_stack, handler, backoff=Backoff(initial_s=600, max_s=600))
        async with runner_stack.sessions() as session, session.begin():
            await session.execute(text("ALTER TABLE consumer_offsets RENAME TO offsets_away"))
        try:
            stop = asyncio.Event()
            task = asyncio.create_task(runner.run(stop))
            await wait_until(
                lambda: "cannot read stored offsets" in caplog.text,
                timeout_s=DEADLINE_S,
                what="a failed offset load",
            )
            stop.set()
            await asyncio.wait_for(task, DEADLINE_S)
        finally:
            async with runner_stack.sessions() as session, session.begin():
                await session.execute(text("ALTER TABLE offsets_away RENAME TO consumer_offsets"))
        # Never seeked, so nothing may be processed: it would start from the bus's offset.
        assert handler.flushes == 0
        assert await stored(runner_stack) is None

    async def test_a_poll_the_in_process_bus_cannot_answer_is_retried(
        self, runner_stack: Stack, caplog: pytest.LogCaptureFixture
    ) -> None:
        if runner_stack.kind.startswith("kafka"):
            pytest.skip("the in-process bus polls the database")
        caplog.set_level(logging.INFO, logger="shared.consumer")
        handler = Store(runner_stack.table)
        away = False

        async def rename(old: str, new: str) -> None:
            async with runner_stack.sessions() as session, session.begin():
                await session.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))

        try:
            async with running(runner_for(runner_stack, handler)) as task:
                await wait_until(lambda: "assigned=" in caplog.text, timeout_s=DEADLINE_S)
                await rename("bus_records", "bus_records_away")
                away = True
                await wait_until(lambda: "polling failed" in caplog.text, timeout_s=DEADLINE_S)
                assert not task.done()  # the runner outlives the failure
                await rename("bus_records_away", "bus_records")
                away = False
                await publish_values(runner_stack, [b"a", b"b"])
                await wait_stored(runner_stack, 2, task)
        finally:
            if away:
                await rename("bus_records_away", "bus_records")
        assert handler.committed == ["a", "b"]


class TestLag:
    async def test_gauge_is_recomputed_while_idle(self, runner_stack: Stack) -> None:
        await publish_values(runner_stack, [b"a", b"b", b"c"])
        async with runner_stack.sessions() as session, session.begin():
            await store_offsets(
                session, runner_stack.group, {TopicPartition(runner_stack.topic, 0): 3}
            )
        metrics.LAG.labels(runner_stack.group, runner_stack.topic, "0").set(1747)  # a stale reading
        handler = Store(runner_stack.table)
        async with running(runner_for(runner_stack, handler)):
            # Nothing left to read: the runner never flushes, and must still say 0.
            await wait_until(
                lambda: lag_gauge(runner_stack) == 0, timeout_s=DEADLINE_S, what="lag 0"
            )
        assert handler.committed == []


class TestOffsetPastTheLogEnd:
    async def test_detected_counted_and_resumed_from_the_earliest_record(
        self, runner_stack: Stack
    ) -> None:
        # The database remembers offset 50; the broker lost its log and holds 3 new records.
        async with runner_stack.sessions() as session, session.begin():
            await store_offsets(
                session, runner_stack.group, {TopicPartition(runner_stack.topic, 0): 50}
            )
        await publish_values(runner_stack, [b"a", b"b", b"c"])
        handler = Store(runner_stack.table)
        async with running(runner_for(runner_stack, handler)) as task:
            await wait_stored(runner_stack, 3, task)
        assert handler.committed == ["a", "b", "c"]
        assert counter("tend_consumer_offset_out_of_range_total", runner_stack) >= 1

    async def test_latest_policy_skips_to_the_end(self, runner_stack: Stack) -> None:
        async with runner_stack.sessions() as session, session.begin():
            await store_offsets(
                session, runner_stack.group, {TopicPartition(runner_stack.topic, 0): 50}
            )
        await publish_values(runner_stack, [b"a", b"b", b"c"])
        handler = Store(runner_stack.table)
        async with running(runner_for(runner_stack, handler, out_of_range="latest")) as task:
            await wait_until(
                lambda: counter("tend_consumer_offset_out_of_range_total", runner_stack) >= 1,
                timeout_s=DEADLINE_S,
                what="detection",
            )
            await publish_values(runner_stack, [b"d"])
            await wait_stored(runner_stack, 4, task)
        assert handler.committed == ["d"]

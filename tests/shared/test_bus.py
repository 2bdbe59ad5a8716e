"""The bus contract, run against Kafka (tansu), and the in-process bus on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import (
    Bus,
    BusUnavailable,
    Consumer,
    Delivery,
    Message,
    Producer,
    Record,
    TopicPartition,
    TopicSpec,
    create_bus,
    default_topic_specs,
    partition_for,
)
from shared.bus.kafka import KafkaBus, _PartitionCache
from shared.bus.memory import InProcessBus
from shared.db.session import create_engine, create_sessionmaker
from shared.settings import KafkaSettings, Settings
from shared.topics import ALL
from tests.support.broker import TansuBroker

PARTITIONS = 3
INTEGRATION = pytest.mark.integration  # the Kafka and PostgreSQL cases
CONSUME_DEADLINE_S = 60.0
"""Safety net so a broken bus fails the test instead of hanging it; never an assertion."""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def create_messages(n: int, *, keys: int = 4) -> list[Message]:
    return [Message(value=f"v{i}".encode(), key=f"account-{i % keys}".encode()) for i in range(n)]


async def consume(consumer: Consumer, n: int) -> list[Record]:
    """Poll until ``n`` records arrived."""
    records: list[Record] = []
    async with asyncio.timeout(CONSUME_DEADLINE_S):
        while len(records) < n:
            records.extend(await consumer.poll(max_records=100, timeout_s=1.0))
    return records


@dataclass
class Target:
    kind: str
    address: str


@pytest.fixture(
    params=[
        pytest.param("kafka", marks=INTEGRATION),
        pytest.param("sqlite", marks=INTEGRATION),
        pytest.param("postgres", marks=INTEGRATION),
    ]
)
def bus_target(request: pytest.FixtureRequest) -> Target:
    if request.param == "kafka":
        return Target("kafka", request.getfixturevalue("broker").bootstrap)
    if request.param == "sqlite":
        return Target("sqlite", request.getfixturevalue("sqlite_url"))
    return Target("postgres", request.getfixturevalue("pg_url"))


@pytest_asyncio.fixture
async def bus(bus_target: Target) -> AsyncIterator[Bus]:
    if bus_target.kind == "kafka":
        kafka = KafkaBus(bus_target.address, KafkaSettings(partitions=PARTITIONS))
        yield kafka
        await kafka.close()
        return
    engine = create_engine(bus_target.address)
    in_process = InProcessBus(create_sessionmaker(engine), PARTITIONS)
    yield in_process
    await in_process.close()
    await engine.dispose()


@pytest_asyncio.fixture
async def topic(bus: Bus) -> AsyncIterator[str]:
    """A fresh topic on ``bus`` with ``PARTITIONS`` partitions."""
    name = unique("t")
    producer = bus.producer()
    await producer.start()
    await producer.ensure_topics([TopicSpec(name, PARTITIONS)])
    await producer.stop()
    yield name


async def publish(bus: Bus, topic: str, messages: list[Message]) -> list[tuple[int, int]]:
    producer = bus.producer()
    await producer.start()
    try:
        deliveries = await producer.publish(topic, messages, timeout_s=30)
    finally:
        await producer.stop()
    assert all(d.topic == topic for d in deliveries)
    return [(d.partition, d.offset) for d in deliveries]


class TestBusContract:
    @pytest.mark.parametrize("n", [0, 1, 50])
    async def test_publish_then_consume_everything(self, bus: Bus, topic: str, n: int) -> None:
        messages = create_messages(n)
        deliveries = await publish(bus, topic, messages)

        assert len(deliveries) == n
        by_partition: dict[int, list[int]] = defaultdict(list)
        for partition, offset in deliveries:
            by_partition[partition].append(offset)
        for offsets in by_partition.values():
            assert offsets == list(range(len(offsets)))  # a fresh topic, dense, in input order
        if n == 0:
            return

        consumer = bus.consumer(unique("g"), [topic])
        await consumer.start()
        try:
            records = await consume(consumer, n)
            assert await consumer.poll(max_records=100, timeout_s=0.2) == []
        finally:
            await consumer.stop()
        assert sorted((r.partition, r.offset) for r in records) == sorted(deliveries)
        assert sorted(r.value for r in records) == sorted(m.value for m in messages)

    async def test_same_key_same_partition_in_publish_order(self, bus: Bus, topic: str) -> None:
        batches = [create_messages(20, keys=5), create_messages(7, keys=3), create_messages(1)]
        for batch in batches:
            await publish(bus, topic, batch)
        sent = [m for batch in batches for m in batch]

        consumer = bus.consumer(unique("g"), [topic])
        await consumer.start()
        try:
            records = await consume(consumer, len(sent))
        finally:
            await consumer.stop()

        seen: dict[int, int] = {}
        per_key: dict[bytes, list[bytes]] = defaultdict(list)
        for r in records:
            assert r.offset > seen.get(r.partition, -1), "offset order within a partition"
            seen[r.partition] = r.offset
            assert r.key is not None
            # Kafka's murmur2, so both implementations put an account on the same partition.
            assert r.partition == partition_for(r.key, PARTITIONS)
            per_key[r.key].append(r.value)
        expected: dict[bytes, list[bytes]] = defaultdict(list)
        for m in sent:
            assert m.key is not None
            expected[m.key].append(m.value)
        assert per_key == expected

    async def test_concurrent_publishes_each_delivery_names_its_message(
        self, bus: Bus, topic: str
    ) -> None:
        # Many calls in flight on the same partitions at once (what concurrent ingest requests
        # do), with more than one partition's batch each: every message is stored once, and the
        # delivery returned for it is where it was stored.
        calls = 12
        batches = [
            [Message(value=f"c{c}-m{i}".encode(), key=f"k{i % 4}".encode()) for i in range(40)]
            for c in range(calls)
        ]
        producer = bus.producer()
        await producer.start()
        try:
            results = await asyncio.gather(
                *(producer.publish(topic, batch, timeout_s=30) for batch in batches)
            )
        finally:
            await producer.stop()
        told = {
            (d.partition, d.offset): m.value
            for batch, deliveries in zip(batches, results, strict=True)
            for m, d in zip(batch, deliveries, strict=True)
        }
        assert len(told) == calls * 40

        consumer = bus.consumer(unique("g"), [topic])
        await consumer.start()
        try:
            records = await consume(consumer, calls * 40)
        finally:
            await consumer.stop()
        assert {(r.partition, r.offset): r.value for r in records} == told

    async def test_lag_counts_what_is_left_to_read(self, bus: Bus, topic: str) -> None:
        messages = create_messages(30, keys=1)  # one key: all on one partition
        deliveries = await publish(bus, topic, messages)
        partition = deliveries[0][0]
        consumer = bus.consumer(unique("g"), [topic])
        await consumer.start()
        try:
            records = await consume(consumer, 30)
            assert len(records) == 30
            tp = TopicPartition(topic, partition)
            assert (await consumer.lag()).get(tp) == 0
            consumer.seek(tp, 10)
            assert (await consumer.lag()).get(tp) == 20
        finally:
            await consumer.stop()

    async def test_a_position_past_the_log_end_shows_and_seek_to_beginning_recovers(
        self, bus: Bus, topic: str
    ) -> None:
        deliveries = await publish(bus, topic, create_messages(5, keys=1))
        tp = TopicPartition(topic, deliveries[0][0])
        consumer = bus.consumer(unique("g"), [topic])
        await consumer.start()
        try:
            await consume(consumer, 5)
            assert (await consumer.progress())[tp] == (5, 5)
            # What a stored offset looks like after the broker lost its log: nothing comes,
            # and no error says why; only the position against the log end tells.
            consumer.seek(tp, 50)
            assert await consumer.poll(max_records=100, timeout_s=0.5) == []
            assert (await consumer.progress())[tp] == (50, 5)
            await consumer.seek_to_beginning(tp)
            again = await consume(consumer, 5)
            assert [r.offset for r in again] == [0, 1, 2, 3, 4]
        finally:
            await consumer.stop()

    async def test_headers_keys_and_values_round_trip(self, bus: Bus, topic: str) -> None:
        messages = [
            Message(
                value=b"\x00binary\xff",
                key=b"account-1",
                headers=(("error", b"bad \xff input"), ("error", b"second"), ("empty", b"")),
            ),
            Message(value=b"{}", key=None),
        ]
        await publish(bus, topic, messages)

        consumer = bus.consumer(unique("g"), [topic])
        await consumer.start()
        try:
            records = await consume(consumer, 2)
        finally:
            await consumer.stop()
        by_value = {r.value: r for r in records}
        first = by_value[b"\x00binary\xff"]
        assert first.key == b"account-1"
        assert first.headers == messages[0].headers
        assert first.header("error") == b"bad \xff input"
        assert first.header("missing") is None
        assert first.timestamp_ms is not None
        assert by_value[b"{}"].key is None
        assert by_value[b"{}"].headers == ()

    async def test_on_assign_runs_before_records_and_can_seek(self, bus: Bus, topic: str) -> None:
        key = b"account-seek"
        tp = TopicPartition(topic, partition_for(key, PARTITIONS))
        await publish(bus, topic, [Message(f"v{i}".encode(), key=key) for i in range(10)])
        assigned: list[set[TopicPartition]] = []
        consumer: Consumer

        async def on_assign(tps: set[TopicPartition]) -> None:
            assigned.append(tps)
            if tp in tps:
                consumer.seek(tp, 6)

        consumer = bus.consumer(unique("g"), [topic], on_assign=on_assign)
        await consumer.start()
        try:
            records = await consume(consumer, 4)
            assignment = consumer.assignment()
        finally:
            await consumer.stop()
        assert assigned == [{TopicPartition(topic, p) for p in range(PARTITIONS)}]
        assert assignment == assigned[0]
        assert [(r.offset, r.value) for r in records] == [
            (i, f"v{i}".encode()) for i in (6, 7, 8, 9)
        ]

    async def test_new_consumer_resumes_after_committed_offset(self, bus: Bus, topic: str) -> None:
        key = b"account-commit"
        tp = TopicPartition(topic, partition_for(key, PARTITIONS))
        await publish(bus, topic, [Message(f"v{i}".encode(), key=key) for i in range(10)])
        group = unique("g")

        first = bus.consumer(group, [topic])
        await first.start()
        try:
            records = await consume(first, 10)
            await first.commit({tp: 7})
        finally:
            await first.stop()
        assert [r.offset for r in records] == list(range(10))

        second = bus.consumer(group, [topic])
        await second.start()
        try:
            resumed = await consume(second, 3)
        finally:
            await second.stop()
        assert [r.offset for r in resumed] == [7, 8, 9]

    async def test_publish_needs_a_started_producer(self, bus: Bus, topic: str) -> None:
        producer = bus.producer()
        with pytest.raises(BusUnavailable, match="not started"):
            await producer.publish(topic, create_messages(1))

    async def test_ping(self, bus: Bus) -> None:
        assert await bus.producer().ping() is True


async def broker_call(fn: Callable[[], None]) -> None:
    """Start or stop a broker off the event loop (both block until the process is up/gone)."""
    await asyncio.to_thread(fn)


Publish = asyncio.Task[list[Delivery]]
SHARER_DEADLINE_S = 20
"""How long a publish sharing a failed batch may take to be told (its own deadline is 60 s)."""


async def share_a_second_batch(
    producer: Producer, topic: str, *, filler_timeout_s: float, later_timeout_s: float = 30
) -> tuple[Publish, Publish, Publish]:
    """Starts ``producer`` (one partition, 1 KB batches lingering), then: a publish left
    lingering in a batch, a filling publish that fills it and opens a second batch (whose
    hand-over waits for the first to drain), and a later publish appended to that second
    batch. Returns their tasks (lingering, filling, later)."""
    await producer.start()
    await producer.ensure_topics([TopicSpec(topic, 1)])
    await producer.publish(topic, [Message(value=b"warm-up", key=b"k")], timeout_s=30)
    lingering = asyncio.create_task(
        producer.publish(topic, [Message(value=b"open", key=b"k")], timeout_s=30)
    )
    await asyncio.sleep(0.01)
    filler = [Message(value=b"f" * 100, key=b"k") for _ in range(12)]
    filling = asyncio.create_task(producer.publish(topic, filler, timeout_s=filler_timeout_s))
    await asyncio.sleep(0.05)
    later = asyncio.create_task(
        producer.publish(topic, [Message(value=b"later", key=b"k")], timeout_s=later_timeout_s)
    )
    return lingering, filling, later


class TestKafkaSharedBatches:
    """Concurrent publishes append to each partition's open batch (shared.bus.kafka)."""

    @pytest.mark.parametrize("max_batch_bytes", [1024, 1_048_576])
    async def test_concurrent_publishes_sharing_and_filling_batches(
        self, broker: TansuBroker, max_batch_bytes: int
    ) -> None:
        # 1024-byte batches fill after a few messages, so one publish spreads over several
        # batches of a partition, which other publishes share; with 1 MB they all share one.
        settings = KafkaSettings(partitions=PARTITIONS, max_batch_bytes=max_batch_bytes)
        bus = KafkaBus(broker.bootstrap, settings)
        topic = unique("t")
        calls = 16
        batches = [
            [Message(value=f"c{c}-m{i}".encode() * 8, key=f"k{i % 5}".encode()) for i in range(30)]
            for c in range(calls)
        ]
        producer = bus.producer()
        try:
            await producer.start()
            await producer.ensure_topics([TopicSpec(topic, PARTITIONS)])
            results = await asyncio.gather(
                *(producer.publish(topic, batch, timeout_s=30) for batch in batches)
            )
            consumer = bus.consumer(unique("g"), [topic])
            await consumer.start()
            try:
                records = await consume(consumer, calls * 30)
            finally:
                await consumer.stop()
        finally:
            await bus.close()
        told = {
            (d.partition, d.offset): m.value
            for batch, deliveries in zip(batches, results, strict=True)
            for m, d in zip(batch, deliveries, strict=True)
        }
        assert len(told) == calls * 30
        assert {(r.partition, r.offset): r.value for r in records} == told
        for batch, deliveries in zip(batches, results, strict=True):
            last: dict[bytes | None, int] = {}
            for m, d in zip(batch, deliveries, strict=True):
                assert d.partition == partition_for(m.key, PARTITIONS)
                assert d.offset > last.get(m.key, -1), "a key's messages in publish order"
                last[m.key] = d.offset

    async def test_a_cancelled_publish_does_not_fail_the_publishes_sharing_its_batch(
        self, broker: TansuBroker
    ) -> None:
        # One partition, 1 KB batches lingering 300 ms: a publish leaves a batch lingering,
        # the filling publish fills it and opens a second, whose hand-over waits for the first
        # to drain; a later publish appends to that second batch. The filling publish is then
        # cancelled (its client went away, or its service is stopping): the broker is fine,
        # so the later publish must still be acknowledged, its message where it was told.
        settings = KafkaSettings(partitions=1, max_batch_bytes=1024, linger_ms=300)
        bus = KafkaBus(broker.bootstrap, settings)
        topic = unique("t")
        producer = bus.producer()
        try:
            lingering, filling, later = await share_a_second_batch(
                producer, topic, filler_timeout_s=30
            )
            await asyncio.sleep(0.01)
            filling.cancel()
            (cancelled,) = await asyncio.gather(filling, return_exceptions=True)
            assert isinstance(cancelled, asyncio.CancelledError)
            (delivery,) = await later
            await lingering
            consumer = bus.consumer(unique("g"), [topic])
            await consumer.start()
            try:
                records: list[Record] = []
                async with asyncio.timeout(CONSUME_DEADLINE_S):
                    while not any(r.offset == delivery.offset for r in records):
                        records.extend(await consumer.poll(max_records=100, timeout_s=1.0))
            finally:
                await consumer.stop()
        finally:
            await bus.close()
        (stored,) = [r for r in records if r.offset == delivery.offset]
        assert stored.value == b"later"

    async def test_a_publish_timing_out_decides_the_publishes_sharing_its_batch_soon(
        self, broker: TansuBroker
    ) -> None:
        # As above, but the publish that opened the batch gives up at its own (short)
        # deadline while the batch waits to be handed over: the batch fails then, and so does
        # the later publish sharing it (none is told its message is stored), long before its
        # own deadline, instead of waiting on a batch no client will send.
        settings = KafkaSettings(partitions=1, max_batch_bytes=1024, linger_ms=1000)
        bus = KafkaBus(broker.bootstrap, settings)
        topic = unique("t")
        producer = bus.producer()
        try:
            lingering, hasty, later = await share_a_second_batch(
                producer, topic, filler_timeout_s=0.3, later_timeout_s=60
            )
            # Well before the later publish's own 60 s: it must not wait for its deadline.
            async with asyncio.timeout(SHARER_DEADLINE_S):
                outcomes = await asyncio.gather(hasty, later, return_exceptions=True)
            await asyncio.gather(lingering, return_exceptions=True)
        finally:
            await bus.close()
        assert all(isinstance(o, BusUnavailable) for o in outcomes), outcomes


class TestKafkaBrokerOutage:
    async def test_start_with_broker_down_raises_then_publish_recovers(
        self, stopped_broker: TansuBroker
    ) -> None:
        bus = KafkaBus(stopped_broker.bootstrap, KafkaSettings(partitions=PARTITIONS))
        producer = bus.producer()
        try:
            with pytest.raises(BusUnavailable, match="cannot connect"):
                await producer.start()
            assert await producer.ping() is False
            with pytest.raises(BusUnavailable):
                await producer.publish(unique("t"), create_messages(1), timeout_s=1)

            await broker_call(stopped_broker.start)
            topic = unique("t")
            await producer.ensure_topics([TopicSpec(topic, PARTITIONS)])
            deliveries = await producer.publish(topic, create_messages(3), timeout_s=30)
            assert len(deliveries) == 3
            assert await producer.ping() is True
        finally:
            await bus.close()

    async def test_broker_stopped_publish_raises_then_recovers(
        self, stopped_broker: TansuBroker
    ) -> None:
        await broker_call(stopped_broker.start)
        bus = KafkaBus(stopped_broker.bootstrap, KafkaSettings(partitions=PARTITIONS))
        producer = bus.producer()
        try:
            await producer.start()
            before = unique("t")
            await producer.ensure_topics([TopicSpec(before, PARTITIONS)])
            assert len(await producer.publish(before, create_messages(5), timeout_s=30)) == 5

            await broker_call(stopped_broker.stop)
            assert await producer.ping() is False
            async with asyncio.timeout(CONSUME_DEADLINE_S):  # a hang fails instead of stalling
                with pytest.raises(BusUnavailable, match=r"did not acknowledge|refused"):
                    await producer.publish(before, create_messages(5), timeout_s=2)
                with pytest.raises(BusUnavailable):
                    await producer.publish(before, create_messages(1), timeout_s=1)
                # Publishes sharing batches fail together: none is told its messages are stored.
                outcomes = await asyncio.gather(
                    *(producer.publish(before, create_messages(5), timeout_s=2) for _ in range(4)),
                    return_exceptions=True,
                )
                assert all(isinstance(o, BusUnavailable) for o in outcomes), outcomes

            # tansu keeps topics in memory, so the restarted broker starts empty.
            await broker_call(stopped_broker.start)
            assert await producer.ping() is True
            after = unique("t")
            await producer.ensure_topics([TopicSpec(after, PARTITIONS)])
            deliveries = await producer.publish(after, create_messages(5), timeout_s=30)
            assert len(deliveries) == 5
        finally:
            await bus.close()

    async def test_ensure_topics_leaves_existing_topics(self, broker: TansuBroker) -> None:
        bus = KafkaBus(broker.bootstrap, KafkaSettings(partitions=PARTITIONS))
        producer = bus.producer()
        try:
            topic = unique("t")
            await producer.ensure_topics([TopicSpec(topic, PARTITIONS)])
            await producer.ensure_topics([TopicSpec(topic, PARTITIONS), TopicSpec(unique("t"), 1)])
        finally:
            await bus.close()


@pytest.fixture(
    params=[pytest.param("sqlite", marks=INTEGRATION), pytest.param("postgres", marks=INTEGRATION)]
)
def database_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


class TestInProcessBus:
    async def test_records_and_offsets_survive_a_new_bus(self, database_url: str) -> None:
        topic, group = unique("t"), unique("g")
        messages = create_messages(12)

        engine = create_engine(database_url)
        bus = InProcessBus(create_sessionmaker(engine), PARTITIONS)
        first = await publish(bus, topic, messages)
        consumer = bus.consumer(group, [topic])
        await consumer.start()
        await consume(consumer, 12)
        used = {TopicPartition(topic, p) for p, _ in first}
        await consumer.commit({tp: 1 for tp in used})
        await bus.close()
        await engine.dispose()

        # A new process: a new engine and bus on the same database.
        engine = create_engine(database_url)
        try:
            bus = InProcessBus(create_sessionmaker(engine), PARTITIONS)
            later = await publish(bus, topic, messages)
            consumer = bus.consumer(group, [topic])
            await consumer.start()
            resumed = await consume(consumer, 24 - len(used))
            await bus.close()
        finally:
            await engine.dispose()

        # Offsets continue where the first bus stopped, never reusing an acknowledged one.
        count: dict[int, int] = defaultdict(int)
        for partition, _ in first:
            count[partition] += 1
        assert later == [(p, o + count[p]) for p, o in first]
        expected = sorted((p, o) for p, o in first + later if o >= 1)
        assert sorted((r.partition, r.offset) for r in resumed) == expected

    async def test_waiting_poll_returns_a_record_published_meanwhile(
        self, database_url: str
    ) -> None:
        engine = create_engine(database_url)
        bus = InProcessBus(create_sessionmaker(engine), PARTITIONS)
        topic = unique("t")
        consumer = bus.consumer(unique("g"), [topic])
        await consumer.start()
        try:
            waiting = asyncio.create_task(consumer.poll(max_records=10, timeout_s=30))
            await asyncio.sleep(0)
            await publish(bus, topic, [Message(b"hello", key=b"a")])
            records = await waiting
            assert [r.value for r in records] == [b"hello"]
        finally:
            await bus.close()
            await engine.dispose()

    async def test_a_drained_consumer_sees_records_of_a_second_bus_and_a_seek(
        self, database_url: str
    ) -> None:
        """A poll after a read that found nothing waits without reading until a publish: a
        publish through another bus object of the process wakes it too, and a seek reads
        again at once."""
        engine = create_engine(database_url)
        bus, other = (InProcessBus(create_sessionmaker(engine), PARTITIONS) for _ in range(2))
        topic, elsewhere = unique("t"), unique("t")
        consumer = bus.consumer(unique("g"), [topic])
        await consumer.start()
        try:
            assert await consumer.poll(max_records=10, timeout_s=0) == []
            await publish(other, elsewhere, [Message(b"not mine", key=b"a")])
            assert await consumer.poll(max_records=10, timeout_s=0) == []
            waiting = asyncio.create_task(consumer.poll(max_records=10, timeout_s=30))
            await asyncio.sleep(0)
            await publish(other, topic, [Message(b"hello", key=b"a")])
            (record,) = await waiting
            assert record.value == b"hello"
            assert await consumer.poll(max_records=10, timeout_s=0) == []
            consumer.seek(record.tp, record.offset)
            again = await consumer.poll(max_records=10, timeout_s=0)
            assert [(r.tp, r.offset, r.value) for r in again] == [
                (record.tp, record.offset, b"hello")
            ]
        finally:
            await bus.close()
            await engine.dispose()

    async def test_one_consumer_per_group(self, sqlite_url: str) -> None:
        engine = create_engine(sqlite_url)
        bus = InProcessBus(create_sessionmaker(engine), PARTITIONS)
        group = unique("g")
        try:
            first = bus.consumer(group, ["t"])
            await first.start()
            with pytest.raises(RuntimeError, match="already has a running consumer"):
                await bus.consumer(group, ["t"]).start()
            await first.stop()
            again = bus.consumer(group, ["t"])
            await again.start()
            await again.stop()
        finally:
            await bus.close()
            await engine.dispose()

    @pytest.mark.integration  # tries a SQLite file
    async def test_ping_false_when_database_unreachable(self) -> None:
        engine = create_engine("sqlite+aiosqlite:////nonexistent-dir/tend.db")
        bus = InProcessBus(create_sessionmaker(engine), PARTITIONS)
        try:
            assert await bus.producer().ping() is False
            producer = bus.producer()
            await producer.start()
            with pytest.raises(BusUnavailable, match="database"):
                await producer.publish("t", create_messages(1), timeout_s=5)
        finally:
            await engine.dispose()


class TestKafkaPartitionCache:
    @pytest.mark.parametrize("size", [1, 3, 1_000])
    def test_groups_by_kafkas_partition_in_order_whatever_it_remembers(self, size: int) -> None:
        cache = _PartitionCache(size)
        messages = [Message(value=b"v", key=f"account-{i % 7}".encode()) for i in range(40)]
        for partitions in (PARTITIONS, 5, PARTITIONS):  # a partition count can change
            grouped = cache.group(messages, partitions)
            expected: dict[int, list[int]] = defaultdict(list)
            for i, m in enumerate(messages):
                expected[partition_for(m.key, partitions)].append(i)
            assert grouped == expected
            assert len(cache._known) <= size

    def test_keyless_messages_are_spread_over_the_partitions(self) -> None:
        grouped = _PartitionCache().group([Message(value=b"v")] * 300, PARTITIONS)
        assert set(grouped) == set(range(PARTITIONS))


class TestFactory:
    def test_kafka_when_bootstrap_is_set(self) -> None:
        bus = create_bus(Settings(kafka_bootstrap="127.0.0.1:9092"), None)
        assert isinstance(bus, KafkaBus)

    def test_in_process_otherwise(self, pg_sessions: async_sessionmaker[AsyncSession]) -> None:
        bus = create_bus(Settings(kafka_bootstrap=None), pg_sessions)
        assert isinstance(bus, InProcessBus)
        assert bus.partitions == Settings().kafka.partitions

    def test_in_process_needs_sessions(self) -> None:
        with pytest.raises(ValueError, match="needs its sessions"):
            create_bus(Settings(kafka_bootstrap=None), None)

    def test_default_topic_specs(self) -> None:
        settings = Settings.model_validate({"kafka": {"partitions": 12}})
        assert default_topic_specs(settings) == [TopicSpec(name, 12) for name in ALL]

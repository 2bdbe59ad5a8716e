"""The in-process bus reads a poll's partitions in ``UNION ALL`` statements of at most
``_READ_PARTITIONS`` partitions (issue 13 review): with more partitions than one statement
reads and a budget smaller than the backlog, each poll still fills its budget partition after
partition, each partition's records in offset order from where it stopped, and every record is
read exactly once; a key's partition is always Kafka's (murmur2), remembered or not."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import Message, TopicSpec, partition_for
from shared.bus.memory import _READ_PARTITIONS, InProcessBus

Sessions = async_sessionmaker[AsyncSession]
WIDE = _READ_PARTITIONS + 9
BUDGET = 37


async def test_polls_over_many_partitions_fill_the_budget_in_order(db: Sessions) -> None:
    bus = InProcessBus(db, WIDE)
    topic = f"wide-{uuid.uuid4().hex[:8]}"
    producer = bus.producer()
    await producer.start()
    try:
        await producer.ensure_topics([TopicSpec(topic, WIDE)])
        messages = [
            Message(value=f"v{i}".encode(), key=f"account-{i % 101}".encode()) for i in range(900)
        ]
        deliveries = await producer.publish(topic, messages, timeout_s=60)
    finally:
        await producer.stop()
    for m, d in zip(messages, deliveries, strict=True):
        assert d.partition == partition_for(m.key, WIDE)
    backlog = len(deliveries)

    consumer = bus.consumer(f"g-{uuid.uuid4().hex[:8]}", [topic])
    await consumer.start()
    read: dict[int, list[int]] = defaultdict(list)
    try:
        while backlog:
            records = await consumer.poll(max_records=BUDGET, timeout_s=5)
            assert len(records) == min(BUDGET, backlog)
            backlog -= len(records)
            runs: list[int] = []
            for r in records:
                if not runs or runs[-1] != r.partition:
                    assert r.partition not in runs, "a partition's records come together"
                    runs.append(r.partition)
                expected = read[r.partition][-1] + 1 if read[r.partition] else 0
                assert r.offset == expected, "offset order, from where the partition stopped"
                read[r.partition].append(r.offset)
        assert await consumer.poll(max_records=BUDGET, timeout_s=0.2) == []
    finally:
        await consumer.stop()
        await bus.close()
    sent: dict[int, int] = defaultdict(int)
    for d in deliveries:
        sent[d.partition] += 1
    assert {p: len(offsets) for p, offsets in read.items()} == dict(sent)


def test_a_remembered_partition_is_kafkas_and_the_memory_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shared.bus.memory

    monkeypatch.setattr(shared.bus.memory, "_KNOWN_KEYS", 5)
    bus = InProcessBus(cast(Sessions, None), WIDE)
    keys = [f"account-{i % 13}".encode() for i in range(200)] + [b"", "é🙂".encode()]
    for partitions in (WIDE, 3, WIDE):  # a topic's partition count can change
        for key in keys:
            assert bus._partition(key, partitions) == partition_for(key, partitions)
            assert len(bus._partitions_by_key) <= 5

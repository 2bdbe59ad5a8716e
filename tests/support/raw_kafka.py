"""The raw baseline of the benches: a plain aiokafka consumer, no group, no database.

``bench/scorer.py`` and ``bench/alerts.py`` print their service's rate as a ratio of this one,
measured in the same run on the same topic, so a slower or busier machine moves both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition


async def raw_consume(
    bootstrap: str,
    topic: str,
    partitions: Iterable[int],
    want: int,
    max_s: float,
    *,
    decode: Callable[[bytes], object] | None = None,
) -> tuple[int, float]:
    """Read ``partitions`` of ``topic`` from their start until ``want`` records came (tansu's
    reported end offsets can be off, so the caller counts what it published) or ``max_s``
    passed. With ``decode``, each
    value goes through it (the floor of any consumer that reads the records). Returns
    ``(records, seconds)``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        got = 0
        started = time.perf_counter()
        while got < want and time.perf_counter() - started < max_s:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batches.values():
                got += len(records)
                if decode is not None:
                    for r in records:
                        decode(r.value)
        return got, time.perf_counter() - started
    finally:
        await consumer.stop()

"""Broker-outage logs are rate-limited: one line per error kind per interval (issue 9)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.logging import RepeatFilter, log_handler
from tests.support.broker import TansuBroker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.unit
class TestRepeatFilter:
    def test_one_per_kind_per_interval_then_the_count(self) -> None:
        clock = Clock()
        f = RepeatFilter(interval_s=30, clock=clock)
        unable = "Unable connect to node with id %s: %s"
        assert f.filter(record("aiokafka", unable, 0, "refused"))
        # The same kind with other arguments, within the interval: suppressed.
        assert not any(f.filter(record("aiokafka", unable, n, "refused")) for n in range(50))
        clock.now += 29.9
        assert not f.filter(record("aiokafka", unable, 1, "refused"))
        clock.now += 0.1
        after = record("aiokafka", unable, 2, "refused")
        assert f.filter(after)
        assert after.getMessage() == (
            "Unable connect to node with id 2: refused (51 more like this in the last 30s not "
            "logged)"
        )
        clock.now += 30
        quiet = record("aiokafka", unable, 3, "refused")
        assert f.filter(quiet) and quiet.getMessage() == "Unable connect to node with id 3: refused"

    def test_kinds_are_logger_level_and_template(self) -> None:
        f = RepeatFilter(clock=Clock())
        assert f.filter(record("aiokafka", "Unable to update metadata from %s", 0))
        assert f.filter(record("aiokafka.consumer.fetcher", "Unable to update metadata from %s", 0))
        assert f.filter(
            record("aiokafka", "Unable to update metadata from %s", 0, level=logging.WARNING)
        )
        assert f.filter(record("aiokafka", "Failed fetch messages from %s: %s", 0, "x"))
        assert not f.filter(record("aiokafka", "Unable to update metadata from %s", 1))

    @pytest.mark.parametrize("name", ["tend.scorer", "aiokafkax", "root", "uvicorn.error"])
    def test_other_loggers_always_pass(self, name: str) -> None:
        f = RepeatFilter(clock=Clock())
        assert all(f.filter(record(name, "same %s", n)) for n in range(20))

    def test_the_process_handler_has_it(self) -> None:
        handler = log_handler(open("/dev/null", "w"))  # noqa: SIM115
        try:
            assert any(isinstance(f, RepeatFilter) for f in handler.filters)
        finally:
            handler.stream.close()


@contextlib.contextmanager
def aiokafka_handlers(*handlers: logging.Handler) -> Iterator[None]:
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.WARNING)
    for h in handlers:
        logger.addHandler(h)
    try:
        yield
    finally:
        for h in handlers:
            logger.removeHandler(h)
        logger.setLevel(level)


@contextlib.asynccontextmanager
async def clients_of_a_dead_broker() -> AsyncIterator[tuple[AIOKafkaProducer, AIOKafkaConsumer]]:
    """A producer and a consumer in a group, connected, whose broker then stops: its port
    is closed, as when Kafka is down. The broker is back when the block ends."""
    broker = TansuBroker()
    broker.start()
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    # No auto commit: with the group's state gone with the broker's memory, the commit at
    # stop would wait for a coordinator that no longer knows the group.
    consumer = AIOKafkaConsumer(
        "outage", bootstrap_servers=broker.bootstrap, group_id="outage", enable_auto_commit=False
    )
    try:
        await producer.start()
        await producer.send_and_wait("outage", b"before")
        await consumer.start()
        await consumer.getmany(timeout_ms=1000)
        broker.stop()
        yield producer, consumer
        # Back up before the clients stop: stopping flushes and commits, which would wait.
        broker.start()
        await producer.stop()
        await consumer.stop()
    finally:
        broker.stop()


@pytest.mark.integration
class TestBrokerOutage:
    async def test_aiokafka_errors_are_one_line_per_kind(self) -> None:
        raw, logged = Collect(), Collect()
        logged.addFilter(RepeatFilter(interval_s=3600))
        with aiokafka_handlers(raw, logged):
            async with clients_of_a_dead_broker() as (producer, consumer):
                # Until aiokafka has logged plenty (it logs about 120 lines a second).
                for _ in range(600):
                    if len(raw.records) >= 200:
                        break
                    await consumer.getmany(timeout_ms=100)
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(0.1):
                            await producer.send_and_wait("outage", b"during")
        kinds = collections.Counter((r.name, r.levelno, str(r.msg)) for r in raw.records)
        assert len(raw.records) >= 200, kinds
        assert [(r.name, r.levelno, str(r.msg)) for r in logged.records] == list(kinds)
        assert len(logged.records) <= 12, kinds

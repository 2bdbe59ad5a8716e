"""The consumer runner every service uses: poll, decode, flush in one transaction, commit.

Numbered, the steps of one cycle are:

1. Poll records until the batch is full (``max_records``) or ``max_wait_s`` has passed.
2. Decode each record with the handler. A record that cannot be decoded or validated (a
   poison message) is published to the dead-letter topic with the error in the ``error``
   header and counted; the partition keeps flowing.
3. Flush: in ONE database transaction, the handler writes the batch's effects and the runner
   stores the next offset of every partition in the batch (``consumer_offsets``).
4. Only after that commit, commit the same offsets to the bus. The bus's committed offset is
   a convenience for tooling; the database's is the truth.
5. On start and on every partition assignment, seek each partition to the offset stored in
   the database. So a crash anywhere (before or after the database commit, before or after the
   bus commit) replays work from the last database commit: nothing lost, nothing counted twice.

Infrastructure failures in steps 2-3 (database down, dead-letter publish failing) roll the
transaction back and retry the same batch with exponential backoff; nothing is committed
until it succeeds. Stopping (``stop`` event, SIGTERM in the CLI) finishes the batch in hand,
flushes, commits, and closes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import metrics
from shared.bus.base import Bus, Consumer, Message, Producer, Record, TopicPartition
from shared.db.offsets import load_offsets, store_offsets

log = logging.getLogger(__name__)

T = TypeVar("T")

LAG_REPORT_INTERVAL_S = 5.0


class PoisonRecord(Exception):
    """The record can never be processed (undecodable or invalid); it goes to the DLQ."""


class BatchHandler(Protocol[T]):
    def decode(self, record: Record) -> T:
        """Turn a record into an item; raise :class:`PoisonRecord` (or ValueError) if bad."""
        ...

    async def flush(self, session: AsyncSession, items: Sequence[T]) -> None:
        """Write the effects of ``items`` in ``session``; never commit."""
        ...

    async def after_commit(self, items: Sequence[T]) -> None:
        """Runs once the batch is committed (e.g. wake the re-scorer). Must not raise."""
        ...


@dataclass(slots=True)
class Backoff:
    initial_s: float = 0.2
    max_s: float = 10.0
    factor: float = 2.0

    def delays(self) -> Callable[[], float]:
        current = self.initial_s

        def nxt() -> float:
            nonlocal current
            d = current
            current = min(self.max_s, current * self.factor)
            return d

        return nxt


class BatchConsumer(Generic[T]):
    """Runs one consumer-group member with the exactly-once-effect discipline above.

    Guarantees: records of a partition are handed to the handler in offset order; a batch is
    either wholly committed with its offsets or not at all; a batch is retried, never skipped,
    when the database fails; poison records are skipped only after they reached the DLQ.
    """

    def __init__(
        self,
        bus: Bus,
        sessions: async_sessionmaker[AsyncSession],
        *,
        group_id: str,
        topics: Sequence[str],
        handler: BatchHandler[T],
        dlq_topic: str,
        producer: Producer | None = None,
        max_records: int = 1000,
        max_wait_s: float = 0.5,
        backoff: Backoff | None = None,
    ) -> None:
        self.bus = bus
        self.sessions = sessions
        self.group_id = group_id
        self.topics = list(topics)
        self.handler = handler
        self.dlq_topic = dlq_topic
        self.producer = producer
        self.max_records = max_records
        self.max_wait_s = max_wait_s
        self.backoff = backoff or Backoff()
        self._consumer: Consumer | None = None
        self.batches_committed = 0
        self._lag_reported_at = -LAG_REPORT_INTERVAL_S

    async def _on_assign(self, tps: set[TopicPartition]) -> None:
        assert self._consumer is not None
        delay = self.backoff.delays()
        while True:
            try:
                async with self.sessions() as session:
                    stored = await load_offsets(session, self.group_id, tps)
                break
            except Exception:
                log.exception("group=%s cannot read stored offsets; retrying", self.group_id)
                await asyncio.sleep(delay())
        for tp in tps:
            # The database is the truth: a partition it has no offset for starts at the
            # beginning of the log (offset 0; below the log start the bus resets to the
            # earliest record), never at an offset the bus remembers from another database.
            self._consumer.seek(tp, stored.get(tp, 0))
        log.info(
            "group=%s assigned=%s resumed_from=%s",
            self.group_id,
            sorted((tp.topic, tp.partition) for tp in tps),
            {f"{tp.topic}[{tp.partition}]": o for tp, o in stored.items()},
        )

    async def run(self, stop: asyncio.Event) -> None:
        consumer = self.bus.consumer(self.group_id, self.topics, on_assign=self._on_assign)
        self._consumer = consumer
        owns_producer = self.producer is None
        producer = self.producer or self.bus.producer()
        await consumer.start()
        if owns_producer:
            await producer.start()
        try:
            while not stop.is_set():
                batch = await self._collect(consumer, stop)
                if batch:
                    await self._process(consumer, producer, batch, stop)
                else:
                    await self._report_lag(consumer)
        finally:
            await consumer.stop()
            if owns_producer:
                await producer.stop()

    async def _collect(self, consumer: Consumer, stop: asyncio.Event) -> list[Record]:
        batch: list[Record] = []
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_records and not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 and batch:
                break
            got = await consumer.poll(
                max_records=self.max_records - len(batch), timeout_s=max(remaining, 0.05)
            )
            batch.extend(got)
            if not got and not batch:
                # Idle: keep polling with a fresh window so stop is noticed promptly.
                deadline = time.monotonic() + self.max_wait_s
                continue
        return batch

    async def _process(
        self, consumer: Consumer, producer: Producer, batch: list[Record], stop: asyncio.Event
    ) -> None:
        items: list[T] = []
        poison: list[tuple[Record, str]] = []
        offsets: dict[TopicPartition, int] = {}
        for rec in batch:
            metrics.CONSUMED.labels(self.group_id, rec.topic).inc()
            offsets[rec.tp] = max(offsets.get(rec.tp, 0), rec.offset + 1)
            try:
                items.append(self.handler.decode(rec))
            except (PoisonRecord, ValueError) as err:
                poison.append((rec, f"{type(err).__name__}: {err}"[:1000]))

        delay = self.backoff.delays()
        while True:
            try:
                if poison:
                    await self._dead_letter(producer, poison)
                    poison = []
                started = time.perf_counter()
                async with self.sessions() as session, session.begin():
                    await self.handler.flush(session, items)
                    await store_offsets(session, self.group_id, offsets)
                metrics.FLUSH_SECONDS.labels(self.group_id).observe(time.perf_counter() - started)
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.FLUSH_RETRIES.labels(self.group_id).inc()
                wait = delay()
                log.exception(
                    "group=%s flush of %d records failed; retrying in %.1fs (nothing committed)",
                    self.group_id,
                    len(batch),
                    wait,
                )
                await asyncio.sleep(wait)
        metrics.BATCH_SIZE.labels(self.group_id).observe(len(batch))
        self.batches_committed += 1
        try:
            await consumer.commit(offsets)
        except Exception:
            # The database holds the truth; a failed bus commit only means a later resume
            # seeks from the stored offsets anyway.
            log.warning(
                "group=%s bus commit failed; offsets are safe in the database",
                self.group_id,
                exc_info=True,
            )
        await self.handler.after_commit(items)
        await self._report_lag(consumer)

    async def _report_lag(self, consumer: Consumer) -> None:
        now = time.monotonic()
        if now - self._lag_reported_at < LAG_REPORT_INTERVAL_S:
            return
        self._lag_reported_at = now
        try:
            lags = await consumer.lag()
        except Exception:
            log.debug("group=%s could not read consumer lag", self.group_id, exc_info=True)
            return
        for tp, n in lags.items():
            metrics.LAG.labels(self.group_id, tp.topic, str(tp.partition)).set(n)

    async def _dead_letter(self, producer: Producer, poison: list[tuple[Record, str]]) -> None:
        messages = [
            Message(
                value=rec.value,
                key=rec.key,
                headers=(
                    ("error", err.encode()),
                    ("source_topic", rec.topic.encode()),
                    ("source_partition", str(rec.partition).encode()),
                    ("source_offset", str(rec.offset).encode()),
                    ("consumer_group", self.group_id.encode()),
                ),
            )
            for rec, err in poison
        ]
        await producer.publish(self.dlq_topic, messages)
        for rec, err in poison:
            metrics.DLQ_RECORDS.labels(self.group_id, rec.topic).inc()
            log.warning(
                "group=%s dead-lettered %s[%d]@%d: %s",
                self.group_id,
                rec.topic,
                rec.partition,
                rec.offset,
                err,
            )

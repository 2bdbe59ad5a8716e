"""The consumer runner every service uses: poll, decode, flush in one transaction, commit.

Numbered, the steps of one cycle are:

1. Poll records until the batch is full (``max_records``) or ``max_wait_s`` has passed. An idle
   window ends the same way with an empty batch, so the lag gauge is refreshed while idle too.
   While batches come full (a backlog), the limit doubles after each, up to
   ``max_records_lagging``: fewer, larger transactions drain it faster (fixed costs per
   statement and per commit are shared by more records, and more of them merge into one row);
   the first batch that is not full brings it back to ``max_records``, for low latency.
2. Decode each record with the handler. A record that cannot be decoded or validated (a
   poison message: any exception from ``decode``) is published to the dead-letter topic with
   the error in the ``error`` header and counted; the partition keeps flowing.
3. Flush: in ONE database transaction, the handler writes the batch's effects and the runner
   stores the next offset of every partition in the batch (``consumer_offsets``).
4. Only after that commit, commit the same offsets to the bus. The bus's committed offset is
   a convenience for tooling; the database's is the truth.
5. On start and on every partition assignment, seek each partition to the offset stored in
   the database (or to the runner's own next offset, when one of its batches committed while
   the stored offsets were being read); the partitions are paused until then, so nothing
   fetched from the bus's own idea of the offset is handed out. So a crash anywhere (before or
   after the database commit, before or after the bus commit) replays work from the last
   database commit: nothing lost, nothing counted twice. A record the bus hands out again
   below an offset already committed is skipped.

Work beside the consumer (the scorer's sweeps, the purges) follows the partitions this member
owns: every assignment and revocation is passed to the runner's
:class:`~shared.ownership.Ownership`, the revocation only once the work in flight on those
partitions' accounts has finished; :meth:`BatchConsumer.behind` tells that work to hold while a
backlog drains.

Failures of step 3 are sorted by :func:`shared.db.errors.is_data_error`:

- A data error (PostgreSQL SQLSTATE class 22 or 23, e.g. ``invalid byte sequence for encoding
  "UTF8": 0x00``; SQLite integrity and data errors; a value that cannot be bound) fails the same
  way on every attempt. The runner bisects the batch: it flushes halves in transactions it rolls
  back, down to the single records that fail alone, dead-letters those (``error_kind`` header
  ``database``) and commits the rest with all the offsets. Costs about ``2 log2(n)`` trial
  flushes per bad record. Handler metrics counted inside ``flush`` may count a trial too.
- Anything else (database down or read-only, connection lost, timeout, the dead-letter publish
  failing) rolls back and retries the same batch with exponential backoff and jitter
  (:class:`shared.retry.Backoff`); nothing is committed until it succeeds.

Stopping (``stop`` event, SIGTERM in the CLI) finishes the batch in hand, flushes, commits and
closes. Every wait (a retry's backoff, the stored-offset load on assignment) wakes on ``stop``:
a batch that is failing when ``stop`` comes is given up at once, uncommitted, so it is read again
on the next start; nothing is lost. The caller bounds the whole drain (``TEND_SHUTDOWN_TIMEOUT_S``
in :func:`shared.service_app.service_lifespan`) and cancels a flush that hangs past it.

Lag and lost logs: every ``lag_interval_s`` the runner reads each partition's position and the
log end from the latest fetch (``tend_consumer_lag_records``; 0 when caught up). A position past
the log's end (a broker that lost its log while the database kept our offsets; tansu and the
in-process bus then return nothing, silently) is logged as an error, counted in
``tend_consumer_offset_out_of_range_total`` and handled by ``out_of_range``: ``earliest``
(default) resumes from the first record the log still holds (dedup by messageId keeps the
scorer exact), ``latest`` skips to the end.

One module of about 580 lines on purpose: the numbered cycle above is one class's contract
(:class:`BatchConsumer`), and a fifth of the module is that contract written out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, Protocol, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import metrics
from shared.bus.base import (
    Bus,
    BusUnavailable,
    Consumer,
    Message,
    Producer,
    Record,
    TopicPartition,
)
from shared.collector import collector_paused
from shared.db.errors import is_data_error
from shared.db.offsets import load_offsets, store_offsets
from shared.memory import trim_when_due
from shared.ownership import Ownership
from shared.retry import Backoff, sleep_or_stop
from shared.settings import ConsumerSettings

__all__ = [
    "Backoff",
    "BatchConsumer",
    "BatchHandler",
    "OutOfRangePolicy",
    "PoisonRecord",
    "RunnerOptions",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

LAG_REPORT_INTERVAL_S = 5.0

OutOfRangePolicy = Literal["earliest", "latest"]


class PoisonRecord(Exception):
    """The record can never be processed (undecodable or invalid); it goes to the DLQ."""


class _Rollback(Exception):
    """Ends a trial flush: its transaction is rolled back, never committed."""


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    """How a runner retries and watches its partitions (``TEND_CONSUMER__*``)."""

    backoff: Backoff = field(default_factory=Backoff)
    lag_interval_s: float = LAG_REPORT_INTERVAL_S
    out_of_range: OutOfRangePolicy = "earliest"

    @classmethod
    def from_settings(cls, settings: ConsumerSettings) -> RunnerOptions:
        return cls(
            backoff=Backoff(initial_s=settings.retry_initial_s, max_s=settings.retry_max_s),
            lag_interval_s=settings.lag_interval_s,
            out_of_range=settings.offset_out_of_range,
        )


class BatchHandler(Protocol[T]):
    def decode(self, record: Record) -> T:
        """Turn a record into an item; raise :class:`PoisonRecord` if bad. Any other exception
        is treated the same way (decoding is pure, so it would fail again)."""
        ...

    async def flush(self, session: AsyncSession, items: Sequence[T]) -> None:
        """Write the effects of ``items`` in ``session``; never commit."""
        ...

    async def after_commit(self, items: Sequence[T]) -> None:
        """Runs once the batch is committed (e.g. wake the re-scorer). Must not raise."""
        ...


def describe_error(err: BaseException) -> str:
    """What the DLQ header says: the driver's message (not SQLAlchemy's, which repeats the
    whole statement and every parameter of the batch), with the SQLSTATE when there is one."""
    cause: BaseException = err
    if isinstance(err, sa_exc.StatementError) and isinstance(err.orig, BaseException):
        cause = err.orig
    code = getattr(cause, "sqlstate", None)
    text = f"{type(cause).__name__}: {cause}".strip()
    if isinstance(code, str):
        text = f"{text} (SQLSTATE {code})"
    return text[:1000]


class BatchConsumer(Generic[T]):
    """Runs one consumer-group member with the exactly-once-effect discipline above.

    Guarantees: records of a partition are handed to the handler in offset order; a batch is
    either wholly committed with its offsets or not at all; a batch is retried, never skipped,
    when the database fails transiently; a record is skipped only after it reached the DLQ
    (undecodable, or refused by the database alone); every wait wakes on ``stop``.
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
        options: RunnerOptions | None = None,
        ownership: Ownership | None = None,
        max_records_lagging: int | None = None,
    ) -> None:
        self.bus = bus
        self.ownership = ownership
        """Told of every assignment and revocation, so work beside the consumer (sweeps,
        purges) follows the partitions this member owns."""
        self.sessions = sessions
        self.group_id = group_id
        self.topics = list(topics)
        self.handler = handler
        self.dlq_topic = dlq_topic
        self.producer = producer
        self.max_records = max_records
        self.max_records_lagging = max(max_records, max_records_lagging or max_records)
        self.batch_limit = max_records
        """The current batch size limit (see step 1)."""
        self.max_wait_s = max_wait_s
        options = options or RunnerOptions()
        self.backoff = options.backoff
        self.lag_interval_s = options.lag_interval_s
        self.out_of_range = options.out_of_range
        self._consumer: Consumer | None = None
        self._stop = asyncio.Event()
        # Next offset of each partition not yet committed: a record below it was committed
        # already and is dropped if the bus hands it out again (aiokafka can, when its own
        # start-up offset reset for a partition with no committed offset lands after our seek).
        self._next: dict[TopicPartition, int] = {}
        self.batches_committed = 0
        self._lag_checked_at = -self.lag_interval_s
        self._lag_total: int | None = None
        """Records not yet read on the owned partitions, at the latest check (None: unknown
        since the latest assignment)."""
        self._assigned_at = time.monotonic()
        self._ids: dict[str, object] = {"group": group_id}
        """What every log line of this runner concerns (JSON logs carry it as fields)."""

    def _record_ids(self, rec: Record) -> dict[str, object]:
        ids = {**self._ids, "topic": rec.topic, "partition": rec.partition, "offset": rec.offset}
        if rec.key is not None:
            # Every topic is keyed by account id.
            ids["account_id"] = rec.key.decode("utf-8", "replace")
        return ids

    async def _on_assign(self, tps: set[TopicPartition]) -> None:
        assert self._consumer is not None
        # aiokafka keeps fetching while this callback awaits the database, from its own idea
        # of the offset, and a seek racing a poll can be overwritten: nothing of these
        # partitions is handed out until they are seeked to the offsets the database holds.
        self._consumer.pause(tps)
        delay = self.backoff.delays()
        while True:
            try:
                async with self.sessions() as session:
                    stored = await load_offsets(session, self.group_id, tps)
                break
            except Exception:
                wait = delay()
                log.exception(
                    "group=%s cannot read stored offsets; retrying in %.1fs",
                    self.group_id,
                    wait,
                    extra=self._ids,
                )
                if await sleep_or_stop(self._stop, wait):
                    log.warning(
                        "group=%s stopping before its offsets were read",
                        self.group_id,
                        extra=self._ids,
                    )
                    return
        for tp in tps:
            # The database is the truth: a partition it has no offset for starts at the
            # beginning of the log (offset 0; below the log start the bus resets to the
            # earliest record), never at an offset the bus remembers from another database.
            # A batch of ours may have committed while the offsets were read (a rebalance
            # runs beside the flush): then our own next offset is the newer truth.
            self._next[tp] = max(stored.get(tp, 0), self._next.get(tp, 0))
            self._consumer.seek(tp, self._next[tp])
        self._consumer.resume(tps)
        self._lag_total = None
        self._assigned_at = time.monotonic()
        self._lag_checked_at = -self.lag_interval_s  # measure the new partitions' lag soon
        if self.ownership is not None:
            await self.ownership.assign(tps, self._consumer.partitions_of(self.ownership.topic))
        log.info(
            "group=%s assigned=%s resumed_from=%s",
            self.group_id,
            sorted((tp.topic, tp.partition) for tp in tps),
            {f"{tp.topic}[{tp.partition}]": o for tp, o in stored.items()},
            extra=self._ids,
        )

    async def _on_revoke(self, tps: set[TopicPartition]) -> None:
        # Work on the revoked partitions' accounts ends before the group re-forms.
        if self.ownership is not None:
            await self.ownership.revoke(tps)

    def behind(self) -> bool:
        """True while the member is catching up: more than one batch unread on its partitions
        at the latest lag check, or no check yet since the latest assignment (bounded by two
        lag intervals). Re-scoring holds meanwhile (see :mod:`services.scorer.rescorer`)."""
        if self._lag_total is None:
            return time.monotonic() - self._assigned_at < 2 * self.lag_interval_s
        return self._lag_total > self.max_records

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        consumer = self.bus.consumer(
            self.group_id, self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        self._consumer = consumer
        owns_producer = self.producer is None
        producer = self.producer or self.bus.producer()
        await consumer.start()
        if owns_producer:
            await producer.start()
        try:
            poll_failed = self.backoff.delays()
            while not stop.is_set():
                # A batch's records, decoded items and rows live until it is committed:
                # with the collector on they outlived its young passes and set off full
                # passes over the whole process every few batches (py-spy, typical mix:
                # a third of the consumer's CPU). Reference counting frees them; the few
                # cycles wait for the collector between batches (shared.collector). The
                # batch is collected and handled in ONE pause, and freed (the frame of
                # ``_cycle`` returns) before the collector is back: a young pass set off
                # between the two, or right after, walked all its records.
                with collector_paused():
                    failed = await self._cycle(consumer, producer, stop)
                trim_when_due()  # what the batch freed, back to the system (shared.memory)
                if failed is not None:
                    # The broker (or, for the in-process bus, the database) did not answer a
                    # poll: nothing was handed out, so waiting and polling again loses nothing.
                    wait = poll_failed()
                    log.warning(
                        "group=%s polling failed; retrying in %.1fs",
                        self.group_id,
                        wait,
                        exc_info=failed,
                        extra=self._ids,
                    )
                    await sleep_or_stop(stop, wait)
                    continue
                poll_failed = self.backoff.delays()
                await self._check_progress(consumer)
        finally:
            await consumer.stop()
            if owns_producer:
                await producer.stop()

    async def _cycle(
        self, consumer: Consumer, producer: Producer, stop: asyncio.Event
    ) -> BusUnavailable | None:
        """Steps 1 to 4 for one batch (none when the window brought nothing); the poll's
        failure, if it failed (nothing was handed out then)."""
        try:
            batch = await self._collect(consumer, stop)
        except BusUnavailable as err:
            return err
        full = len(batch) >= self.batch_limit
        self.batch_limit = (
            min(2 * self.batch_limit, self.max_records_lagging) if full else self.max_records
        )
        if batch:
            await self._process(consumer, producer, batch, stop)
        return None

    async def _collect(self, consumer: Consumer, stop: asyncio.Event) -> list[Record]:
        """A batch, or an empty list once a whole ``max_wait_s`` window brought nothing."""
        batch: list[Record] = []
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.batch_limit and not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                got = await consumer.poll(
                    max_records=self.batch_limit - len(batch), timeout_s=max(remaining, 0.05)
                )
            except BusUnavailable:
                if not batch:
                    raise
                break  # the records in hand were handed out: process them, never drop them
            batch.extend(got)
        return batch

    async def _process(
        self, consumer: Consumer, producer: Producer, batch: list[Record], stop: asyncio.Event
    ) -> None:
        # Per record only plain tuples: a TopicPartition (a frozen dataclass) and a labelled
        # metric per record were a tenth of the consumer's CPU (py-spy, typical mix); they
        # are made once per partition and per topic.
        batch, ends = self._not_yet_committed(batch)
        if not batch:
            return
        decoded: list[tuple[Record, T]] = []
        poison: list[tuple[Record, str, str]] = []
        topics = {topic for topic, _ in ends}
        consumed = (
            {topics.pop(): len(batch)} if len(topics) == 1 else Counter(r.topic for r in batch)
        )
        decode = self.handler.decode
        for rec in batch:
            try:
                decoded.append((rec, decode(rec)))
            except Exception as err:  # decoding is pure: whatever it raises, it raises again
                poison.append((rec, f"{type(err).__name__}: {err}"[:1000], "decode"))
        offsets = {TopicPartition(topic, p): end for (topic, p), end in ends.items()}
        for topic, n in consumed.items():
            metrics.CONSUMED.labels(self.group_id, topic).inc(n)

        delay = self.backoff.delays()
        while True:
            try:
                if poison:
                    await self._dead_letter(producer, poison)
                    poison = []
                started = time.perf_counter()
                await self._flush(decoded, offsets)
                metrics.FLUSH_SECONDS.labels(self.group_id).observe(time.perf_counter() - started)
                break
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if decoded and is_data_error(err):
                    refused = await self._isolate(decoded, err)
                    if refused:
                        poison = [(rec, describe_error(e), "database") for rec, _, e in refused]
                        bad = {id(rec) for rec, _, _ in refused}
                        decoded = [(rec, item) for rec, item in decoded if id(rec) not in bad]
                        continue
                metrics.FLUSH_RETRIES.labels(self.group_id).inc()
                wait = delay()
                log.exception(
                    "group=%s flush of %d records failed; retrying in %.1fs (nothing committed)",
                    self.group_id,
                    len(batch),
                    wait,
                    extra={**self._ids, "records": len(batch)},
                )
                if await sleep_or_stop(stop, wait):
                    log.warning(
                        "group=%s stopping: gave up a batch of %d records, nothing committed; "
                        "they are read again on the next start",
                        self.group_id,
                        len(batch),
                        extra={**self._ids, "records": len(batch)},
                    )
                    return
        metrics.BATCH_SIZE.labels(self.group_id).observe(len(batch))
        self.batches_committed += 1
        self._next.update(offsets)
        try:
            await consumer.commit(offsets)
        except Exception:
            # The database holds the truth; a failed bus commit only means a later resume
            # seeks from the stored offsets anyway.
            log.warning(
                "group=%s bus commit failed; offsets are safe in the database",
                self.group_id,
                exc_info=True,
                extra=self._ids,
            )
        await self.handler.after_commit([item for _, item in decoded])

    def _not_yet_committed(
        self, batch: list[Record]
    ) -> tuple[list[Record], dict[tuple[str, int], int]]:
        """``batch`` without records at or below an offset already committed or already in the
        batch (the bus can hand a record out again: a late offset reset after our seek), and
        the next offset of each (topic, partition) it holds."""
        expect = {(tp.topic, tp.partition): offset for tp, offset in self._next.items()}
        kept: list[Record] = []
        ends: dict[tuple[str, int], int] = {}
        for r in batch:
            key = (r.topic, r.partition)
            if r.offset >= expect.get(key, 0):
                kept.append(r)
                expect[key] = ends[key] = r.offset + 1
        return kept, ends

    async def _flush(
        self, decoded: Sequence[tuple[Record, T]], offsets: dict[TopicPartition, int]
    ) -> None:
        async with self.sessions() as session, session.begin():
            await self.handler.flush(session, [item for _, item in decoded])
            await store_offsets(session, self.group_id, offsets)

    async def _trial(self, part: Sequence[tuple[Record, T]]) -> BaseException | None:
        """Flush ``part`` and roll it back; the data error it raises, or None when it passes.
        Transient errors propagate (the batch is then retried as a whole)."""
        try:
            async with self.sessions() as session, session.begin():
                await self.handler.flush(session, [item for _, item in part])
                await session.flush()
                raise _Rollback
        except _Rollback:
            return None
        except Exception as err:
            if is_data_error(err):
                return err
            raise

    async def _isolate(
        self, decoded: Sequence[tuple[Record, T]], err: BaseException
    ) -> list[tuple[Record, T, BaseException]]:
        """The records the database refuses on their own, found by bisection. Empty when
        none does (records that fail only together) or when a trial failed transiently."""

        async def bisect(
            part: Sequence[tuple[Record, T]], failed: BaseException | None
        ) -> list[tuple[Record, T, BaseException]]:
            if failed is None:
                failed = await self._trial(part)
                if failed is None:
                    return []
            if len(part) == 1:
                return [(part[0][0], part[0][1], failed)]
            mid = len(part) // 2
            return await bisect(part[:mid], None) + await bisect(part[mid:], None)

        try:
            refused = await bisect(decoded, err)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning(
                "group=%s looking for the refused record failed",
                self.group_id,
                exc_info=True,
                extra=self._ids,
            )
            return []
        for rec, _, e in refused:
            metrics.DB_REFUSED.labels(self.group_id, rec.topic).inc()
            log.error(
                "group=%s the database refuses %s[%d]@%d: %s",
                self.group_id,
                rec.topic,
                rec.partition,
                rec.offset,
                describe_error(e),
                extra=self._record_ids(rec),
            )
        if not refused:
            log.error(
                "group=%s a batch of %d fails with a data error but no record fails alone",
                self.group_id,
                len(decoded),
                extra={**self._ids, "records": len(decoded)},
            )
        return refused

    async def _check_progress(self, consumer: Consumer) -> None:
        """Refresh the lag gauge and catch positions past the log's end."""
        now = time.monotonic()
        if now - self._lag_checked_at < self.lag_interval_s:
            return
        self._lag_checked_at = now
        try:
            progress = await consumer.progress()
        except Exception:
            log.debug(
                "group=%s could not read consumer lag",
                self.group_id,
                exc_info=True,
                extra=self._ids,
            )
            return
        total = 0
        for tp, (position, end) in progress.items():
            if position > end:
                await self._past_the_end(consumer, tp, position, end)
                position = end
            total += end - position
            metrics.LAG.labels(self.group_id, tp.topic, str(tp.partition)).set(end - position)
        if progress.keys() >= consumer.assignment():
            self._lag_total = total

    async def _past_the_end(
        self, consumer: Consumer, tp: TopicPartition, position: int, end: int
    ) -> None:
        metrics.OFFSET_OUT_OF_RANGE.labels(self.group_id, tp.topic).inc()
        log.error(
            "group=%s %s[%d]: position %d is past the log's end %d (did the broker lose its "
            "log?); resuming from the %s offset (TEND_CONSUMER__OFFSET_OUT_OF_RANGE)",
            self.group_id,
            tp.topic,
            tp.partition,
            position,
            end,
            self.out_of_range,
            extra={**self._ids, "topic": tp.topic, "partition": tp.partition, "offset": position},
        )
        # The offsets below the old position are new records now, not committed ones.
        self._next[tp] = 0
        if self.out_of_range == "latest":
            consumer.seek(tp, end)
        else:
            await consumer.seek_to_beginning(tp)

    async def _dead_letter(self, producer: Producer, poison: list[tuple[Record, str, str]]) -> None:
        messages = [
            Message(
                value=rec.value,
                key=rec.key,
                headers=(
                    ("error", err.encode("utf-8", "backslashreplace")),
                    ("error_kind", kind.encode()),
                    ("source_topic", rec.topic.encode()),
                    ("source_partition", str(rec.partition).encode()),
                    ("source_offset", str(rec.offset).encode()),
                    ("consumer_group", self.group_id.encode()),
                ),
            )
            for rec, err, kind in poison
        ]
        await producer.publish(self.dlq_topic, messages)
        for rec, err, _ in poison:
            metrics.DLQ_RECORDS.labels(self.group_id, rec.topic).inc()
            log.warning(
                "group=%s dead-lettered %s[%d]@%d: %s",
                self.group_id,
                rec.topic,
                rec.partition,
                rec.offset,
                err,
                extra=self._record_ids(rec),
            )

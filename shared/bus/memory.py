"""The in-process bus of ``tend up``: a partitioned log kept in the embedded database.

Records live in ``bus_records`` and group positions in ``bus_offsets``, so a crash of the
process loses nothing that :meth:`InProcessProducer.publish` acknowledged, and consumers
resume where their group committed. Records every group has committed past are pruned
(:mod:`shared.bus.retention`), so the table stays as small as the backlog. Works on SQLite and
PostgreSQL. Writes and reads are the driver's own statements (one ``executemany`` per publish,
one ``SELECT`` per partition per poll), not ORM objects nor Core's per-row type processing:
this is the hot path of ``tend up`` (every event is written here once and read back once).
The column types' own converters still shape what is stored (:class:`_LogCodec`), once per
statement or per distinct value, so the rows are the ones the models would write.

One module of about 600 lines on purpose: the bus, its producer and its consumer share the log's
tables, its wake-up event and its retention, class for class like the Kafka bus
(:mod:`shared.bus.kafka`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import Dialect, func, select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.base import (
    AssignCallback,
    BusUnavailable,
    Delivery,
    Message,
    Record,
    TopicPartition,
    TopicSpec,
)
from shared.bus.partitioner import partition_for
from shared.bus.retention import prunable, prune
from shared.db.models import BusOffset, BusRecord
from shared.db.session import transaction
from shared.db.types import utcnow
from shared.db.upsert import upsert

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
"""How long a publish may take when the caller gives no timeout."""

RECHECK_S = 1.0
"""An idle poll also re-reads the log this often, for records written by another process."""

_PUBLISH_ATTEMPTS = 3

_READ_PARTITIONS = 64
"""Partitions read by one statement at most (SQLite allows 500 parts in a ``UNION ALL``)."""

_T = TypeVar("_T")
_Rows = list[tuple[Any, ...]]
_ReadMemo = tuple[dict[object, tuple[tuple[str, bytes], ...]], dict[object, int]]
"""Decoded headers and times by stored value, for one read."""

_KNOWN_KEYS = 100_000
"""Message keys whose partition the bus remembers, at most (then it starts over)."""

_LISTENING: weakref.WeakSet[InProcessConsumer] = weakref.WeakSet()
"""The started consumers of every bus object of this process: a publish on any bus object wakes
those of its topic (a second bus object on the same database sees its records at once; one on
another database only reads once for nothing)."""


def _encode_headers(headers: Sequence[tuple[str, bytes]]) -> list[list[str]]:
    return [[k, base64.b64encode(v).decode("ascii")] for k, v in headers]


def _decode_headers(raw: list[Any] | None) -> tuple[tuple[str, bytes], ...]:
    return tuple((str(k), base64.b64decode(v)) for k, v in raw or ())


def _placeholders(dialect: Dialect, count: int) -> list[str]:
    """The driver's positional parameter markers (sqlite3: ``?``, asyncpg: ``$1``)."""
    if dialect.paramstyle == "qmark":
        return ["?"] * count
    if dialect.paramstyle == "numeric_dollar":
        return [f"${i}" for i in range(1, count + 1)]
    if dialect.paramstyle == "format":
        return ["%s"] * count
    raise NotImplementedError(f"the in-process bus has no statements for {dialect.name}")


_TABLE = BusRecord.__table__


def _memo(cache: dict[object, _T], stored: object, convert: Callable[[Any], _T]) -> _T:
    """``convert(stored)``, computed once per distinct stored value (the driver's text, bytes
    or datetime; other kinds are converted every time)."""
    if not isinstance(stored, str | bytes | datetime):
        return convert(stored)
    hit = cache.get(stored)
    if hit is None:
        hit = cache[stored] = convert(stored)
    return hit


class _LogCodec:
    """``bus_records`` statements and value conversions for one dialect.

    Values go through the columns' own bind and result processors (``created_at``'s UTC
    handling, ``headers``' JSON), but once per publish or per distinct value rather than once
    per row: a publish shares one ``created_at``, and its records a handful of header sets.
    """

    def __init__(self, dialect: Dialect) -> None:
        p = _placeholders(dialect, 7)
        self.insert = (
            'INSERT INTO bus_records (topic, "partition", "offset", key, value, headers, '
            f"created_at) VALUES ({', '.join(p)})"
        )
        self._dialect = dialect
        self._selects: dict[int, str] = {}
        self._bind_time = self._processor(dialect, "created_at", bind=True)
        self._bind_json = self._processor(dialect, "headers", bind=True)
        self._read_time = self._processor(dialect, "created_at", bind=False)
        self._read_json = self._processor(dialect, "headers", bind=False)

    def select(self, partitions: int) -> str:
        """One statement reading ``partitions`` partitions: parameters (topic, partition,
        first offset, limit) per partition, in the order to read them, then the overall
        limit. Rows come partition after partition, each in offset order, up to the overall
        limit: what reading them one statement at a time, each with what is left of the
        budget, would give, in one round trip to the database instead of one per partition."""
        known = self._selects.get(partitions)
        if known is None:
            p = _placeholders(self._dialect, 4 * partitions + 1)
            parts = [
                f'SELECT * FROM (SELECT {i} AS part, "offset", key, value, headers, created_at '
                f'FROM bus_records WHERE topic = {p[4 * i]} AND "partition" = {p[4 * i + 1]} '
                f'AND "offset" >= {p[4 * i + 2]} ORDER BY "offset" LIMIT {p[4 * i + 3]}) AS p{i}'
                for i in range(partitions)
            ]
            known = self._selects[partitions] = (
                f'{" UNION ALL ".join(parts)} ORDER BY part, "offset" LIMIT {p[-1]}'
            )
        return known

    @staticmethod
    def _processor(dialect: Dialect, column: str, *, bind: bool) -> Any:
        impl = _TABLE.c[column].type.dialect_impl(dialect)
        processor = impl.bind_processor(dialect) if bind else impl.result_processor(dialect, None)
        return processor or (lambda value: value)

    def stored_time(self, value: datetime) -> Any:
        return self._bind_time(value)

    def stored_headers(self, headers: Sequence[tuple[str, bytes]]) -> Any:
        return self._bind_json(_encode_headers(headers))

    def read_time_ms(self, stored: Any) -> int:
        return int(self._read_time(stored).timestamp() * 1000)

    def read_headers(self, stored: Any) -> tuple[tuple[str, bytes], ...]:
        return _decode_headers(self._read_json(stored)) if stored is not None else ()


class InProcessBus:
    """One process's bus over the database behind ``sessions``.

    Guarantees: a publish is acknowledged only after its one transaction commits; offsets of a
    partition are dense and increase in publish order; each consumer group has at most one
    consumer on this bus, which owns every partition of its topics.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        partitions: int,
        *,
        retention_s: float = 0.0,
        prune_interval_s: float = 10.0,
    ):
        if partitions <= 0:
            raise ValueError("a topic needs at least one partition")
        self.sessions = sessions
        self.partitions = partitions
        self.retention_s = retention_s
        self.prune_interval_s = prune_interval_s
        self._last_prune = time.monotonic()
        self.pruned = 0
        """Records pruned by this bus so far."""
        self._topic_partitions: dict[str, int] = {}
        # Next offset per partition, loaded from the database on a topic's first publish.
        self._next: dict[str, dict[int, int]] = {}
        self._publish_lock = asyncio.Lock()
        self._groups: dict[str, InProcessConsumer] = {}
        self._log_codec: _LogCodec | None = None
        self._partitions_by_key: dict[tuple[bytes, int], int] = {}

    def partitions_of(self, topic: str) -> int:
        return self._topic_partitions.get(topic, self.partitions)

    def producer(self) -> InProcessProducer:
        return InProcessProducer(self)

    def consumer(
        self,
        group_id: str,
        topics: Sequence[str],
        *,
        on_assign: AssignCallback | None = None,
        on_revoke: AssignCallback | None = None,
    ) -> InProcessConsumer:
        return InProcessConsumer(self, group_id, topics, on_assign=on_assign, on_revoke=on_revoke)

    async def close(self) -> None:
        for consumer in list(self._groups.values()):
            await consumer.stop()

    # -- used by the producer and consumers --------------------------------------------------

    @staticmethod
    def _signal(topic: str) -> None:
        """Wake this process's consumers of ``topic``, on any bus object. Only them: a
        consumer of another topic woken by every publish read its partitions once more for
        nothing. Consumers in another process re-read every ``RECHECK_S``."""
        for consumer in list(_LISTENING):
            if topic in consumer.topics:
                consumer._published.set()

    async def _load_next(self, session: AsyncSession, topic: str) -> dict[int, int]:
        rows = await session.execute(
            select(BusRecord.partition, func.max(BusRecord.offset))
            .where(BusRecord.topic == topic)
            .group_by(BusRecord.partition)
        )
        return {int(p): int(o) + 1 for p, o in rows.all()}

    async def append(self, topic: str, messages: Sequence[Message]) -> list[Delivery]:
        async with self._publish_lock:
            for attempt in range(1, _PUBLISH_ATTEMPTS + 1):
                try:
                    deliveries = await self._append_once(topic, messages)
                except IntegrityError:
                    # Another writer took these offsets (a second process on the same
                    # database, or a commit whose acknowledgement we lost): reload and retry.
                    self._next.pop(topic, None)
                    if attempt == _PUBLISH_ATTEMPTS:
                        raise
                    continue
                except BaseException:
                    # The commit may or may not have happened; re-read the offsets next time.
                    self._next.pop(topic, None)
                    raise
                self._signal(topic)
                return deliveries
        raise AssertionError("unreachable")

    async def _append_once(self, topic: str, messages: Sequence[Message]) -> list[Delivery]:
        partitions = self.partitions_of(topic)
        async with transaction(self.sessions) as session:
            connection = await session.connection()
            codec = self._codec(connection.dialect)
            known = self._next.get(topic)
            if known is None:
                known = await self._load_next(session, topic)
            next_offsets = dict(known)
            created = codec.stored_time(utcnow())
            stored_headers: dict[tuple[tuple[str, bytes], ...], Any] = {}
            rows: list[tuple[Any, ...]] = []
            deliveries: list[Delivery] = []
            for m in messages:
                partition = self._partition(m.key, partitions)
                offset = next_offsets.get(partition, 0)
                next_offsets[partition] = offset + 1
                headers = stored_headers.get(m.headers)
                if headers is None:
                    headers = stored_headers[m.headers] = codec.stored_headers(m.headers)
                rows.append((topic, partition, offset, m.key, m.value, headers, created))
                deliveries.append(Delivery(topic, partition, offset))
            await connection.exec_driver_sql(codec.insert, rows)
        self._next[topic] = next_offsets
        return deliveries

    def _partition(self, key: bytes | None, partitions: int) -> int:
        """:func:`partition_for`, remembered per key: murmur2 in Python was a tenth of
        ingest's handler under ``tend up``, and a log's keys (accounts) repeat."""
        if key is None:
            return partition_for(key, partitions)
        known = self._partitions_by_key.get((key, partitions))
        if known is None:
            if len(self._partitions_by_key) >= _KNOWN_KEYS:
                self._partitions_by_key.clear()
            known = self._partitions_by_key[(key, partitions)] = partition_for(key, partitions)
        return known

    def _codec(self, dialect: Dialect) -> _LogCodec:
        if self._log_codec is None:
            self._log_codec = _LogCodec(dialect)
        return self._log_codec

    async def prune(self) -> int:
        """Delete the records every group has committed past (and older than the retention);
        returns how many. Safe at any time: see :mod:`shared.bus.retention`."""
        self._last_prune = time.monotonic()
        running = [(c.group_id, t) for c in self._groups.values() for t in c.topics]
        cutoff = utcnow() - timedelta(seconds=self.retention_s)
        async with transaction(self.sessions) as session:
            upto = await prunable(session, running)
            deleted = await prune(session, upto, created_before=cutoff) if upto else 0
        self.pruned += deleted
        if deleted:
            log.debug("in-process bus: pruned %d consumed records", deleted)
        return deleted

    async def maybe_prune(self) -> None:
        """Prune when ``prune_interval_s`` has passed since the last prune. A failed prune is
        logged and tried again next time: it never fails the commit that triggered it."""
        if time.monotonic() - self._last_prune < self.prune_interval_s:
            return
        try:
            await self.prune()
        except (SQLAlchemyError, OSError) as exc:
            log.warning("in-process bus: pruning consumed records failed: %r", exc)

    def register(self, consumer: InProcessConsumer) -> None:
        current = self._groups.get(consumer.group_id)
        if current is not None and current is not consumer:
            raise RuntimeError(
                f"consumer group {consumer.group_id!r} already has a running consumer; "
                "the in-process bus gives each group exactly one"
            )
        self._groups[consumer.group_id] = consumer

    def unregister(self, consumer: InProcessConsumer) -> None:
        if self._groups.get(consumer.group_id) is consumer:
            del self._groups[consumer.group_id]


class InProcessProducer:
    """Publishes into the database log. Acknowledged means committed."""

    def __init__(self, bus: InProcessBus):
        self._bus = bus
        self._started = False

    async def start(self) -> None:
        self._started = True

    async def stop(self) -> None:
        self._started = False

    async def publish(
        self, topic: str, messages: Sequence[Message], *, timeout_s: float | None = None
    ) -> list[Delivery]:
        if not self._started:
            raise BusUnavailable("the in-process producer is not started")
        if not messages:
            return []
        timeout = DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(timeout):
                return await self._bus.append(topic, messages)
        except TimeoutError as exc:
            raise BusUnavailable(
                f"the database did not store {len(messages)} message(s) on {topic!r} "
                f"within {timeout:g}s"
            ) from exc
        except (SQLAlchemyError, OSError) as exc:
            raise BusUnavailable(f"the database refused messages on {topic!r}: {exc!r}") from exc

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        for spec in specs:
            if spec.partitions <= 0:
                raise ValueError(f"topic {spec.name!r} needs at least one partition")
            self._bus._topic_partitions.setdefault(spec.name, spec.partitions)

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(2.0), self._bus.sessions() as session:
                await session.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError, TimeoutError):
            return False
        return True


class InProcessConsumer:
    """The one member of its group: owns all partitions of its topics from :meth:`start`.

    Positions start at the group's committed offsets (else 0), then ``on_assign`` runs with
    every partition so it can :meth:`seek`. :meth:`poll` waits for a publish instead of
    polling the database in a loop. :meth:`stop` does not run ``on_revoke`` (like aiokafka,
    which only runs it on a rebalance).
    """

    def __init__(
        self,
        bus: InProcessBus,
        group_id: str,
        topics: Sequence[str],
        *,
        on_assign: AssignCallback | None,
        on_revoke: AssignCallback | None,
    ):
        self._bus = bus
        self.group_id = group_id
        self._topics = list(dict.fromkeys(topics))
        self.topics = tuple(self._topics)
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._positions: dict[TopicPartition, int] = {}
        self._rotation = 0
        self._running = False
        self._paused: set[TopicPartition] = set()
        self._published = asyncio.Event()
        """Set by a publish in this process to one of :attr:`topics`; cleared before each
        read, so a publish during the read is not missed."""
        self._drained_at: float | None = None
        """When the latest read found every unpaused partition read to its end (fewer records
        than its budget), if the event was not set since: until a publish, a seek, a resume or
        ``RECHECK_S``, a poll waits without reading (each publish cost one empty read: the
        batch runner's next poll after the read that took the publish's records)."""

    async def start(self) -> None:
        self._bus.register(self)
        _LISTENING.add(self)
        self._drained_at = None
        try:
            self._positions = await self._load_positions()
        except (SQLAlchemyError, OSError) as exc:
            _LISTENING.discard(self)
            self._bus.unregister(self)
            raise BusUnavailable(f"the database did not answer: {exc!r}") from exc
        self._running = True
        if self._on_assign is not None:
            await self._on_assign(set(self._positions))

    async def _load_positions(self) -> dict[TopicPartition, int]:
        async with self._bus.sessions() as session:
            committed = await session.execute(
                select(BusOffset.topic, BusOffset.partition, BusOffset.next_offset).where(
                    BusOffset.group_id == self.group_id, BusOffset.topic.in_(self._topics)
                )
            )
            # Partitions that hold records count too, should the partition count have changed.
            stored = await session.execute(
                select(BusRecord.topic, BusRecord.partition)
                .where(BusRecord.topic.in_(self._topics))
                .distinct()
            )
            positions = {
                TopicPartition(topic, p): 0
                for topic in self._topics
                for p in range(self._bus.partitions_of(topic))
            }
            for topic, partition in stored.all():
                positions.setdefault(TopicPartition(topic, partition), 0)
            for topic, partition, next_offset in committed.all():
                positions[TopicPartition(topic, partition)] = int(next_offset)
        return positions

    async def stop(self) -> None:
        self._running = False
        _LISTENING.discard(self)
        self._bus.unregister(self)

    def assignment(self) -> set[TopicPartition]:
        return set(self._positions) if self._running else set()

    def partitions_of(self, topic: str) -> int | None:
        return self._bus.partitions_of(topic)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp not in self._positions:
            raise ValueError(f"{tp} is not assigned to group {self.group_id!r}")
        if offset < 0:
            raise ValueError("offsets start at 0")
        self._positions[tp] = offset
        self._drained_at = None

    async def poll(self, *, max_records: int, timeout_s: float) -> list[Record]:
        if not self._running:
            raise BusUnavailable("the in-process consumer is not started")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            published = self._published
            drained = self._drained_at
            if published.is_set() or drained is None or loop.time() - drained >= RECHECK_S:
                # Clear the event before reading, so a publish in between is not missed.
                published.clear()
                self._drained_at = None
                records = await self._read(max_records)
                if len(records) < max_records and not published.is_set():
                    self._drained_at = loop.time()
                remaining = deadline - loop.time()
                if records or remaining <= 0:
                    return records
                wait_s = min(remaining, RECHECK_S)
            else:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return []
                wait_s = min(remaining, drained + RECHECK_S - loop.time())
            try:
                async with asyncio.timeout(wait_s):
                    await published.wait()
            except TimeoutError:
                pass

    async def _bounds(self) -> dict[TopicPartition, tuple[int, int]]:
        """First offset and end of each partition of the group's topics that holds records."""
        try:
            async with self._bus.sessions() as session:
                rows = await session.execute(
                    select(
                        BusRecord.topic,
                        BusRecord.partition,
                        func.min(BusRecord.offset),
                        func.max(BusRecord.offset),
                    )
                    .where(BusRecord.topic.in_(self._topics))
                    .group_by(BusRecord.topic, BusRecord.partition)
                )
                return {TopicPartition(t, p): (int(lo), int(hi) + 1) for t, p, lo, hi in rows}
        except (SQLAlchemyError, OSError) as exc:
            raise BusUnavailable(f"reading the in-process bus failed: {exc!r}") from exc

    def pause(self, tps: set[TopicPartition]) -> None:
        self._paused |= tps

    def resume(self, tps: set[TopicPartition]) -> None:
        self._paused -= tps
        self._drained_at = None

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        first, _ = (await self._bounds()).get(tp, (0, 0))
        self.seek(tp, first)

    async def progress(self) -> dict[TopicPartition, tuple[int, int]]:
        if not self._positions:
            return {}
        bounds = await self._bounds()
        return {tp: (pos, bounds.get(tp, (0, 0))[1]) for tp, pos in self._positions.items()}

    async def lag(self) -> dict[TopicPartition, int]:
        return {tp: max(0, end - pos) for tp, (pos, end) in (await self.progress()).items()}

    async def _read(self, max_records: int) -> list[Record]:
        tps = sorted(set(self._positions) - self._paused, key=lambda tp: (tp.topic, tp.partition))
        if not tps or max_records <= 0:
            return []
        # Start at a different partition each poll, so a backlog on one does not starve others.
        start = self._rotation % len(tps)
        self._rotation += 1
        records: list[Record] = []
        try:
            async with self._bus.sessions() as session:
                connection = await session.connection()
                codec = self._bus._codec(connection.dialect)
                memo: _ReadMemo = ({}, {})
                rotated = tps[start:] + tps[:start]
                for first in range(0, len(rotated), _READ_PARTITIONS):
                    budget = max_records - len(records)
                    if budget <= 0:
                        break
                    order = rotated[first : first + _READ_PARTITIONS]
                    params: list[Any] = []
                    for tp in order:
                        params += (tp.topic, tp.partition, self._positions[tp], budget)
                    params.append(budget)
                    rows = await connection.exec_driver_sql(codec.select(len(order)), tuple(params))
                    records += self._records(order, cast(_Rows, rows.all()), codec, memo)
        except (SQLAlchemyError, OSError) as exc:
            raise BusUnavailable(f"reading the in-process bus failed: {exc!r}") from exc
        for r in records:
            self._positions[r.tp] = r.offset + 1
        return records

    @staticmethod
    def _records(
        order: list[TopicPartition],
        rows: _Rows,
        codec: _LogCodec,
        memo: _ReadMemo,
    ) -> list[Record]:
        """The records of ``rows`` (``part`` indexes ``order``), each stored header set and
        time decoded once per read."""
        headers, times = memo
        records: list[Record] = []
        for part, offset, key, value, stored_headers, created in rows:
            tp = order[part]
            decoded = _memo(headers, stored_headers, codec.read_headers)
            ms = _memo(times, created, codec.read_time_ms)
            records.append(
                Record(
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=int(offset),
                    value=value,
                    key=key,
                    headers=decoded,
                    timestamp_ms=ms,
                )
            )
        return records

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        now = utcnow()
        rows = [
            {
                "group_id": self.group_id,
                "topic": tp.topic,
                "partition": tp.partition,
                "next_offset": offset,
                "updated_at": now,
            }
            for tp, offset in offsets.items()
        ]
        try:
            async with transaction(self._bus.sessions) as session:
                await upsert(
                    session,
                    BusOffset.__table__,  # type: ignore[arg-type]
                    rows,
                    keys=["group_id", "topic", "partition"],
                    update=["next_offset", "updated_at"],
                )
        except (SQLAlchemyError, OSError) as exc:
            raise BusUnavailable(f"committing offsets failed: {exc!r}") from exc
        await self._bus.maybe_prune()

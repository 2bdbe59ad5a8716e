"""The bus on Kafka (any Kafka-protocol broker) through aiokafka.

One module of about 610 lines on purpose: the producer (which also creates topics), the consumer
and the bus are one adapter of aiokafka behind :mod:`shared.bus.base`, class for class like the
in-process bus (:mod:`shared.bus.memory`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.structs import OffsetAndMetadata
from aiokafka.structs import TopicPartition as KafkaTopicPartition

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
from shared.settings import KafkaSettings

log = logging.getLogger(__name__)

PING_TIMEOUT_S = 2.0
"""How long :meth:`KafkaProducer.ping` waits for broker metadata."""

CONSUMER_START_TIMEOUT_S = 60.0
"""Bound on joining the group at :meth:`KafkaConsumer.start`. A broker that is down fails at
once (connection refused); joining can legitimately take a session timeout or two, when a
previous member of the group left without saying so (tansu: members of generation 0 never
send LeaveGroup from aiokafka)."""

_KAFKA_DEFAULT_MAX_REQUEST = 1_048_576

PARTITION_CACHE_KEYS = 100_000
"""Keys whose partition a producer remembers (about 10 MB at most)."""


def _to_kafka(tp: TopicPartition) -> KafkaTopicPartition:
    return KafkaTopicPartition(tp.topic, tp.partition)


def _from_kafka(tps: Any) -> set[TopicPartition]:
    return {TopicPartition(tp.topic, tp.partition) for tp in tps}


class _PartitionCache:
    """Kafka's default partition of a key (murmur2, pure Python in aiokafka: a tenth of
    ingest's CPU), remembered for the keys seen lately. Bounded: emptied when full."""

    def __init__(self, size: int = PARTITION_CACHE_KEYS) -> None:
        self._size = size
        self._known: dict[tuple[bytes, int], int] = {}

    def group(self, messages: Sequence[Message], partitions: int) -> dict[int, list[int]]:
        """Indexes of ``messages`` per partition, in order."""
        known = self._known
        out: dict[int, list[int]] = {}
        for i, m in enumerate(messages):
            if m.key is None:
                p = partition_for(None, partitions)
            else:
                p = known.get((m.key, partitions), -1)
                if p < 0:
                    if len(known) >= self._size:
                        known.clear()
                    p = known[(m.key, partitions)] = partition_for(m.key, partitions)
            out.setdefault(p, []).append(i)
        return out


def _swallow_result(fut: asyncio.Future[Any]) -> None:
    # Futures abandoned after a timeout still resolve later; read them so asyncio does not
    # log "exception was never retrieved".
    if not fut.cancelled():
        fut.exception()


_NO_HEADERS: list[tuple[str, bytes]] = []
"""Handed to aiokafka for a message without headers (it wants a list, and only reads it)."""


class _OpenBatch:
    """One partition's batch that still takes messages: handed to aiokafka (or about to be)
    and neither drained nor full, so the next publish of the partition appends to it, as
    aiokafka's own ``send()`` appends to its pending batch. ``delivered`` gets the batch's
    outcome: its base offset, or the error that lost it."""

    __slots__ = ("builder", "client", "delivered")

    def __init__(self, client: AIOKafkaProducer, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.builder: Any = client.create_batch()
        self.delivered: asyncio.Future[Any] = loop.create_future()

    def fill(self, messages: Sequence[Message], indexes: list[int], start: int) -> tuple[int, int]:
        """Appends ``messages[indexes[start]]`` on until one does not fit (the builder then
        closes itself); returns the relative offset of the first appended and the position
        in ``indexes`` after the last."""
        builder = self.builder
        first = builder.record_count()
        n = len(indexes)
        i = start
        while i < n:
            m = messages[indexes[i]]
            headers = list(m.headers) if m.headers else _NO_HEADERS
            if builder.append(key=m.key, value=m.value, timestamp=None, headers=headers) is None:
                break
            i += 1
        return first, i

    def settle(self, outcome: asyncio.Future[Any]) -> None:
        if self.delivered.done():
            return
        if outcome.cancelled():
            self.delivered.set_exception(KafkaError("the batch was cancelled"))
        elif (exc := outcome.exception()) is not None:
            self.delivered.set_exception(exc)
        else:
            self.delivered.set_result(outcome.result())

    def fail(self, exc: BaseException) -> None:
        self.builder.close()
        if not self.delivered.done():
            self.delivered.set_exception(
                exc if isinstance(exc, Exception) else KafkaError(f"publish interrupted: {exc!r}")
            )


_Placed = list[tuple[_OpenBatch, int, list[int]]]
"""Where a publish's messages went: (batch, relative offset of the first, their indexes)."""


class KafkaProducer:
    """Publishes with ``acks=all``; a :meth:`publish` returns only when every message of the
    call is acknowledged, and raises :class:`BusUnavailable` otherwise (never hangs past its
    timeout). A call's messages are appended, in order, to each partition's open batch,
    which the calls made meanwhile share (a key's messages keep their order on its
    partition); the batches of all partitions are in flight together.

    The aiokafka client is created on :meth:`start` and re-created on demand: when the broker
    was down at start, or a publish timed out (aiokafka may keep a stuck connection), the next
    publish builds a fresh client, so the producer recovers once the broker is back.
    """

    def __init__(self, bootstrap: str, settings: KafkaSettings, *, default_timeout_s: float):
        self._bootstrap = bootstrap
        self._settings = settings
        self._default_timeout_s = default_timeout_s
        self._client: AIOKafkaProducer | None = None
        self._wanted = False
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self._partition_locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._open: dict[tuple[str, int], _OpenBatch] = {}
        self._handovers: set[asyncio.Future[None]] = set()
        self._partitions = _PartitionCache()

    def _new_client(self) -> AIOKafkaProducer:
        s = self._settings
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=s.client_id,
            acks="all",
            # tansu (the test broker) has no idempotent producer; at-least-once is the contract.
            enable_idempotence=False,
            linger_ms=s.linger_ms,
            max_batch_size=s.max_batch_bytes,
            max_request_size=max(s.max_batch_bytes, _KAFKA_DEFAULT_MAX_REQUEST),
            request_timeout_ms=s.request_timeout_ms,
        )

    async def start(self) -> None:
        """Connect. Raises :class:`BusUnavailable` when the broker cannot be reached; the
        producer stays wanted, so a later :meth:`publish` retries the connection."""
        self._wanted = True
        try:
            async with asyncio.timeout(self._default_timeout_s):
                await self._connect()
        except TimeoutError as exc:
            raise BusUnavailable(
                f"Kafka at {self._bootstrap} did not answer within {self._default_timeout_s:g}s"
            ) from exc

    async def stop(self) -> None:
        self._wanted = False
        # Batches not yet handed over fail (their publishes raise) rather than outlive us.
        for handover in list(self._handovers):
            handover.cancel()
        if self._handovers:
            await asyncio.wait(list(self._handovers))
        async with self._lock:
            client, self._client = self._client, None
        if client is not None:
            await _stop_quietly(client)
        # Clients dropped after a failure finish (or expire) their last batches; aiokafka
        # bounds that by request_timeout_ms.
        if self._closing:
            await asyncio.wait(list(self._closing))

    async def _connect(self) -> AIOKafkaProducer:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is not None:
                return self._client
            client = self._new_client()
            try:
                await client.start()
            except (KafkaError, OSError) as exc:
                await _stop_quietly(client)
                raise BusUnavailable(
                    f"cannot connect to Kafka at {self._bootstrap}: {exc!r}"
                ) from exc
            except BaseException:
                await _stop_quietly(client)
                raise
            self._client = client
            return client

    async def publish(
        self, topic: str, messages: Sequence[Message], *, timeout_s: float | None = None
    ) -> list[Delivery]:
        if not self._wanted:
            raise BusUnavailable("the Kafka producer is not started")
        if not messages:
            return []
        timeout = self._default_timeout_s if timeout_s is None else timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        client: AIOKafkaProducer | None = None
        placed: _Placed = []
        try:
            async with asyncio.timeout_at(deadline):
                client = await self._connect()
                partitions = len(await client.partitions_for(topic))
                by_partition = self._partitions.group(messages, partitions)
                for p, indexes in by_partition.items():
                    await self._place(client, topic, p, indexes, messages, placed, deadline)
            # wait() leaves the futures alone on timeout (cancelling them would not unsend).
            futures = {batch.delivered for batch, _, _ in placed}
            _, pending = await asyncio.wait(futures, timeout=max(deadline - loop.time(), 0.0))
            if pending:
                raise TimeoutError
            deliveries: list[Delivery] = [Delivery(topic, -1, -1)] * len(messages)
            for batch, first, indexes in placed:
                meta = batch.delivered.result()
                base = meta.offset + first
                for relative, i in enumerate(indexes):
                    deliveries[i] = Delivery(topic, meta.partition, base + relative)
        except TimeoutError as exc:
            await self._after_failure(client, [batch.delivered for batch, _, _ in placed])
            raise BusUnavailable(
                f"Kafka did not acknowledge {len(messages)} message(s) on {topic!r} "
                f"within {timeout:g}s"
            ) from exc
        except KafkaError as exc:
            await self._after_failure(client, [batch.delivered for batch, _, _ in placed])
            raise BusUnavailable(f"Kafka refused messages on {topic!r}: {exc!r}") from exc
        return deliveries

    async def _place(
        self,
        client: AIOKafkaProducer,
        topic: str,
        partition: int,
        indexes: list[int],
        messages: Sequence[Message],
        placed: _Placed,
        deadline: float,
    ) -> None:
        """Appends ``messages[i] for i in indexes`` to ``partition``'s open batch, and to new
        batches handed to aiokafka when it is full or gone (drained, or of an earlier client),
        recording in ``placed`` where each went.

        Concurrent publishes share batches: the messages of the requests that arrive while a
        batch lingers or waits for the request before it go out in that batch, so a produce
        request carries what gathered meanwhile (as with aiokafka's ``send()``), not one
        publish's share of each partition; per message this costs an append, not a future.
        New batches of a partition queue on a lock: aiokafka lets one batch per partition wait
        in its accumulator, and its waiters beyond a few time out (``KafkaTimeoutError``)
        instead of queueing."""
        key = (topic, partition)
        done = 0
        batch = self._open.get(key)
        if batch is not None and batch.client is client and not batch.builder.closed():
            first, done = batch.fill(messages, indexes, 0)
            if done:
                placed.append((batch, first, indexes[:done] if done < len(indexes) else indexes))
        while done < len(indexes):
            batch = _OpenBatch(client, asyncio.get_running_loop())
            first, end = batch.fill(messages, indexes, done)
            if end == done:
                raise BusUnavailable(
                    f"a message of {len(messages[indexes[done]].value)} bytes does not fit "
                    "in a batch"
                )
            placed.append((batch, first, indexes[done:end]))
            done = end
            # Open before it is handed over: later publishes append to it meanwhile. The
            # hand-over is a task of its own, so cancelling this publish (its client went
            # away) does not fail the publishes that share the batch; it keeps this
            # publish's deadline (past it the batch fails, its sharers with it, as before).
            # Tasks start in the order made: a partition's batches queue on its lock in order.
            self._open[key] = batch
            handover = asyncio.ensure_future(
                self._hand_over(client, topic, partition, batch, deadline)
            )
            self._handovers.add(handover)
            handover.add_done_callback(self._handovers.discard)
            handover.add_done_callback(_swallow_result)
            await asyncio.shield(handover)

    async def _hand_over(
        self,
        client: AIOKafkaProducer,
        topic: str,
        partition: int,
        batch: _OpenBatch,
        deadline: float,
    ) -> None:
        key = (topic, partition)
        try:
            async with asyncio.timeout_at(deadline):
                lock = self._partition_locks.setdefault(key, asyncio.Lock())
                async with lock:
                    outcome = await client.send_batch(batch.builder, topic, partition=partition)
        except BaseException as exc:
            batch.fail(exc)
            if self._open.get(key) is batch:
                del self._open[key]
            raise
        outcome.add_done_callback(batch.settle)

    async def _after_failure(
        self, client: AIOKafkaProducer | None, futures: list[asyncio.Future[Any]]
    ) -> None:
        for fut in futures:
            fut.add_done_callback(_swallow_result)
        if client is None:
            return
        # Start from a clean client next time: after a broker outage aiokafka can keep waiting
        # on connections and metadata that will not come back (aio-libs/aiokafka#517, #759).
        async with self._lock:
            if self._client is not client:
                return
            self._client = None
        task = asyncio.get_running_loop().create_task(_stop_quietly(client))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        if not specs:
            return
        s = self._settings
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._bootstrap,
            client_id=s.client_id,
            request_timeout_ms=s.request_timeout_ms,
        )
        try:
            async with asyncio.timeout(self._default_timeout_s):
                await admin.start()
                existing = set(await admin.list_topics())
                missing = [
                    NewTopic(
                        name=spec.name,
                        num_partitions=spec.partitions,
                        replication_factor=s.replication_factor,
                        topic_configs=dict(spec.config),
                    )
                    for spec in specs
                    if spec.name not in existing
                ]
                if missing:
                    response = await admin.create_topics(missing)
                    _raise_topic_errors(response)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BusUnavailable(f"cannot create topics on {self._bootstrap}: {exc!r}") from exc
        finally:
            await _stop_quietly(admin)

    async def ping(self) -> bool:
        client = AIOKafkaClient(
            bootstrap_servers=self._bootstrap,
            client_id=self._settings.client_id,
            request_timeout_ms=int(PING_TIMEOUT_S * 1000),
        )
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                await client.bootstrap()
            return True
        except (KafkaError, OSError, TimeoutError):
            return False
        finally:
            await _stop_quietly(client)


def _raise_topic_errors(response: Any) -> None:
    for entry in getattr(response, "topic_errors", ()):
        name, code = entry[0], entry[1]
        if code in (0, TopicAlreadyExistsError.errno):
            continue
        message = entry[2] if len(entry) > 2 else ""
        raise BusUnavailable(f"creating topic {name!r} failed: error {code} {message}")


async def _stop_quietly(client: Any) -> None:
    try:
        if isinstance(client, AIOKafkaProducer | AIOKafkaConsumer):
            await client.stop()
        else:
            await client.close()
    except Exception:  # a client that never connected may fail to close; nothing to keep
        log.debug("closing a Kafka client failed", exc_info=True)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_assign: AssignCallback | None, on_revoke: AssignCallback | None):
        self._on_assign = on_assign
        self._on_revoke = on_revoke

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if self._on_revoke is not None:
            await self._on_revoke(_from_kafka(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if self._on_assign is not None:
            await self._on_assign(_from_kafka(assigned))


class KafkaConsumer:
    """A consumer-group member with manual commits only (``enable_auto_commit=False``).

    Without a committed offset a partition starts at its earliest record. ``on_assign`` runs
    inside aiokafka's rebalance, before any record of the new partitions is returned, so it
    can :meth:`seek` to offsets stored in the database.
    """

    def __init__(
        self,
        bootstrap: str,
        settings: KafkaSettings,
        group_id: str,
        topics: Sequence[str],
        *,
        on_assign: AssignCallback | None,
        on_revoke: AssignCallback | None,
        start_timeout_s: float,
    ):
        self._topics = list(topics)
        self._listener = _Listener(on_assign, on_revoke)
        self._start_timeout_s = start_timeout_s
        self._bootstrap = bootstrap
        self._request_timeout_s = settings.request_timeout_ms / 1000
        self._client = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id=settings.client_id,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=settings.request_timeout_ms,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
        )

    async def start(self) -> None:
        self._client.subscribe(self._topics, listener=self._listener)
        try:
            async with asyncio.timeout(self._start_timeout_s):
                await self._client.start()
        except (KafkaError, OSError, TimeoutError) as exc:
            await _stop_quietly(self._client)
            raise BusUnavailable(f"cannot connect to Kafka at {self._bootstrap}: {exc!r}") from exc

    async def stop(self) -> None:
        await self._client.stop()

    async def poll(self, *, max_records: int, timeout_s: float) -> list[Record]:
        try:
            batches = await self._client.getmany(
                timeout_ms=int(timeout_s * 1000), max_records=max_records
            )
        except KafkaError as exc:
            raise BusUnavailable(f"polling Kafka failed: {exc!r}") from exc
        return [
            Record(
                topic=r.topic,
                partition=r.partition,
                offset=r.offset,
                value=r.value,
                key=r.key,
                headers=tuple((k, v) for k, v in r.headers),
                timestamp_ms=r.timestamp,
            )
            for records in batches.values()
            for r in records
        ]

    def assignment(self) -> set[TopicPartition]:
        return _from_kafka(self._client.assignment())

    def partitions_of(self, topic: str) -> int | None:
        found = self._client.partitions_for_topic(topic)
        return len(found) if found else None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._client.seek(_to_kafka(tp), offset)

    def pause(self, tps: set[TopicPartition]) -> None:
        assigned = self._client.assignment()
        self._client.pause(*(k for k in map(_to_kafka, tps) if k in assigned))

    def resume(self, tps: set[TopicPartition]) -> None:
        assigned = self._client.assignment()
        self._client.resume(*(k for k in map(_to_kafka, tps) if k in assigned))

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        await self._client.seek_to_beginning(_to_kafka(tp))

    async def progress(self) -> dict[TopicPartition, tuple[int, int]]:
        out: dict[TopicPartition, tuple[int, int]] = {}
        for ktp in self._client.assignment():
            # The high watermark of the latest fetch response: tansu's ListOffsets answer can
            # be off, and a fetch past the end of its log answers with no error at all.
            end = self._client.highwater(ktp)
            if end is None:
                continue
            try:
                async with asyncio.timeout(self._request_timeout_s):
                    position = await self._client.position(ktp)
            except (KafkaError, TimeoutError):
                continue
            out[TopicPartition(ktp.topic, ktp.partition)] = (position, end)
        return out

    async def lag(self) -> dict[TopicPartition, int]:
        return {tp: max(0, end - pos) for tp, (pos, end) in (await self.progress()).items()}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        try:
            await self._client.commit(
                {_to_kafka(tp): OffsetAndMetadata(offset, "") for tp, offset in offsets.items()}
            )
        except KafkaError as exc:
            raise BusUnavailable(f"committing offsets to Kafka failed: {exc!r}") from exc


class KafkaBus:
    """The production bus. Producers and consumers it hands out are closed by :meth:`close`."""

    def __init__(self, bootstrap: str, settings: KafkaSettings):
        self.bootstrap = bootstrap
        self.settings = settings
        self._producers: list[KafkaProducer] = []
        self._consumers: list[KafkaConsumer] = []

    @property
    def _timeout_s(self) -> float:
        return self.settings.request_timeout_ms / 1000

    def producer(self) -> KafkaProducer:
        producer = KafkaProducer(self.bootstrap, self.settings, default_timeout_s=self._timeout_s)
        self._producers.append(producer)
        return producer

    def consumer(
        self,
        group_id: str,
        topics: Sequence[str],
        *,
        on_assign: AssignCallback | None = None,
        on_revoke: AssignCallback | None = None,
    ) -> KafkaConsumer:
        consumer = KafkaConsumer(
            self.bootstrap,
            self.settings,
            group_id,
            topics,
            on_assign=on_assign,
            on_revoke=on_revoke,
            start_timeout_s=CONSUMER_START_TIMEOUT_S,
        )
        self._consumers.append(consumer)
        return consumer

    async def close(self) -> None:
        for consumer in self._consumers:
            await consumer.stop()
        for producer in self._producers:
            await producer.stop()
        self._consumers.clear()
        self._producers.clear()

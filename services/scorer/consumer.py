"""The scorer as a process: consume ``tend.events.v1`` into rollups, keep scores current.

``ScorerService.run`` runs three loops until ``stop`` is set: the batch consumer (events ->
rollups, exactly-once effect, see :mod:`shared.consumer`), the re-scorer (dirty accounts soon
after each commit, all accounts on the sweep) and the hourly purge of the dedup window.

Replicas share the work by partition (:mod:`shared.ownership`): the consumer tells the
re-scorer which partitions it owns, the re-scorer scores only their accounts and holds while
the consumer drains a backlog, and only the owner of partition 0 purges.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from prometheus_client import Histogram
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.rescorer import Rescorer
from services.scorer.writer import RollupWriter
from shared import metrics, topics
from shared.bus.base import Bus, Producer, Record
from shared.clock import Clock
from shared.config import TendConfig
from shared.consumer import BatchConsumer, PoisonRecord, RunnerOptions
from shared.events import EventStruct, decode_event
from shared.ownership import Ownership
from shared.service_app import run_loops

log = logging.getLogger(__name__)

GROUP_ID = "tend-scorer"
LAGGING_BATCH_FACTOR = 8
"""While a backlog drains, batches grow to this many times ``max_records`` (bench/scorer.py:
1,000 to 6,000 events a flush cost 1.2-1.4x less per event, see docs/performance.md)."""

PURGE_INTERVAL_S = 3600.0
LEADER_CHECK_S = 30.0
"""How often a replica that does not purge checks whether it now owns partition 0."""


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(max(0, v))`` for each of ``values``, with one update of its sum and
    one of each bucket hit: ``observe`` takes a lock per call and walks the bucket bounds in
    Python (all 17 for an event hours old), about 1.5 µs an event of the consumer's."""
    hist: Any = histogram  # an unlabelled histogram's counters, the ones ``observe`` updates
    kept = [v if v > 0 else 0.0 for v in values]
    if not kept:
        return
    hist._sum.inc(sum(kept))
    for index, n in Counter(map(partial(bisect_left, hist._upper_bounds), kept)).items():
        hist._buckets[index].inc(n)


class EventsHandler:
    """Decodes canonical events (into :class:`EventStruct`, as strict as the pydantic model,
    see :func:`decode_event`) and writes them into the rollups (see RollupWriter)."""

    def __init__(
        self,
        rescorer: Rescorer | None,
        group_id: str = GROUP_ID,
        *,
        routing_from_traits: bool = False,
    ) -> None:
        self.writer = RollupWriter(routing_from_traits=routing_from_traits)
        self.rescorer = rescorer
        self.group_id = group_id

    def decode(self, record: Record) -> EventStruct:
        try:
            event = decode_event(record.value)
        except ValueError:  # pydantic's ValidationError: dead-lettered under its own name
            raise
        except Exception as err:  # any producer may write onto the topic: never stop on it
            raise PoisonRecord(f"not a canonical event: {type(err).__name__}: {err}") from err
        # Identify, page, screen and alias calls may come before the user's group call: no
        # account is valid for them (ingest keys them by user), and they change nothing here.
        if event.type in ("track", "group") and not event.account_id:
            raise PoisonRecord(f"{event.type} event {event.event_id!r} has no account_id")
        return event

    async def flush(self, session: AsyncSession, items: Sequence[EventStruct]) -> None:
        # Offsets are stored by the runner in this same transaction.
        result = await self.writer.flush(session, self.group_id, items, {})
        if result.duplicates:
            metrics.DEDUP_HITS.labels(self.group_id).inc(result.duplicates)

    async def after_commit(self, items: Sequence[EventStruct]) -> None:
        # After the commit, not in flush: a retried flush must not count its events twice.
        now = datetime.now(UTC)
        observe_many(metrics.EVENT_AGE, [(now - e.received_at).total_seconds() for e in items])
        if self.rescorer is not None and items:
            self.rescorer.wake()


class ScorerService:
    """All of the scorer's background work, for ``tend scorer`` and ``tend up``."""

    def __init__(
        self,
        bus: Bus,
        sessions: async_sessionmaker[AsyncSession],
        producer: Producer,
        config: TendConfig,
        clock: Clock,
        *,
        group_id: str = GROUP_ID,
        max_records: int = 1000,
        max_wait_s: float = 0.5,
        sweep_interval_s: float = 3600.0,
        dedup_window: timedelta = timedelta(days=7),
        backfill_days: int = 90,
        horizon_days: int = 35,
        routing_from_traits: bool = False,
        runner: RunnerOptions | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.dedup_window = dedup_window
        self.ownership = Ownership(topics.EVENTS)
        self.rescorer = Rescorer(
            sessions,
            producer,
            config,
            clock,
            sweep_interval_s=sweep_interval_s,
            backfill_days=backfill_days,
            horizon_days=horizon_days,
            ownership=self.ownership,
        )
        self.handler = EventsHandler(
            self.rescorer, group_id, routing_from_traits=routing_from_traits
        )
        self.consumer: BatchConsumer[EventStruct] = BatchConsumer(
            bus,
            sessions,
            group_id=group_id,
            topics=[topics.EVENTS],
            handler=self.handler,
            dlq_topic=topics.EVENTS_DLQ,
            producer=producer,
            max_records=max_records,
            max_wait_s=max_wait_s,
            options=runner,
            ownership=self.ownership,
            max_records_lagging=LAGGING_BATCH_FACTOR * max_records,
        )
        self.rescorer.busy = self.consumer.behind
        metrics.init_consumer_series(group_id, [topics.EVENTS])

    async def purge_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self.ownership.leads():
                # Another replica purges (the owner of partition 0; see shared.ownership).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), LEADER_CHECK_S)
                continue
            try:
                async with self.sessions() as session, session.begin():
                    n = await RollupWriter.purge_processed(
                        session, self.clock.now() - self.dedup_window
                    )
                if n:
                    log.info(
                        "purged %d event ids older than the dedup window", n, extra={"count": n}
                    )
            except Exception:
                log.exception("purging the dedup window failed; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PURGE_INTERVAL_S)

    async def run(self, stop: asyncio.Event) -> None:
        await run_loops(
            stop,
            {
                "scorer-consumer": self.consumer.run(stop),
                "scorer-rescorer": self.rescorer.run(stop),
                "scorer-purge": self.purge_loop(stop),
            },
        )

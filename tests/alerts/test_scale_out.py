"""Two alerts replicas on one broker and one database (tansu + PostgreSQL): each judges only the
accounts of the ``tend.scores.v1`` partitions it owns, together they judge every account once,
and only the owner of partition 0 purges old score points."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.consumer import AlertsService
from shared import topics
from shared.bus.base import Message
from shared.bus.kafka import KafkaBus
from shared.clock import FixedClock
from shared.db.models import AlertScorePoint
from shared.scores import ScoreMessage
from tests.alerts.snapshots import (
    DAY0,
    create_defaults,
    create_snapshot,
    only_rules,
    unique_account,
)
from tests.scorer.synthetic import (
    KAFKA,
    PARTITIONS,
    Sessions,
    end_offsets,
    kafka_stack,
    publish,
    wait_for_offsets,
    wait_until,
)
from tests.support.broker import TansuBroker

pytestmark = pytest.mark.integration

GROUP = "tend-alerts-scale-out"
NOW = datetime.combine(DAY0 + timedelta(days=200), datetime.min.time(), UTC)
"""Far after the scored days: their points are older than any kept history."""


class Replica:
    """One alerts service on its own bus, recording the accounts its handler judged."""

    def __init__(self, bootstrap: str, sessions: Sessions) -> None:
        self.bus = KafkaBus(bootstrap, KAFKA)
        self.producer = self.bus.producer()
        self.service = AlertsService(
            self.bus,
            sessions,
            self.producer,
            only_rules("dormant"),
            FixedClock(NOW),
            defaults=create_defaults(email_enabled=False),
            console_url="http://console.example",
            dispatcher=None,
            group_id=GROUP,
            max_wait_s=0.05,
        )
        self.judged: list[str] = []
        flush = self.service.handler.flush

        async def recording(session: AsyncSession, items: Sequence[ScoreMessage]) -> None:
            self.judged += [m.account_id for m in items]
            await flush(session, items)

        self.service.handler.flush = recording  # type: ignore[method-assign]
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.producer.start()
        self.task = asyncio.create_task(self.service.consumer.run(self.stop))

    def alive(self) -> None:
        assert self.task is not None
        if self.task.done():
            raise AssertionError(f"a replica stopped early: {self.task.exception()!r}")

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self.task, 60)
        await self.producer.stop()
        await self.bus.close()


async def points(sessions: Sessions) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(AlertScorePoint)) or 0)


async def purge_for(replica: Replica, seconds: float) -> None:
    """Run the replica's purge loop for ``seconds``."""
    stop = asyncio.Event()
    task = asyncio.create_task(replica.service.purge_loop(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 60)


class TestTwoReplicas:
    async def test_each_judges_its_own_partitions_and_one_purges(
        self, own_broker: TansuBroker, database: tuple[str, Sessions]
    ) -> None:
        url, sessions = database
        accounts = [unique_account("scale") for _ in range(24)]
        replicas = [Replica(own_broker.bootstrap, sessions) for _ in range(2)]
        try:
            async with kafka_stack(own_broker.bootstrap, url) as stack:
                for r in replicas:
                    await r.start()

                def balanced() -> bool:
                    for r in replicas:
                        r.alive()
                    owned = [r.service.ownership.owned for r in replicas]
                    return all(owned) and owned[0] | owned[1] == set(range(PARTITIONS))

                await wait_until(balanced, timeout_s=60, what="both replicas own partitions")
                messages = [
                    Message(create_snapshot(a, d).to_bytes(), key=a.encode())
                    for d in range(3)
                    for a in accounts
                ]
                ends = end_offsets(await publish(stack.producer, topics.SCORES, messages))

            def alive() -> None:
                for r in replicas:
                    r.alive()

            await wait_for_offsets(sessions, GROUP, ends, alive=alive)
            judged = [set(r.judged) for r in replicas]
            assert judged[0].isdisjoint(judged[1])
            assert judged[0] | judged[1] == set(accounts)
            for r, mine in zip(replicas, judged, strict=True):
                assert mine and r.service.ownership.select(sorted(mine)) == sorted(mine)
            assert sorted(a for r in replicas for a in r.judged) == sorted(accounts * 3)

            # Work for no account in particular: only the owner of partition 0 does it.
            leader, other = sorted(replicas, key=lambda r: not r.service.ownership.leads())
            assert leader.service.ownership.leads() and not other.service.ownership.leads()
            assert await points(sessions) == len(accounts) * 3
            await purge_for(other, 0.5)
            assert await points(sessions) == len(accounts) * 3
            await purge_for(leader, 0.5)
            assert await points(sessions) == 0
        finally:
            for r in replicas:
                await r.close()

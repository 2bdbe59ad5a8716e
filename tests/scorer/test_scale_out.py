"""Three scorer replicas on one broker and one database, one killed mid-run: the rollups are
exact, and a sweep scores and publishes each account once, on the replica that owns its
partition (tansu + PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition as KafkaTP
from sqlalchemy import func, or_, select

from services.scorer.consumer import GROUP_ID, ScorerService
from shared import topics
from shared.bus.base import Delivery, Message
from shared.bus.kafka import KafkaBus
from shared.clock import FixedClock
from shared.consumer import RunnerOptions
from shared.db.models import Account
from shared.db.session import create_engine, create_sessionmaker
from shared.scores import ScoreMessage
from tests.scorer.synthetic import (
    CONFIG,
    KAFKA,
    PARTITIONS,
    Sessions,
    end_offsets,
    expected_rollups,
    generate,
    kafka_stack,
    publish,
    read_rollups,
    stored_offsets,
    wait_for_offsets,
    wait_until,
)
from tests.support.broker import TansuBroker
from tests.support.producers import DelegatingProducer

pytestmark = pytest.mark.integration


class RecordingProducer(DelegatingProducer):
    """A real Kafka producer that also remembers which scores this replica published."""

    def __init__(self, bus: KafkaBus) -> None:
        super().__init__(bus.producer())
        self.scores: list[ScoreMessage] = []

    async def publish(
        self, topic: str, messages: Sequence[Message], *, timeout_s: float | None = None
    ) -> list[Delivery]:
        out = await super().publish(topic, messages, timeout_s=timeout_s)
        if topic == topics.SCORES:
            self.scores += [ScoreMessage.from_bytes(m.value) for m in messages]
        return out


class Replica:
    """One scorer replica with its own bus and its own database connections (so a kill can
    close them, as the death of a process would)."""

    def __init__(self, bootstrap: str, url: str, clock: FixedClock) -> None:
        self.engine = create_engine(url)
        sessions = create_sessionmaker(self.engine)
        self.bus = KafkaBus(bootstrap, KAFKA)
        self.producer = RecordingProducer(self.bus)
        self.service = ScorerService(
            self.bus,
            sessions,
            self.producer,
            CONFIG,
            clock,
            group_id=GROUP_ID,
            max_records=200,
            max_wait_s=0.1,
            sweep_interval_s=3600,
            runner=RunnerOptions(lag_interval_s=0.5),
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.producer.start()
        self.task = asyncio.create_task(self.service.run(self.stop))

    def alive(self) -> None:
        assert self.task is not None
        if self.task.done():
            raise AssertionError(f"a replica stopped early: {self.task.exception()!r}")

    async def kill(self) -> None:
        """Cancelled wherever it is (mid-batch, mid-sweep): nothing drains."""
        assert self.task is not None
        self.task.cancel()
        await asyncio.wait([self.task], timeout=60)
        await self.bus.close()
        await self.engine.dispose()

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None and not self.task.done():
            await asyncio.wait_for(self.task, 60)
        await self.bus.close()
        await self.engine.dispose()


async def unscored(sessions: Sessions, day: date) -> int:
    async with sessions() as session:
        n = await session.scalar(
            select(func.count())
            .select_from(Account)
            .where(
                or_(
                    Account.dirty.is_(True),
                    Account.scored_as_of.is_(None),
                    Account.scored_as_of < day,
                )
            )
        )
        return int(n or 0)


async def read_scores_topic(bootstrap: str) -> list[ScoreMessage]:
    """Every message on tend.scores.v1, read back from the broker."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [KafkaTP(topics.SCORES, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[ScoreMessage] = []
        read = dict.fromkeys(tps, 0)
        while any(read[tp] < ends[tp] for tp in tps):
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                out += [ScoreMessage.from_bytes(r.value) for r in records]
                if records:
                    read[tp] = records[-1].offset + 1
        return out
    finally:
        await consumer.stop()


async def describe(sessions: Sessions, replicas: list[Replica]) -> str:
    """Who owns what, and the accounts not scored yet."""
    async with sessions() as session:
        waiting = (
            await session.execute(
                select(Account.account_id, Account.dirty, Account.scored_as_of).where(
                    Account.dirty.is_(True)
                )
            )
        ).all()
    owned = [sorted(r.service.ownership.owned) for r in replicas]
    return f"owned={owned} dirty={waiting}"


class TestThreeReplicas:
    async def test_one_killed_rollups_exact_and_each_account_scored_once_per_sweep(
        self, own_broker: TansuBroker, database: tuple[str, Sessions]
    ) -> None:
        url, sessions = database
        replay = generate(uuid.uuid4().hex[:8], per_archetype=3)
        accounts = {a.account_id for a in replay.accounts}
        async with kafka_stack(own_broker.bootstrap, url) as stack:
            deliveries = await publish(stack.producer, topics.EVENTS, replay.messages())
        ends = end_offsets(deliveries)
        total = sum(ends.values())
        clock = FixedClock(replay.as_of_datetime())
        replicas = [Replica(own_broker.bootstrap, url, clock) for _ in range(3)]
        try:
            for r in replicas:
                await r.start()
            victim, survivors = replicas[2], replicas[:2]

            async def halfway() -> bool:
                for r in replicas:
                    r.alive()
                return sum((await stored_offsets(sessions, GROUP_ID)).values()) >= 0.4 * total

            await wait_until(halfway, timeout_s=180, interval_s=0.05, what="40% consumed")
            await victim.kill()

            def alive() -> None:
                for r in survivors:
                    r.alive()

            await wait_for_offsets(sessions, GROUP_ID, ends, alive=alive)
            today = replay.end

            async def scored_today() -> bool:
                alive()
                return await unscored(sessions, today) == 0

            await wait_until(
                scored_today,
                describe=lambda: describe(sessions, survivors),
                timeout_s=180,
                what="every account scored through the last day",
            )
            # A copy of nothing was counted twice by the hand-over: exact rollups.
            assert await read_rollups(sessions) == expected_rollups(replay.events)

            # Every account-day was published; a repeat (the victim died between publishing
            # and committing a chunk) carries the same score.
            first = await read_scores_topic(own_broker.bootstrap)
            by_day: dict[tuple[str, date], set[tuple[float | None, str]]] = {}
            for m in first:
                by_day.setdefault((m.account_id, m.as_of), set()).add((m.score, m.band))
            assert {a for a, d in by_day if d == today} == accounts
            assert all(len(v) == 1 for v in by_day.values())

            # The next day's sweep on the two survivors: each account once, by its owner.
            for r in survivors:
                r.producer.scores.clear()
            clock.advance(timedelta(days=1))
            tomorrow = today + timedelta(days=1)
            for r in survivors:
                r.service.rescorer.sweep_soon()

            async def scored_tomorrow() -> bool:
                alive()
                return await unscored(sessions, tomorrow) == 0

            await wait_until(
                scored_tomorrow,
                timeout_s=180,
                what="the sweep of the next day",
            )
            swept = [
                {m.account_id for m in r.producer.scores if m.as_of == tomorrow} for r in survivors
            ]
            assert swept[0].isdisjoint(swept[1])
            assert swept[0] | swept[1] == accounts
            for r, mine in zip(survivors, swept, strict=True):
                assert r.service.ownership.select(sorted(mine)) == sorted(mine)
            counts = Counter((m.account_id, m.as_of) for r in survivors for m in r.producer.scores)
            assert set(counts.values()) == {1}
            on_topic = Counter(
                m.account_id
                for m in await read_scores_topic(own_broker.bootstrap)
                if m.as_of == tomorrow
            )
            assert on_topic == Counter(accounts)
        finally:
            for r in replicas:
                if r.task is not None and not r.task.done():
                    await r.close()

"""The re-scorer's pass cancelled (its service torn down) while a chunk-day is being written
and the next ones are read ahead and scored, on PostgreSQL: nothing of it is left half-way (no
score stored, no mark moved, nothing published), no connection stays checked out, and the
cyclic collector, paused for the pass, is back on."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence

import pytest
from sqlalchemy import func, select

from services.scorer.rescorer import Rescorer
from shared import topics
from shared.bus.base import Delivery, Message
from shared.bus.memory import InProcessBus, InProcessProducer
from shared.config import TendConfig
from shared.db.migrate import upgrade_async
from shared.db.models import Account, BusRecord
from shared.db.session import create_engine, create_sessionmaker
from tests.scorer.test_rescorer_overlap import TODAY, clock, scored_accounts, seed_today
from tests.support.postgres import create_database, drop_database
from tests.support.producers import DelegatingProducer

pytestmark = pytest.mark.integration


class HangingPublish(DelegatingProducer):
    """The in-process producer whose publishes never return (a broker that does not answer)."""

    def __init__(self, inner: InProcessProducer) -> None:
        super().__init__(inner)
        self.publishing = asyncio.Event()

    async def publish(
        self, topic: str, messages: Sequence[Message], *, timeout_s: float | None = None
    ) -> list[Delivery]:
        self.publishing.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class TestCancelledPass:
    async def test_nothing_half_written_no_connection_kept_collector_back(self) -> None:
        url = await create_database("tend_rescore_cancel")
        try:
            await upgrade_async(url)
            engine = create_engine(url)
            try:
                sessions = create_sessionmaker(engine)
                accounts = [f"acct-{n}" for n in range(6)]
                await seed_today(sessions, accounts)
                producer = HangingPublish(InProcessBus(sessions, partitions=1).producer())
                await producer.start()
                r = Rescorer(sessions, producer, TendConfig(), clock(), chunk_size=1)
                assert r.overlaps()
                assert gc.isenabled()
                sweep = asyncio.ensure_future(r.sweep(TODAY))
                await asyncio.wait_for(producer.publishing.wait(), timeout=60)
                # Let the next chunk-days be read ahead and scored meanwhile.
                await asyncio.sleep(0.5)
                assert not sweep.done()
                assert r.read_ahead >= 1  # the chunk-day after the one being written
                sweep.cancel()
                (outcome,) = await asyncio.gather(sweep, return_exceptions=True)
                assert isinstance(outcome, asyncio.CancelledError)
                assert gc.isenabled()
                assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
                assert await scored_accounts(sessions) == set()
                async with sessions() as session:
                    dirty = await session.scalar(select(func.count()).where(Account.dirty))
                    sent = await session.scalar(
                        select(func.count()).where(BusRecord.topic == topics.SCORES)
                    )
                assert dirty == len(accounts)
                assert sent == 0
            finally:
                await engine.dispose()
        finally:
            await drop_database(url)

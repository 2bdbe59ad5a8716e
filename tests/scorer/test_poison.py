"""The scorer never stalls on a record written straight onto ``tend.events.v1`` by another
producer (not through ingest): NULs PostgreSQL refuses, bytes that are not JSON, nesting too
deep to decode. Each such record reaches the DLQ with its error; every other event is counted.

On tansu + PostgreSQL the records are published with a plain aiokafka producer; on the
in-process bus + SQLite with the bus's own producer (there is no other way onto that log).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from sqlalchemy import select

from services.scorer.consumer import ScorerService
from shared import topics
from shared.bus.base import Message, Record
from shared.clock import FixedClock
from shared.db.migrate import upgrade_async
from shared.db.models import AccountDay
from shared.events import CanonicalEvent
from tests.scorer.synthetic import (
    CONFIG,
    Stack,
    in_process_stack,
    kafka_stack,
    stored_offsets,
    wait_until,
)
from tests.support.broker import TansuBroker
from tests.support.postgres import create_database, drop_database

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@dataclass
class Target:
    stack: Stack
    bootstrap: str | None
    on_postgres: bool


@pytest_asyncio.fixture(params=["tansu+postgresql", "in-process+sqlite"])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    if request.param == "in-process+sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'poison.db'}"
        await upgrade_async(url)
        async with in_process_stack(url) as stack:
            yield Target(stack, None, on_postgres=False)
        return
    broker: TansuBroker = request.getfixturevalue("own_broker")
    url = await create_database("tend_poison")
    try:
        await upgrade_async(url)
        async with kafka_stack(broker.bootstrap, url) as stack:
            yield Target(stack, broker.bootstrap, on_postgres=True)
    finally:
        await drop_database(url)


def event(uid: str, n: int, **changes: object) -> dict[str, object]:
    base = CanonicalEvent(
        event_id=f"{uid}-m{n}",
        type="track",
        account_id=f"{uid}-acme",
        user_id=f"{uid}-u1",
        name="Report Exported",
        feature="reports",
        occurred_at=NOW - timedelta(hours=1),
        received_at=NOW,
    )
    raw: dict[str, object] = json.loads(base.model_dump_json())
    raw.update(changes)
    return raw


def nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


async def publish_raw(target: Target, records: list[tuple[bytes, bytes]]) -> None:
    if target.bootstrap is None:
        await target.stack.producer.publish(
            topics.EVENTS, [Message(value=v, key=k) for k, v in records]
        )
        return
    producer = AIOKafkaProducer(bootstrap_servers=target.bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topics.EVENTS, value, key=key)
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def scorer(target: Target, group: str) -> AsyncIterator[asyncio.Task[None]]:
    service = ScorerService(
        target.stack.bus,
        target.stack.sessions,
        target.stack.producer,
        CONFIG,
        FixedClock(NOW),
        group_id=group,
        max_records=50,
        max_wait_s=0.1,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def read_dlq(target: Target, uid: str, n: int) -> list[Record]:
    consumer = target.stack.bus.consumer(f"dlq-{uid}", [topics.EVENTS_DLQ])
    await consumer.start()
    got: list[Record] = []
    try:
        async with asyncio.timeout(60):
            while len(got) < n:
                got.extend(await consumer.poll(max_records=100, timeout_s=0.5))
    finally:
        await consumer.stop()
    return got


class TestRecordsFromAnotherProducer:
    async def test_poison_is_dead_lettered_and_the_rest_is_counted(self, target: Target) -> None:
        uid = uuid.uuid4().hex[:8]
        good = [event(uid, n) for n in range(6)]
        nul = {
            "account id": event(uid, 100, account_id=f"{uid}-ac\x00me"),
            "userId": event(uid, 101, user_id=f"{uid}-u\x001"),
            "messageId": event(uid, 102, event_id=f"{uid}-m\x00102"),
        }
        undecodable = {
            "not JSON": b"\xff\xfe not json " + uid.encode(),
            "nested 300 deep": json.dumps(event(uid, 103, properties=nested(300))).encode(),
            "not an event": json.dumps({"uid": uid, "type": "track"}).encode(),
        }
        key = f"{uid}-acme".encode()
        records = [(key, json.dumps(good[0]).encode())]
        records += [(key, json.dumps(e).encode()) for e in nul.values()]
        records += [(key, json.dumps(e).encode()) for e in good[1:3]]
        records += [(key, v) for v in undecodable.values()]
        records += [(key, json.dumps(e).encode()) for e in good[3:]]
        await publish_raw(target, records)

        group = f"scorer-{uid}"
        async with scorer(target, group) as task:

            async def consumed() -> bool:
                if task.done():
                    raise AssertionError(f"the scorer stopped: {task.exception()!r}")
                return sum((await stored_offsets(target.stack.sessions, group)).values()) == len(
                    records
                )

            await wait_until(consumed, timeout_s=90, what="every record consumed")

        async with target.stack.sessions() as session:
            events = await session.scalar(
                select(AccountDay.events).where(AccountDay.account_id == f"{uid}-acme")
            )
        refused = len(nul) if target.on_postgres else 0  # SQLite stores NUL
        # The good six, plus the NUL ones SQLite stores (the messageId one lands on the same
        # account; the account-id one on another account).
        assert events == len(good) + (0 if target.on_postgres else 2)

        dlq = [
            r
            for r in await read_dlq(target, uid, refused + len(undecodable))
            if uid.encode() in r.value
        ]
        kinds = sorted((r.header("error_kind") or b"").decode() for r in dlq)
        assert kinds == sorted(["database"] * refused + ["decode"] * len(undecodable))
        for r in dlq:
            assert r.header("source_topic") == topics.EVENTS.encode()
            error = (r.header("error") or b"").decode()
            if r.header("error_kind") == b"database":
                assert "0x00" in error and "SQLSTATE 22021" in error, error
            else:
                assert error.startswith("ValidationError"), error

"""The ingest app served by uvicorn on a free loopback port, and a reader of the events topic
(the fixtures that use them are in tests/fixtures/ingest.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import uvicorn
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from services.ingest.app import create_app
from shared import topics
from shared.db.keys import create_key
from shared.db.session import create_engine, create_sessionmaker, transaction
from shared.events import CanonicalEvent
from shared.settings import IngestSettings, Settings
from tests.support.broker import free_port


class ServedApp:
    """An ASGI app under a real uvicorn server in a background thread (its own event loop)."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="ingest-uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the ingest server stopped during start-up; see its log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the ingest server did not start within {timeout_s}s")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve(settings: Settings) -> ServedApp:
    served = ServedApp(create_app(settings))
    served.start()
    return served


def ingest_settings(pg_url: str, bootstrap: str, **ingest: Any) -> Settings:
    return Settings(
        database_url=pg_url,
        kafka_bootstrap=bootstrap,
        ingest=IngestSettings(**{"produce_timeout_s": 5.0, **ingest}),
    )


async def new_write_key(pg_url: str, name: str = "test") -> tuple[int, str]:
    engine = create_engine(pg_url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            row, plaintext = await create_key(session, name)
            return row.id, plaintext
    finally:
        await engine.dispose()


async def events_consumer(bootstrap: str) -> AIOKafkaConsumer:
    """A started consumer of the whole events topic from its start, in no group."""
    consumer = AIOKafkaConsumer(
        topics.EVENTS,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    return consumer


async def read_events(
    bootstrap: str,
    event_ids: set[str],
    *,
    timeout_s: float = 30.0,
    seen: set[str] | None = None,
) -> dict[str, tuple[bytes | None, dict[str, bytes], CanonicalEvent]]:
    """event id -> (Kafka key, headers, event) for every one of ``event_ids`` on the events
    topic; returns what it found when ``timeout_s`` passes first. ``seen`` collects the id of
    every event read on the way."""
    consumer = await events_consumer(bootstrap)
    found: dict[str, tuple[bytes | None, dict[str, bytes], CanonicalEvent]] = {}
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not event_ids <= found.keys():
            if asyncio.get_running_loop().time() > deadline:
                break
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for r in records:
                    event = CanonicalEvent.from_bytes(r.value)
                    if seen is not None:
                        seen.add(event.event_id)
                    if event.event_id in event_ids:
                        found[event.event_id] = (r.key, dict(r.headers), event)
    finally:
        await consumer.stop()
    return found


async def read_account_events(
    bootstrap: str, account: str, count: int, *, timeout_s: float = 30.0
) -> list[CanonicalEvent]:
    """The events of ``account`` on the events topic, in topic order, once ``count`` of them
    were read (or what there is when ``timeout_s`` passes first)."""
    consumer = await events_consumer(bootstrap)
    found: list[CanonicalEvent] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(found) < count and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for r in records:
                    event = CanonicalEvent.from_bytes(r.value)
                    if event.account_id == account:
                        found.append(event)
    finally:
        await consumer.stop()
    return found

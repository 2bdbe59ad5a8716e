"""The tracking calls answer the same through the plain-ASGI dispatch (how the app serves
them) as through their FastAPI routes (what OpenAPI documents, and what an app served under
a root path uses)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import pytest_asyncio

from services.ingest.app import create_app
from services.ingest.dispatch import TrackingDispatch
from services.ingest.routes import CALL_TYPES
from shared import topics
from shared.bus.memory import InProcessBus, InProcessConsumer
from shared.db.session import create_engine, create_sessionmaker
from shared.events import CanonicalEvent
from shared.settings import Settings
from tests.ingest.test_api import basic

pytestmark = pytest.mark.integration

TIME = "2026-05-01T11:59:58.123Z"


def call(kind: str, n: int, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "userId": f"u-{n}",
        "messageId": f"m-{kind}-{n}",
        "event": "Report Exported",
        "name": "Home",
        "groupId": "acme",
        "previousId": "anon-1",
        "timestamp": TIME,
        **fields,
    }


def bodies(path: str) -> list[str]:
    kind = CALL_TYPES[path]
    if kind is None:
        return [
            json.dumps({"batch": [call("track", 1), call("identify", 2), {"type": "merge"}]}),
            json.dumps({"batch": [call("track", 3), call("page", 4, userId=5)]}),
            json.dumps({"batch": "no"}),
            "{not json",
        ]
    return [json.dumps(call(kind, 1)), json.dumps(call(kind, 2, userId=None)), "[]"]


class Served:
    def __init__(self, client: httpx.AsyncClient, reader: InProcessConsumer) -> None:
        self.client = client
        self.reader = reader

    async def events(self) -> list[dict[str, Any]]:
        out = []
        while records := await self.reader.poll(max_records=500, timeout_s=0):
            for r in records:
                event = CanonicalEvent.from_bytes(r.value).model_dump(mode="json")
                event.pop("received_at")
                out.append(event)
        return out


@pytest_asyncio.fixture
async def both(
    pg_url: str, sqlite_url: str, write_key: str
) -> AsyncIterator[tuple[Served, Served]]:
    """The app as served, and the same app without the dispatch, on one bus."""
    engine = create_engine(sqlite_url)
    bus = InProcessBus(create_sessionmaker(engine), partitions=1)
    dispatched = create_app(Settings(database_url=pg_url), bus=bus)
    routed = create_app(Settings(database_url=pg_url), bus=bus)
    routed.user_middleware = [m for m in routed.user_middleware if m.cls is not TrackingDispatch]
    assert len(routed.user_middleware) == len(dispatched.user_middleware) - 1

    served = []
    async with AsyncExitStack() as stack:
        for n, app in enumerate((dispatched, routed)):
            await stack.enter_async_context(app.router.lifespan_context(app))
            reader = bus.consumer(f"dispatch-test-{n}", [topics.EVENTS])
            await reader.start()
            stack.push_async_callback(reader.stop)
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://ingest",
                headers=basic(write_key),
            )
            stack.push_async_callback(client.aclose)
            served.append(Served(client, reader))
        yield served[0], served[1]
    await bus.close()
    await engine.dispose()


class TestDispatch:
    @pytest.mark.parametrize("path", sorted(CALL_TYPES))
    async def test_same_answers_and_events_as_the_routes(
        self, both: tuple[Served, Served], path: str
    ) -> None:
        dispatched, routed = both
        published = 0
        for body in bodies(path):
            a = await dispatched.client.post(path, content=body.encode())
            b = await routed.client.post(path, content=body.encode())
            assert (a.status_code, a.json()) == (b.status_code, b.json()), body
            events = await dispatched.events()
            assert events == await routed.events()
            published += len(events)
        assert published

    async def test_the_routes_stay_documented(self, both: tuple[Served, Served]) -> None:
        dispatched, _ = both
        documented = (await dispatched.client.get("/openapi.json")).json()["paths"]
        assert {p for p in CALL_TYPES if len(p) > len("/v1/b")} <= set(documented)

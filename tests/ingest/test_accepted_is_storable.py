"""Property: whatever the ingest API accepts, the scorer decodes and stores (issue 9, "No poison").

Hypothesis builds batches of nasty calls (NUL and other control characters, lone surrogates,
astral characters, deep nesting, huge and odd numbers, odd timestamps) and sends them to the
real ingest app (in process, over ASGI, write keys on PostgreSQL). Every event it answers 200
for without listing it in ``rejected`` is read back from the bus, decoded by the scorer's
handler and flushed by the scorer's writer in a real transaction on PostgreSQL and on SQLite.
The transaction is rolled back afterwards to keep the session's database clean: PostgreSQL
checks encoding, NUL and JSON validity when each statement runs, not at commit.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.app import create_app
from services.scorer.consumer import EventsHandler
from shared import topics
from shared.bus.memory import InProcessBus, InProcessConsumer
from shared.db.session import create_engine, create_sessionmaker
from shared.events import CanonicalEvent
from shared.settings import Settings
from tests.ingest.test_api import basic

pytestmark = pytest.mark.integration

NASTY_CHARS = [
    "\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x1f", "\x7f", "\x85", "\u2028", "\ufeff",
    "\ud800", "\udbff", "\udc00", "\udfff", "\U0001f600", "\U0010ffff", "é", '"', "\\", "/",
]  # fmt: skip
chars = st.one_of(st.sampled_from(NASTY_CHARS), st.characters(codec="utf-8"))
# Mostly plain text, so that most events get as far as the database; nasty in a third.
text = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), max_size=8),
    st.text(chars, max_size=8),
    st.sampled_from(["", " ", "acme", "u-1"]),
)
ids = st.one_of(text, st.integers(-(2**70), 2**70), st.floats(allow_nan=False))

numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**300]),
    st.floats(allow_nan=False),  # infinities travel as the literal 1e400, see body_bytes
    st.sampled_from([-0.0, 5e-324, 1.7976931348623157e308, 1e-300]),
)
leaves = st.one_of(st.none(), st.booleans(), numbers, text)
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(text, children, max_size=3)
    ),
    max_leaves=12,
)


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


# Around the limit (32) mostly; up to past the decoder's (199) and serializer's (255) limits.
deep = st.builds(nested, st.one_of(st.integers(28, 34), st.integers(1, 260)), leaves)
objects = st.one_of(st.dictionaries(text, trees, max_size=4), deep)

OFFSETS = [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12, minutes=-59))]


def iso(moment: datetime, tz: timezone) -> str:
    return moment.replace(tzinfo=tz).isoformat()


times = st.one_of(
    st.none(),
    st.builds(
        iso,
        st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2110, 12, 31)),
        st.sampled_from(OFFSETS),
    ),
    st.builds(
        iso,
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
        st.sampled_from(OFFSETS),
    ),
    st.sampled_from(["", "now", "2026-02-30T00:00:00Z", "1970-01-01", "2100-12-31T23:59:59Z"]),
)
ACCOUNT_TRAITS = ["name", "plan", "seats", "mrr", "renewal_date", "created_at", "csm_email"]
account_traits = st.dictionaries(
    st.sampled_from(ACCOUNT_TRAITS), st.one_of(leaves, times, st.sampled_from(["a@b", "4,500"]))
)


@st.composite
def calls(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["track", "identify", "group", "page", "screen", "alias"]))
    call: dict[str, Any] = {"type": kind, "userId": draw(ids)}
    optional = {
        "anonymousId": ids,
        "messageId": st.one_of(text, st.integers(-(2**70), 2**70)),
        "timestamp": times,
        "sentAt": times,
        "context": st.fixed_dictionaries({"groupId": ids}),
        "properties": objects,
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            call[key] = draw(strategy)
    if kind == "track":
        call["event"] = draw(st.one_of(text, st.sampled_from(["Signed In", "Report Exported"])))
    elif kind in ("page", "screen"):
        call["name"] = draw(text)
    elif kind == "alias":
        call["previousId"] = draw(ids)
    elif kind == "group":
        call["groupId"] = draw(ids)
        call["traits"] = {**draw(objects), **draw(account_traits)}
    else:
        call["traits"] = draw(objects)
    if kind != "group" and draw(st.integers(0, 3)):
        # Most calls name an account, so that they get as far as the database.
        call["groupId"] = draw(ids)
    return call


def body_bytes(
    batch: list[dict[str, Any]], sent_at: str | None, context: dict[str, Any] | None = None
) -> bytes:
    body: dict[str, Any] = {"batch": batch}
    if sent_at is not None:
        body["sentAt"] = sent_at
    if context is not None:
        body["context"] = context
    # ensure_ascii: lone surrogates become \udxxx escapes, as a JavaScript client sends them.
    # JSON has no infinity; 1e400 is the literal a client would send that becomes one.
    return json.dumps(body, ensure_ascii=True).replace("Infinity", "1e400").encode()


class Pipeline:
    """The ingest app on an in-process bus, and a reader of that bus."""

    def __init__(self, client: httpx.AsyncClient, reader: InProcessConsumer) -> None:
        self.client = client
        self.reader = reader

    async def drain(self) -> list[CanonicalEvent]:
        handler = EventsHandler(None)
        events: list[CanonicalEvent] = []
        while records := await self.reader.poll(max_records=500, timeout_s=0):
            events.extend(handler.decode(r) for r in records)
        return events


@pytest_asyncio.fixture
async def pipeline(
    pg_url: str, sqlite_url: str, write_key: str
) -> AsyncIterator[tuple[Pipeline, list[async_sessionmaker[AsyncSession]]]]:
    sqlite_engine = create_engine(sqlite_url)
    sqlite_sessions = create_sessionmaker(sqlite_engine)
    pg_engine = create_engine(pg_url)
    bus = InProcessBus(sqlite_sessions, partitions=2)
    app = create_app(Settings(database_url=pg_url), bus=bus)
    reader = bus.consumer("property-test", [topics.EVENTS])
    async with app.router.lifespan_context(app):
        await reader.start()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://ingest", headers=basic(write_key)
        ) as client:
            yield Pipeline(client, reader), [create_sessionmaker(pg_engine), sqlite_sessions]
        await reader.stop()
    await bus.close()
    await pg_engine.dispose()
    await sqlite_engine.dispose()


class TestAcceptedIsStorable:
    @settings(
        max_examples=200,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        batch=st.lists(calls(), min_size=1, max_size=4),
        sent_at=times,
        context=st.one_of(st.none(), st.fixed_dictionaries({"groupId": ids})),
    )
    async def test_every_accepted_event_decodes_and_stores(
        self,
        pipeline: tuple[Pipeline, list[async_sessionmaker[AsyncSession]]],
        batch: list[dict[str, Any]],
        sent_at: str | None,
        context: dict[str, Any] | None,
    ) -> None:
        ingest, databases = pipeline
        r = await ingest.client.post(
            "/v1/batch",
            content=body_bytes(batch, sent_at, context),
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code < 500, r.text
        events = await ingest.drain()
        if r.status_code != 200:
            assert not events
            return
        answer = r.json()
        rejected = {e["index"] for e in answer["rejected"]}
        assert answer["accepted"] == len(batch) - len(rejected) == len(events)
        event("some accepted" if events else "none accepted")
        event("some rejected" if rejected else "none rejected")

        handler = EventsHandler(None)
        for sessions in databases:
            async with sessions() as session:
                transaction = await session.begin()
                try:
                    await handler.flush(session, events)
                finally:
                    await transaction.rollback()

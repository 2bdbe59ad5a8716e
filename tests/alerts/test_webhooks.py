"""Outbound webhooks end to end on real PostgreSQL: alert transitions decided by the alerts
consumer, band changes it sees and manual moves from the alerts API go through the outbox to a
loopback receiver that checks every signature with the snippet of docs/webhooks.md; a receiver
that fails first gets the same delivery again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.consumer import AlertsHandler, AlertsService
from services.alerts.webhooks import WebhookDispatcher
from services.web.app import create_app
from shared import topics
from shared.bus.base import Message
from shared.bus.memory import InProcessBus
from shared.clock import FixedClock, SystemClock
from shared.config import TendConfig
from shared.db.models import Account, WebhookDelivery
from shared.scores import ScoreMessage
from shared.settings import Settings
from shared.webhooks.endpoints import WebhooksConfig
from tests.alerts.snapshots import (
    alerts_of,
    create_defaults,
    create_snapshot,
    only_rules,
    unique_account,
)
from tests.alerts.test_consumer import wait_for
from tests.support.servers import RecordedRequest, Reply, WebhookReceiver
from tests.support.webhooks import checker

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
DORMANT = only_rules("dormant")
SECRET = "crm-signing-secret-0123456789"
TOKEN = "webhooks-test-token-0123456789abcdef"

Sessions = async_sessionmaker[AsyncSession]


def hooks_for(receiver: WebhookReceiver, *endpoints: dict[str, Any]) -> WebhooksConfig:
    listed = endpoints or ({"name": "crm"},)
    return WebhooksConfig.model_validate(
        {
            "endpoints": [
                {
                    "url": receiver.url(f"/hooks/{e['name']}"),
                    "secret": SECRET,
                    "allow_http": True,
                    **e,
                }
                for e in listed
            ],
            "initial_backoff_s": 0.1,
            "max_backoff_s": 0.2,
            "max_attempts": 3,
        }
    )


def events(receiver: WebhookReceiver, path: str | None = None) -> list[dict[str, Any]]:
    return [r.json() for r in receiver.requests if path is None or r.path == path]


def header(request: RecordedRequest, name: str) -> str:
    return request.headers[name]


def counter(endpoint: str, result: str) -> float:
    value = REGISTRY.get_sample_value(
        "tend_webhooks_deliveries_total", {"endpoint": endpoint, "result": result}
    )
    return value or 0.0


async def deliveries(sessions: Sessions, account_id: str) -> list[WebhookDelivery]:
    async with sessions() as session:
        rows = await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.account_id == account_id)
            .order_by(WebhookDelivery.id)
        )
        return list(rows)


def create_handler(hooks: WebhooksConfig) -> AlertsHandler:
    """The alerts consumer's batch step, judging the dormant rule, writing webhooks."""
    return AlertsHandler(
        DORMANT,
        FixedClock(T0),
        defaults=create_defaults(email_enabled=False),
        console_url="http://console.example",
        webhooks=hooks,
    )


@asynccontextmanager
async def web_api(
    sessions: Sessions, hooks: WebhooksConfig, at: datetime
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the web app (alerts and outcomes APIs) configured with ``hooks``."""
    app = create_app(
        Settings(api_token=SecretStr(TOKEN)),
        config=TendConfig(webhooks=hooks),
        sessions=sessions,
        clock=FixedClock(at),
    )
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://web", headers=headers) as c:
        yield c


async def flush(sessions: Sessions, handler: AlertsHandler, items: Sequence[ScoreMessage]) -> None:
    async with sessions() as session, session.begin():
        await handler.flush(session, items)
    await handler.after_commit(items)


class TestThroughTheService:
    async def test_an_opened_alert_reaches_the_receiver_signed_and_retried(
        self, database: tuple[str, Sessions], webhook_receiver: WebhookReceiver
    ) -> None:
        _, webhook_db = database  # of its own: the service reads the whole topic
        receiver = webhook_receiver
        receiver.check = checker(SECRET)
        receiver.script(Reply(500, "busy"))  # the first attempt fails
        hooks = hooks_for(receiver)
        account = unique_account()
        retried, sent = counter("crm", "retry"), counter("crm", "sent")

        bus = InProcessBus(webhook_db, 2)
        producer = bus.producer()
        await producer.start()
        await producer.publish(
            topics.SCORES,
            [
                Message(create_snapshot(account, day).to_bytes(), key=account.encode())
                for day in (0, 1)  # dormant on two days: the alert opens on the second
            ],
        )
        service = AlertsService(
            bus,
            webhook_db,
            producer,
            DORMANT,
            FixedClock(T0),
            defaults=create_defaults(email_enabled=False),
            console_url="http://console.example",
            dispatcher=None,
            webhooks=WebhookDispatcher(webhook_db, hooks, SystemClock(), idle_s=0.05),
            max_wait_s=0.05,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))

        async def delivered() -> bool:
            return [d.status for d in await deliveries(webhook_db, account)] == ["sent"]

        try:
            await wait_for(delivered)
        finally:
            stop.set()
            await task
            await producer.stop()
            await bus.close()

        assert receiver.refused == []  # every request carried a valid signature
        first, second = receiver.requests
        assert first.body == second.body
        assert header(first, "Tend-Delivery") == header(second, "Tend-Delivery")
        assert header(first, "Tend-Event") == "alert.opened"
        assert header(first, "Content-Type") == "application/json"
        event = first.json()
        assert (event["version"], event["type"]) == (1, "alert.opened")
        assert event["account"]["id"] == account
        [alert] = await alerts_of(webhook_db, account)
        assert event["alert"]["id"] == alert.id
        assert (event["alert"]["rule"], event["alert"]["status"]) == ("dormant", "open")
        assert event["alert"]["opened_on"] == "2026-11-03"
        [row] = await deliveries(webhook_db, account)
        assert (row.attempts, row.last_error, row.event_id) == (2, None, event["id"])
        assert header(first, "Tend-Delivery") == row.delivery_id
        assert counter("crm", "retry") == retried + 1
        assert counter("crm", "sent") == sent + 1


class TestEventsAndMoves:
    async def test_band_change_move_and_filters(
        self, pg_sessions: Sessions, webhook_receiver: WebhookReceiver
    ) -> None:
        receiver = webhook_receiver
        receiver.check = checker(SECRET)
        hooks = hooks_for(
            receiver, {"name": "crm"}, {"name": "bands", "events": ["score.band_changed"]}
        )
        account = unique_account()
        handler = create_handler(hooks)
        await flush(pg_sessions, handler, [create_snapshot(account, 0)])  # yellow, pending
        assert await deliveries(pg_sessions, account) == []  # a first score is no change
        red = create_snapshot(account, 1, band="red", score=30.0)
        await flush(pg_sessions, handler, [red])  # opens, and turns red

        [alert] = await alerts_of(pg_sessions, account)
        async with web_api(pg_sessions, hooks, T0) as client:
            r = await client.post(f"/v1/alerts/{alert.id}/ack")
            assert r.status_code == 200, r.text

        dispatcher = WebhookDispatcher(pg_sessions, hooks, SystemClock())
        try:
            while await dispatcher.run_once():
                pass
        finally:
            await dispatcher.client.aclose()

        assert receiver.refused == []
        crm = events(receiver, "/hooks/crm")
        bands = events(receiver, "/hooks/bands")
        assert sorted(e["type"] for e in crm) == [
            "alert.acknowledged",
            "alert.opened",
            "score.band_changed",
        ]
        assert [e["type"] for e in bands] == ["score.band_changed"]
        [band] = bands
        assert band["score"] == {
            "as_of": "2026-11-03", "score": 30.0, "band": "red",
            "previous_as_of": "2026-11-02", "previous_score": 57.2, "previous_band": "yellow",
        }  # fmt: skip
        # One event, one id, for every endpoint; one delivery id per endpoint.
        assert band["id"] == next(e["id"] for e in crm if e["type"] == "score.band_changed")
        assert len({header(r, "Tend-Delivery") for r in receiver.requests}) == 4
        acked = next(e for e in crm if e["type"] == "alert.acknowledged")
        assert acked["alert"]["status"] == "acknowledged"
        assert acked["alert"]["acknowledged_at"] == "2026-11-02T12:00:00Z"
        assert {d.status for d in await deliveries(pg_sessions, account)} == {"sent"}

    async def test_a_refused_signature_is_retried_then_failed(
        self, pg_sessions: Sessions, webhook_receiver: WebhookReceiver
    ) -> None:
        receiver = webhook_receiver
        receiver.check = checker("the-receiver-expects-another-secret")
        hooks = hooks_for(receiver, {"name": "strict"})
        account = unique_account()
        handler = create_handler(hooks)
        await flush(pg_sessions, handler, [create_snapshot(account, d) for d in (0, 1)])
        dispatcher = WebhookDispatcher(pg_sessions, hooks, SystemClock())

        async def done() -> bool:
            await dispatcher.run_once()
            return [d.status for d in await deliveries(pg_sessions, account)] == ["failed"]

        try:
            await wait_for(done)
        finally:
            await dispatcher.client.aclose()
        assert len(receiver.refused) == len(receiver.requests) == hooks.max_attempts
        [row] = await deliveries(pg_sessions, account)
        assert row.last_error == "gave up after 3 attempts: HTTP 401"

    async def test_an_endpoint_taken_out_of_the_config_fails_at_once(
        self, pg_sessions: Sessions, webhook_receiver: WebhookReceiver
    ) -> None:
        hooks = hooks_for(webhook_receiver, {"name": "old"})
        account = unique_account()
        handler = create_handler(hooks)
        await flush(pg_sessions, handler, [create_snapshot(account, d) for d in (0, 1)])
        dispatcher = WebhookDispatcher(pg_sessions, hooks_for(webhook_receiver), SystemClock())
        try:
            await dispatcher.run_once()
        finally:
            await dispatcher.client.aclose()
        [row] = await deliveries(pg_sessions, account)
        assert (row.status, row.attempts) == ("failed", 1)
        assert row.last_error == "endpoint 'old' is not configured"
        assert webhook_receiver.requests == []
        assert json.loads(json.dumps(row.payload))["type"] == "alert.opened"

    async def test_a_recorded_cancellation_resolves_with_an_event(
        self, pg_sessions: Sessions, webhook_receiver: WebhookReceiver
    ) -> None:
        hooks = hooks_for(webhook_receiver, {"name": "crm", "events": ["alert.resolved"]})
        account = unique_account()
        async with pg_sessions() as session, session.begin():
            session.add(Account(account_id=account, created_at=T0 - timedelta(days=400)))
        handler = create_handler(hooks)
        await flush(pg_sessions, handler, [create_snapshot(account, d) for d in (0, 1)])
        assert await deliveries(pg_sessions, account) == []  # opened: not wanted

        async with web_api(pg_sessions, hooks, T0 + timedelta(days=1)) as client:
            r = await client.post(
                f"/v1/accounts/{account}/outcomes",
                json={"kind": "cancellation", "effective_on": "2026-11-03", "reason": "budget"},
            )
            assert r.status_code == 201, r.text
        [row] = await deliveries(pg_sessions, account)
        assert row.event_type == "alert.resolved"
        assert row.payload["alert"]["status"] == "resolved"
        assert row.payload["alert"]["resolved_by"] == "account cancelled"

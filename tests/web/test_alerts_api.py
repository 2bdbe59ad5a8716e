"""The alerts API on real PostgreSQL: list, read, ack, snooze, resolve; 401, 404, 409, 422."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.consumer import AlertsHandler
from services.alerts.routing import Defaults
from services.web.app import create_app
from shared.clock import FixedClock
from shared.settings import Settings
from tests.alerts.snapshots import (
    alerts_of,
    create_defaults,
    create_snapshot,
    only_rules,
    unique_account,
)

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
TOKEN = "alerts-api-test-token-0123456789ab"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest_asyncio.fixture
async def alerts_client(
    pg_sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        Settings(api_token=SecretStr(TOKEN), config=None),
        sessions=pg_sessions,
        clock=FixedClock(T0 + timedelta(days=2)),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=AUTH) as c:
        yield c


def handler_for(*rules: str, defaults: Defaults | None = None) -> AlertsHandler:
    """The alerts consumer's batch step with only ``rules`` on, at T0."""
    return AlertsHandler(
        only_rules(*rules),
        FixedClock(T0),
        defaults=defaults if defaults is not None else create_defaults(),
        console_url="http://console.example",
    )


async def open_alert(
    sessions: async_sessionmaker[AsyncSession], csm_email: str = "dana@vendor.example"
) -> tuple[str, int]:
    """A dormant account evaluated on two days: one open alert."""
    account = unique_account()
    handler = handler_for("dormant")
    async with sessions() as session, session.begin():
        await handler.flush(
            session, [create_snapshot(account, d, csm_email=csm_email) for d in (0, 1)]
        )
    [alert] = await alerts_of(sessions, account)
    assert alert.status == "open"
    return account, alert.id


class TestAuth:
    async def test_no_token_is_401(self, alerts_client: httpx.AsyncClient) -> None:
        r = await alerts_client.get("/v1/alerts", headers={"Authorization": ""})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["code"] == "unauthorized"


class TestRead:
    async def test_list_filters(
        self, alerts_client: httpx.AsyncClient, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        csm = f"{unique_account('csm')}@vendor.example"
        account, alert_id = await open_alert(pg_sessions, csm_email=csm)
        r = await alerts_client.get("/v1/alerts", params={"account": account})
        assert r.status_code == 200
        body = r.json()
        assert body["total"] == 1
        [alert] = body["alerts"]
        assert alert["id"] == alert_id
        assert (alert["rule"], alert["status"], alert["severity"]) == (
            "dormant",
            "open",
            "critical",
        )
        assert "no login for 20 days" in alert["reason"]
        # when the problem began and fired, in event time (the snapshots' days)
        assert (alert["started_on"], alert["opened_on"], alert["resolved_on"]) == (
            "2026-11-02",
            "2026-11-03",
            None,
        )
        by_csm = await alerts_client.get("/v1/alerts", params={"csm": csm, "rule": "dormant"})
        assert [a["id"] for a in by_csm.json()["alerts"]] == [alert_id]
        resolved = await alerts_client.get(
            "/v1/alerts", params={"account": account, "status": "resolved"}
        )
        assert resolved.json() == {"total": 0, "alerts": []}

    async def test_bad_filters_are_422_naming_the_parameter(
        self, alerts_client: httpx.AsyncClient
    ) -> None:
        r = await alerts_client.get("/v1/alerts", params={"status": "closed"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "status"
        r = await alerts_client.get("/v1/alerts", params={"rule": "bogus"})
        assert r.status_code == 422 and r.json()["error"]["message"].startswith("rule:")

    async def test_one_alert_with_its_deliveries(
        self, alerts_client: httpx.AsyncClient, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        account, alert_id = await open_alert(pg_sessions)
        r = await alerts_client.get(f"/v1/alerts/{alert_id}")
        assert r.status_code == 200
        body = r.json()
        assert body["account_id"] == account
        assert sorted(d["channel"] for d in body["deliveries"]) == ["email", "slack"]
        assert {d["status"] for d in body["deliveries"]} == {"pending"}

    async def test_every_alert_of_a_grouped_message_shows_it(
        self, alerts_client: httpx.AsyncClient, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        # Two rules fire together: one message per destination, led by one of the alerts;
        # the other alert's detail shows the same deliveries (not an empty list).
        account = unique_account()
        handler = handler_for("dormant", "low_seat_utilization")
        async with pg_sessions() as session, session.begin():
            await handler.flush(
                session, [create_snapshot(account, d, seats=400) for d in (0, 1, 2, 3)]
            )
        alerts = [a for a in await alerts_of(pg_sessions, account) if a.status == "open"]
        assert len(alerts) == 2
        shown = []
        for alert in alerts:
            body = (await alerts_client.get(f"/v1/alerts/{alert.id}")).json()
            assert body["notifications"] >= 1
            shown.append(sorted((d["id"], d["channel"]) for d in body["deliveries"]))
        assert shown[0] == shown[1] != []
        assert sorted(channel for _, channel in shown[0]) == ["email", "slack"]

    async def test_a_notification_with_nowhere_to_go_says_why(
        self, alerts_client: httpx.AsyncClient, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account()
        handler = handler_for("dormant", defaults=Defaults(email_enabled=False))
        async with pg_sessions() as session, session.begin():
            await handler.flush(session, [create_snapshot(account, d) for d in (0, 1)])
        [alert] = await alerts_of(pg_sessions, account)
        body = (await alerts_client.get(f"/v1/alerts/{alert.id}")).json()
        assert body["notifications"] == 1
        [delivery] = body["deliveries"]
        assert (delivery["channel"], delivery["status"]) == ("none", "unrouted")
        assert "TEND_SMTP_HOST is not set" in delivery["last_error"]

    async def test_unknown_ids_are_404_json(self, alerts_client: httpx.AsyncClient) -> None:
        for path in ("/v1/alerts/999999999999", "/v1/alerts/abc", "/v1/alerts/999999999/ack"):
            r = await alerts_client.request("POST" if path.endswith("ack") else "GET", path)
            assert r.status_code == 404, path
            assert r.json()["error"]["code"] == "not_found"
            assert "not found" in r.json()["error"]["message"]


class TestMoves:
    async def test_ack_then_ack_again_then_resolve_then_409(
        self, alerts_client: httpx.AsyncClient, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        _, alert_id = await open_alert(pg_sessions)
        r = await alerts_client.post(f"/v1/alerts/{alert_id}/ack")
        assert r.status_code == 200
        assert r.json()["status"] == "acknowledged"
        assert r.json()["acknowledged_at"].startswith("2026-11-04T12:00")
        assert (await alerts_client.post(f"/v1/alerts/{alert_id}/ack")).status_code == 200
        r = await alerts_client.post(f"/v1/alerts/{alert_id}/resolve")
        assert r.status_code == 200
        assert (r.json()["status"], r.json()["resolved_by"]) == ("resolved", "manual")
        for move in ("ack", "resolve"):
            r = await alerts_client.post(f"/v1/alerts/{alert_id}/{move}")
            assert r.status_code == 409
            error = r.json()["error"]
            assert error["code"] == "conflict" and "resolved" in error["message"]
        r = await alerts_client.post(
            f"/v1/alerts/{alert_id}/snooze", json={"until": "2026-12-01T00:00:00+00:00"}
        )
        assert r.status_code == 409

    async def test_snooze_with_reason(
        self, alerts_client: httpx.AsyncClient, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        account, alert_id = await open_alert(pg_sessions)
        r = await alerts_client.post(
            f"/v1/alerts/{alert_id}/snooze",
            json={"until": "2026-11-20T09:00:00+01:00", "reason": "renewal call booked"},
        )
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "snoozed"
        assert body["snooze_reason"] == "renewal call booked"
        [row] = await alerts_of(pg_sessions, account)
        assert row.snoozed_until == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)

    async def test_bad_snooze_bodies_are_422_naming_the_field(
        self, alerts_client: httpx.AsyncClient, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        _, alert_id = await open_alert(pg_sessions)
        bodies: list[tuple[Any, str]] = [
            ({}, "until"),
            ({"until": "tomorrow"}, "until"),
            ({"until": "2026-12-01T00:00:00"}, "until"),  # no offset
            ({"until": "2026-12-01T00:00:00Z", "why": "x"}, "why"),
        ]
        for body, field in bodies:
            r = await alerts_client.post(f"/v1/alerts/{alert_id}/snooze", json=body)
            assert r.status_code == 422, body
            assert r.json()["error"]["field"] == field, (body, r.text)
        r = await alerts_client.post(
            f"/v1/alerts/{alert_id}/snooze", json={"until": "2026-11-01T00:00:00Z"}
        )
        assert r.status_code == 422
        assert r.json() == {
            "error": {
                "code": "invalid",
                "message": "until: must be in the future",
                "field": "until",
            }
        }
        assert (await alerts_client.get(f"/v1/alerts/{alert_id}")).json()["status"] == "open"


class TestPending:
    async def test_a_pending_condition_is_listed_on_request_and_cannot_be_acked(
        self, alerts_client: httpx.AsyncClient, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        account = unique_account()
        handler = handler_for("dormant")
        async with pg_sessions() as session, session.begin():
            await handler.flush(session, [create_snapshot(account, 0)])
        for status, expected in (("active", 0), ("all", 0), ("pending", 1)):
            r = await alerts_client.get("/v1/alerts", params={"account": account, "status": status})
            assert r.json()["total"] == expected, status
        [pending] = (
            await alerts_client.get("/v1/alerts", params={"account": account, "status": "pending"})
        ).json()["alerts"]
        assert (await alerts_client.get(f"/v1/alerts/{pending['id']}")).json()[
            "status"
        ] == "pending"
        r = await alerts_client.post(f"/v1/alerts/{pending['id']}/ack")
        assert r.status_code == 409


class TestIncidentMoves:
    """Every open alert of an account at once (the console's incident card)."""

    async def incident(self, sessions: async_sessionmaker[AsyncSession]) -> str:
        account = unique_account()
        handler = handler_for("dormant", "health_red")
        async with sessions() as session, session.begin():
            await handler.flush(
                session, [create_snapshot(account, d, band="red", score=30.0) for d in (0, 1)]
            )
        assert [a.status for a in await alerts_of(sessions, account)] == ["open", "open"]
        return account

    async def test_ack_snooze_resolve_the_group(
        self, alerts_client: httpx.AsyncClient, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        account = await self.incident(pg_sessions)
        base = f"/v1/alerts/accounts/{account}"
        r = await alerts_client.post(f"{base}/ack")
        assert r.status_code == 200
        assert [(a["rule"], a["status"]) for a in r.json()["alerts"]] == [
            ("dormant", "acknowledged"),
            ("health_red", "acknowledged"),
        ]
        r = await alerts_client.post(f"{base}/snooze", json={"until": "2026-11-01T00:00:00Z"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "until"
        r = await alerts_client.post(
            f"{base}/snooze", json={"until": "2026-12-01T00:00:00Z", "reason": "QBR"}
        )
        assert {a["status"] for a in r.json()["alerts"]} == {"snoozed"}
        r = await alerts_client.post(f"{base}/resolve")
        assert {(a["status"], a["resolved_by"]) for a in r.json()["alerts"]} == {
            ("resolved", "manual")
        }
        assert [a.status for a in await alerts_of(pg_sessions, account)] == [
            "resolved",
            "resolved",
        ]
        r = await alerts_client.post(f"{base}/ack")
        assert r.status_code == 404 and "no open alerts" in r.json()["error"]["message"]

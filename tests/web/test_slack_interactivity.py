"""POST /v1/slack/interactivity on real PostgreSQL: requests signed the way Slack signs them
acknowledge or snooze the account's alerts through the shared life cycle, record the Slack
member who clicked, and replace the message through its response_url (a real loopback server
standing in for Slack); forged, stale and unsigned requests are 401 and change nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.notifiers.slack import build_payload
from services.web.app import create_app
from shared.clock import FixedClock
from shared.config import TendConfig
from shared.db.models import Alert, AlertAction, AuditEntry, WebhookDelivery
from shared.settings import Settings
from shared.slack import ACK_ACTION, sign
from shared.webhooks.endpoints import WebhooksConfig
from tests.alerts.snapshots import alerts_of
from tests.support.servers import RecordedRequest, SlackWebhookServer, create_notification
from tests.web.test_alerts_api import AUTH, T0, TOKEN, open_alert

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = T0 + timedelta(days=2)
RESPONSE_PATH = "/actions/T0TEAM/1234/response"
# A configured webhook endpoint: a click writes the same outbox events as an API move (nothing
# is sent here; the alerts service's dispatcher would).
HOOKS = WebhooksConfig.model_validate(
    {"endpoints": [{"name": "crm", "url": "https://crm.example/hooks", "secret": SECRET}]}
)


@dataclass
class Bench:
    """The web app with a signing secret, its database and the loopback response_url server."""

    client: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    slack: SlackWebhookServer

    async def click(self, alert_id: int | str, action_id: str, **kw: Any) -> httpx.Response:
        request = signed(click_payload(alert_id, action_id, self.slack), **kw)
        return await self.client.post("/v1/slack/interactivity", **request)

    async def alert(self, account: str) -> Alert:
        [alert] = await alerts_of(self.sessions, account)
        return alert

    async def actions(self, alert_id: int) -> list[AlertAction]:
        async with self.sessions() as session:
            found = await session.scalars(
                select(AlertAction).where(AlertAction.alert_id == alert_id)
            )
            return list(found)

    async def replies(self) -> list[RecordedRequest]:
        """What reached the response_url (the reply is posted after the answer)."""
        for _ in range(200):
            if self.slack.requests:
                break
            await asyncio.sleep(0.025)
        return [r for r in self.slack.requests if r.path == RESPONSE_PATH]


@pytest_asyncio.fixture
async def bench(
    pg_sessions: async_sessionmaker[AsyncSession], slack: SlackWebhookServer
) -> AsyncIterator[Bench]:
    app = create_app(
        Settings.model_validate(
            {"slack": {"signing_secret": SECRET}, "api_token": TOKEN, "config": None}
        ),
        config=TendConfig(webhooks=HOOKS),
        sessions=pg_sessions,
        clock=FixedClock(NOW),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield Bench(client, pg_sessions, slack)


def click_payload(
    alert_id: int | str, action_id: str, slack: SlackWebhookServer, **extra: Any
) -> dict[str, Any]:
    """A block_actions payload as Slack sends it for a click on the alert's message."""
    message = build_payload(create_notification(alert_id=str(alert_id)), buttons=True)
    return {
        "type": "block_actions",
        "user": {"id": "U0DANA42", "username": "dana", "name": "Dana Scully", "team_id": "T0TEAM"},
        "team": {"id": "T0TEAM", "domain": "vendor"},
        "container": {"type": "message", "channel_id": "C0ALERTS", "message_ts": "1764.0001"},
        "channel": {"id": "C0ALERTS"},
        "message": {"type": "message", "ts": "1764.0001", **message},
        "response_url": slack.url(RESPONSE_PATH),
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "b1",
                "value": str(alert_id),
                "action_ts": "1764.0002",
            }
        ],
        **extra,
    }


def signed(payload: dict[str, Any], *, secret: str = SECRET, age_s: int = 0) -> dict[str, Any]:
    """The form body and headers Slack would send (``age_s`` seconds ago)."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(int(time.time()) - age_s)
    return {
        "content": body,
        "headers": {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": sign(secret, timestamp, body),
        },
    }


class TestActions:
    async def test_acknowledge_moves_the_alert_records_who_and_updates_the_message(
        self, bench: Bench
    ) -> None:
        account, alert_id = await open_alert(bench.sessions)
        assert (await bench.click(alert_id, ACK_ACTION)).status_code == 200

        alert = await bench.alert(account)
        assert (alert.status, alert.acknowledged_at) == ("acknowledged", NOW)
        [action] = await bench.actions(alert_id)
        assert (action.action, action.source, action.actor_id, action.actor_name) == (
            "acknowledge",
            "slack",
            "U0DANA42",
            "Dana Scully",
        )
        assert action.team_id == "T0TEAM"
        # The alerts API shows who did it.
        detail = (await bench.client.get(f"/v1/alerts/{alert_id}", headers=AUTH)).json()
        assert [(a["action"], a["actor_id"], a["actor_name"]) for a in detail["actions"]] == [
            ("acknowledge", "U0DANA42", "Dana Scully")
        ]
        # ... and so does the audit log, in the transaction of the move.
        async with bench.sessions() as session:
            [entry] = await session.scalars(
                select(AuditEntry).where(AuditEntry.target == f"alert:{alert_id}")
            )
        assert (entry.action, entry.actor, entry.details["via"]) == (
            "alert.acknowledge",
            "slack:U0DANA42",
            "slack",
        )
        # ... and the webhook outbox, like a move from the API or the console.
        async with bench.sessions() as session:
            events = list(
                await session.scalars(
                    select(WebhookDelivery.event_type).where(WebhookDelivery.account_id == account)
                )
            )
        assert events == ["alert.acknowledged"]

        [reply] = await bench.replies()
        update = reply.json()
        assert update["replace_original"] is True
        assert update["blocks"][-1]["elements"][0]["text"].endswith("Acknowledged by Dana Scully")
        # The tend buttons are gone; the console link and the rest of the message stay.
        [actions] = [b for b in update["blocks"] if b["type"] == "actions"]
        assert [e["action_id"] for e in actions["elements"]] == ["open_console"]
        assert update["blocks"][0]["text"]["text"] == "Acme Corp · yellow"

    @pytest.mark.parametrize(
        ("action_id", "days", "shown"),
        [
            ("tend_snooze_1d", 1, "2026-11-05 12:00 UTC"),
            ("tend_snooze_1w", 7, "2026-11-11 12:00 UTC"),
        ],
    )
    async def test_snooze_until_a_day_or_a_week_from_now(
        self, bench: Bench, action_id: str, days: int, shown: str
    ) -> None:
        account, alert_id = await open_alert(bench.sessions)
        assert (await bench.click(alert_id, action_id)).status_code == 200
        alert = await bench.alert(account)
        assert (alert.status, alert.snoozed_until) == ("snoozed", NOW + timedelta(days=days))
        assert alert.snooze_reason == "snoozed from Slack by Dana Scully"
        [action] = await bench.actions(alert_id)
        assert (action.action, action.snoozed_until) == ("snooze", NOW + timedelta(days=days))
        [reply] = await bench.replies()
        line = reply.json()["blocks"][-1]["elements"][0]["text"]
        assert line.endswith(f"Snoozed until {shown} by Dana Scully")

    async def test_a_resolved_alert_answers_only_the_clicker_and_keeps_the_message(
        self, bench: Bench
    ) -> None:
        account, alert_id = await open_alert(bench.sessions)
        async with bench.sessions() as session, session.begin():
            row = await session.merge(await bench.alert(account))
            row.status = "resolved"
        assert (await bench.click(alert_id, ACK_ACTION)).status_code == 200
        [reply] = await bench.replies()
        assert reply.json()["response_type"] == "ephemeral"
        assert reply.json()["replace_original"] is False
        assert "resolved" in reply.json()["text"]
        assert await bench.actions(alert_id) == []

    @pytest.mark.parametrize("alert_id", ["999999999", "not-an-id", ""])
    async def test_an_unknown_alert_answers_only_the_clicker(
        self, bench: Bench, alert_id: str
    ) -> None:
        assert (await bench.click(alert_id, ACK_ACTION)).status_code == 200
        [reply] = await bench.replies()
        assert reply.json()["response_type"] == "ephemeral"

    async def test_other_interactions_are_ignored(self, bench: Bench) -> None:
        assert (await bench.click(1, "open_console")).status_code == 200
        shortcut = {"type": "shortcut", "callback_id": "x", "user": {"id": "U1"}}
        r = await bench.client.post("/v1/slack/interactivity", **signed(shortcut))
        assert r.status_code == 200
        await asyncio.sleep(0.1)
        assert bench.slack.requests == []


class TestSignature:
    @staticmethod
    async def assert_refused(
        bench: Bench, request: dict[str, Any], account: str, words: str
    ) -> None:
        r = await bench.client.post("/v1/slack/interactivity", **request)
        assert r.status_code == 401
        error = r.json()["error"]
        assert error["code"] == "bad_signature" and words in error["message"]
        assert (await bench.alert(account)).status == "open"
        assert bench.slack.requests == []

    async def test_forged_signature_is_401(self, bench: Bench) -> None:
        account, alert_id = await open_alert(bench.sessions)
        forged = signed(click_payload(alert_id, ACK_ACTION, bench.slack), secret="not-it")
        await self.assert_refused(bench, forged, account, "does not match")

    async def test_a_body_changed_after_signing_is_401(self, bench: Bench) -> None:
        account, alert_id = await open_alert(bench.sessions)
        request = signed(click_payload(999, ACK_ACTION, bench.slack))
        request["content"] = urlencode(
            {"payload": json.dumps(click_payload(alert_id, ACK_ACTION, bench.slack))}
        ).encode()
        await self.assert_refused(bench, request, account, "does not match")

    # Ahead of the clock by more than 5 minutes plus the time the request takes to arrive.
    @pytest.mark.parametrize("age_s", [301, 3600, -330])
    async def test_stale_or_future_timestamp_is_401(self, bench: Bench, age_s: int) -> None:
        account, alert_id = await open_alert(bench.sessions)
        stale = signed(click_payload(alert_id, ACK_ACTION, bench.slack), age_s=age_s)
        await self.assert_refused(bench, stale, account, "5 minutes")

    @pytest.mark.parametrize("drop", ["X-Slack-Signature", "X-Slack-Request-Timestamp"])
    async def test_unsigned_is_401(self, bench: Bench, drop: str) -> None:
        account, alert_id = await open_alert(bench.sessions)
        request = signed(click_payload(alert_id, ACK_ACTION, bench.slack))
        del request["headers"][drop]
        await self.assert_refused(bench, request, account, "missing")

    async def test_within_five_minutes_is_taken(self, bench: Bench) -> None:
        account, alert_id = await open_alert(bench.sessions)
        assert (await bench.click(alert_id, ACK_ACTION, age_s=240)).status_code == 200
        assert (await bench.alert(account)).status == "acknowledged"


class TestBadInput:
    @pytest.mark.parametrize(
        ("form", "message"),
        [
            ({}, "payload: missing"),
            ({"payload": "{not json"}, "payload: not JSON"),
            ({"payload": "[1, 2]"}, "payload: not a JSON object"),
        ],
    )
    async def test_a_signed_body_without_a_payload_is_400_naming_it(
        self, bench: Bench, form: dict[str, str], message: str
    ) -> None:
        body = urlencode(form).encode()
        ts = str(int(time.time()))
        r = await bench.client.post(
            "/v1/slack/interactivity",
            content=body,
            headers={"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sign(SECRET, ts, body)},
        )
        assert r.status_code == 400
        assert r.json()["error"]["field"] == "payload"
        assert r.json()["error"]["message"].startswith(message)

    async def test_a_click_without_a_user_is_400(self, bench: Bench) -> None:
        payload = click_payload(1, ACK_ACTION, bench.slack, user={"name": "nobody"})
        r = await bench.client.post("/v1/slack/interactivity", **signed(payload))
        assert r.status_code == 400 and r.json()["error"]["field"] == "payload.user.id"

    async def test_without_a_signing_secret_every_request_is_401(self, bench: Bench) -> None:
        app = create_app(Settings.model_validate({"config": None}), sessions=bench.sessions)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.post(
                "/v1/slack/interactivity", **signed(click_payload(1, ACK_ACTION, bench.slack))
            )
        assert (r.status_code, r.json()["error"]["code"]) == (401, "not_configured")
        assert "TEND_SLACK__SIGNING_SECRET" in r.json()["error"]["message"]


def test_the_signature_is_slacks_v0_hmac() -> None:
    """Slack's documented example: secret, timestamp and body give this signature."""
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    assert sign(SECRET, "1531420618", body) == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


async def test_an_unsigned_request_is_refused_before_the_database_is_touched() -> None:
    """The app has no database at all: a 401, not a failed session."""
    app = create_app(Settings.model_validate({"slack": {"signing_secret": SECRET}, "config": None}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.post("/v1/slack/interactivity", content=b"payload=%7B%7D")
    assert (r.status_code, r.json()["error"]["code"]) == (401, "bad_signature")

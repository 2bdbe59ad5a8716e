"""Slack's Web API delivery (chat.postMessage with the bot token) against a real loopback server
standing in for slack.com/api; the buttons and the CSM mention in the message; where a Slack
message goes with a bot token; and the whole path from a score to a posted message whose
channel and ts are kept on the outbox row."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.app import build_defaults, build_notifiers
from services.alerts.consumer import AlertsHandler
from services.alerts.dispatcher import Dispatcher
from services.alerts.notifiers.base import DeliveryResult
from services.alerts.notifiers.slack import build_payload
from services.alerts.notifiers.slack_api import SlackApiNotifier
from services.alerts.routing import Defaults, destinations
from shared.clock import FixedClock
from shared.db.models import AlertNotification
from shared.settings import Settings
from shared.slack import ACK_ACTION, ACTIONS, SNOOZE_ACTIONS
from tests.alerts.snapshots import create_defaults, create_snapshot, only_rules, unique_account
from tests.support.servers import Reply, SlackApiServer, create_notification

TOKEN = "xoxb-test-0000-token"
CSM = "U0CSM4242"
WEBHOOK = "https://hooks.slack.com/services/T0/B0/default"


@pytest_asyncio.fixture
async def api_notifier(slack_api: SlackApiServer) -> AsyncIterator[SlackApiNotifier]:
    async with SlackApiNotifier(
        TOKEN, api_url=slack_api.api_url(), min_interval_s=0, timeout_s=2, buttons=True
    ) as n:
        yield n


def _actions(payload: dict[str, Any]) -> list[dict[str, Any]]:
    [block] = [b for b in payload["blocks"] if b["type"] == "actions"]
    elements: list[dict[str, Any]] = block["elements"]
    return elements


class TestMessage:
    def test_buttons_acknowledge_and_snooze_carry_the_alert_id(self) -> None:
        payload = build_payload(create_notification(alert_id="77"), buttons=True)
        buttons = _actions(payload)
        assert [b["text"]["text"] for b in buttons] == [
            "Open in tend",
            "Acknowledge",
            "Snooze 1 day",
            "Snooze 1 week",
        ]
        assert [b.get("action_id") for b in buttons[1:]] == [ACK_ACTION, *SNOOZE_ACTIONS]
        assert {b["value"] for b in buttons[1:]} == {"77"}
        assert set(SNOOZE_ACTIONS) | {ACK_ACTION} == ACTIONS

    @pytest.mark.parametrize(
        ("kind", "buttons", "expected"),
        [("open", False, 1), ("resolve", True, 1), ("open", True, 4), ("repeat", True, 4)],
    )
    def test_buttons_only_when_configured_and_the_alert_is_active(
        self, kind: Any, buttons: bool, expected: int
    ) -> None:
        payload = build_payload(create_notification(kind=kind), buttons=buttons)
        assert len(_actions(payload)) == expected

    def test_a_csm_named_by_member_id_is_mentioned(self) -> None:
        payload = build_payload(create_notification(csm_slack_user=CSM))
        assert payload["text"].startswith(f"<@{CSM}> ")
        assert payload["blocks"][1]["text"]["text"].startswith(f"<@{CSM}> ")
        plain = build_payload(create_notification())
        assert "<@" not in plain["text"]


class TestRouting:
    def test_a_bot_posts_to_its_channel_and_mentions_the_csm_there(self) -> None:
        bot = create_defaults(slack_api=True, slack_channel="C0ALERTS")
        assert destinations(None, CSM, None, bot)[:1] == [("slack_api", "C0ALERTS")]
        assert destinations(None, None, None, bot)[:1] == [("slack_api", "C0ALERTS")]

    def test_without_a_channel_the_csm_gets_a_direct_message(self) -> None:
        bot = Defaults(slack_webhook_url=WEBHOOK, slack_api=True)
        assert destinations(None, CSM, None, bot) == [("slack_api", CSM)]
        # No member id: the incoming webhook, as before.
        assert destinations(None, "@dana", None, bot) == [("slack", WEBHOOK)]

    def test_without_a_bot_token_the_webhook_as_before(self) -> None:
        assert destinations(None, CSM, None, Defaults(slack_webhook_url=WEBHOOK)) == [
            ("slack", WEBHOOK)
        ]

    def test_settings_turn_on_the_web_api_and_the_buttons(self) -> None:
        settings = Settings.model_validate(
            {
                "slack": {"bot_token": TOKEN, "channel": "C0ALERTS", "signing_secret": "s3"},
                "config": None,
            }
        )
        defaults = build_defaults(settings)
        assert (defaults.slack_api, defaults.slack_channel) == (True, "C0ALERTS")
        notifiers = build_notifiers(settings)
        assert isinstance(notifiers["slack_api"], SlackApiNotifier)
        assert notifiers["slack_api"].buttons and notifiers["slack"].buttons
        assert "slack_api" not in build_notifiers(Settings.model_validate({"config": None}))


class TestPostMessage:
    async def test_posts_with_the_bot_token_to_the_channel_and_mentions_the_csm(
        self, slack_api: SlackApiServer, api_notifier: SlackApiNotifier
    ) -> None:
        result = await api_notifier.send(
            create_notification(alert_id="9", csm_slack_user=CSM), "C0ALERTS"
        )
        assert result.is_delivered
        [request] = slack_api.requests
        assert request.path == "/api/chat.postMessage"
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["Content-Type"].startswith("application/json")
        body = request.json()
        assert body["channel"] == "C0ALERTS"
        assert body["text"].startswith(f"<@{CSM}>")
        assert [b["action_id"] for b in _actions(body)][1:] == [ACK_ACTION, *SNOOZE_ACTIONS]
        assert result.posted == ("C0ALERTS", "1764583200.000001")

    @pytest.mark.parametrize(
        "error", ["channel_not_found", "not_in_channel", "invalid_auth", "missing_scope"]
    )
    async def test_a_refusal_in_an_ok_false_answer_fails_for_good(
        self, slack_api: SlackApiServer, api_notifier: SlackApiNotifier, error: str
    ) -> None:
        slack_api.script(Reply.api(ok=False, error=error))
        result = await api_notifier.send(create_notification(), "C0ALERTS")
        assert result == DeliveryResult.failed_permanently(f"Slack API error {error}")

    async def test_transient_errors_are_retried_with_backoff(
        self, slack_api: SlackApiServer, api_notifier: SlackApiNotifier
    ) -> None:
        slack_api.script(Reply.api(ok=False, error="internal_error"), Reply(503, "down"))
        first = await api_notifier.send(create_notification(), "C0ALERTS")
        second = await api_notifier.send(create_notification(), "C0ALERTS")
        assert first.is_retry and first.backoff and first.reason == "Slack API error internal_error"
        assert second.is_retry and second.backoff

    async def test_429_waits_its_retry_after_without_posting_meanwhile(
        self, slack_api: SlackApiServer, api_notifier: SlackApiNotifier
    ) -> None:
        slack_api.script(Reply(429, "", headers={"Retry-After": "120"}))
        limited = await api_notifier.send(create_notification(), "C0ALERTS")
        assert limited.is_retry and limited.retry_after_s == 120.0 and not limited.backoff
        again = await api_notifier.send(create_notification(), "C0ALERTS")
        assert again.is_retry and len(slack_api.requests) == 1
        # Another channel is not held back.
        assert (await api_notifier.send(create_notification(), "C0OTHER")).is_delivered

    @pytest.mark.parametrize("destination", ["", "#general", "https://hooks.slack.com/x", "c0a"])
    async def test_not_a_channel_or_member_id_fails_without_a_request(
        self, slack_api: SlackApiServer, api_notifier: SlackApiNotifier, destination: str
    ) -> None:
        result = await api_notifier.send(create_notification(), destination)
        assert result.is_failed and slack_api.requests == []

    async def test_an_answer_that_is_not_the_web_apis_fails_for_good(
        self, slack_api: SlackApiServer, api_notifier: SlackApiNotifier
    ) -> None:
        slack_api.script(Reply(200, "<html>proxy</html>", content_type="text/html"))
        result = await api_notifier.send(create_notification(), "C0ALERTS")
        assert result.is_failed and "not a Slack API answer" in result.reason


class TestFromScoreToPostedMessage:
    async def test_the_outbox_row_keeps_the_channel_and_ts(
        self,
        database: tuple[str, async_sessionmaker[AsyncSession]],
        slack_api: SlackApiServer,
        api_notifier: SlackApiNotifier,
    ) -> None:
        _, sessions = database
        clock = FixedClock(datetime(2026, 11, 2, 12, 0, tzinfo=UTC))
        handler = AlertsHandler(
            only_rules("dormant"),
            clock,
            defaults=create_defaults(slack_api=True, slack_channel="C0ALERTS"),
            console_url="http://console.example",
        )
        account = unique_account()
        async with sessions() as session, session.begin():
            await handler.flush(
                session, [create_snapshot(account, d, csm_slack=CSM) for d in (0, 1)]
            )
        dispatcher = Dispatcher(sessions, {"slack_api": api_notifier}, clock)
        assert await dispatcher.run_once() >= 1

        [request] = slack_api.requests
        body = request.json()
        assert body["channel"] == "C0ALERTS" and body["text"].startswith(f"<@{CSM}>")
        async with sessions() as session:
            rows = list(
                await session.scalars(
                    select(AlertNotification).where(AlertNotification.channel == "slack_api")
                )
            )
        [row] = rows
        assert (row.status, row.destination) == ("sent", "C0ALERTS")
        assert (row.slack_channel, row.slack_ts) == ("C0ALERTS", "1764583200.000001")

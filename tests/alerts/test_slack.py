"""SlackNotifier against a real loopback HTTP server standing in for Slack's incoming webhooks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from services.alerts.notifiers.base import DeliveryResult
from services.alerts.notifiers.render import render_text
from services.alerts.notifiers.slack import SlackNotifier, build_payload, redact_webhook
from tests.support.servers import Reply, SlackWebhookServer, _free_port, create_notification

SECRET = "secretsecret"


class FakeClock:
    """A monotonic clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture
async def slack_notifier(fake_clock: FakeClock) -> AsyncIterator[SlackNotifier]:
    async with SlackNotifier(
        timeout_s=0.5, connect_timeout_s=0.5, clock=fake_clock, sleep=fake_clock.sleep
    ) as n:
        yield n


def _count(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "tend_alerts_notifications_total", {"channel": "slack", "outcome": outcome}
    )
    return value or 0.0


def _texts(payload: dict[str, Any]) -> list[str]:
    """Every text in the blocks, in order (section fields included)."""
    out: list[str] = []
    for block in payload["blocks"]:
        if "text" in block:
            out.append(block["text"]["text"])
        out += [f["text"] for f in block.get("fields", [])]
        out += [e["text"] for e in block.get("elements", []) if isinstance(e.get("text"), str)]
    return out


class TestBlockKit:
    async def test_the_message_has_account_band_numbers_reason_next_step_and_link(
        self, slack: SlackWebhookServer, slack_notifier: SlackNotifier
    ) -> None:
        result = await slack_notifier.send(create_notification(), slack.url())

        assert result == DeliveryResult.delivered("HTTP 200 OK")
        [request] = slack.requests
        assert request.path == "/services/T000/B000/secretsecret"
        assert request.headers["Content-Type"] == "application/json"
        payload = request.json()
        blocks = payload["blocks"]
        assert [b["type"] for b in blocks] == [
            "header",
            "section",
            "section",
            "section",
            "actions",
            "context",
        ]
        assert blocks[0]["text"] == {
            "type": "plain_text",
            "text": "Acme Corp · yellow",
            "emoji": True,
        }
        fields = [f["text"] for f in blocks[1]["fields"]]
        assert fields == [
            "*Score*\n58 (yellow)",
            "*MRR*\n$4,500 MRR",
            "*Renewal*\nrenews 2027-01-15 (in 53 days)",
            "*Alert*\nlogin plateau (warning)",
        ]
        assert blocks[2]["text"]["text"] == (
            "weekly actives 41, 40, 42, 41 over 4 weeks; 33% of 120 seats active"
        )
        assert blocks[3]["text"]["text"].startswith("*Next step:* Book an adoption review")
        [button] = blocks[4]["elements"]
        assert button["type"] == "button"
        assert button["url"] == "http://tend.example.com/accounts/acme"
        assert "CSM: Jane Doe" in blocks[5]["elements"][0]["text"]
        # The fallback text (notifications, screen readers) says the same in one piece.
        assert payload["text"].startswith("*Acme Corp: login plateau (yellow, 58)*")
        assert "weekly actives 41, 40, 42, 41" in payload["text"]
        assert "<http://tend.example.com/accounts/acme|Open in tend>" in payload["text"]

    def test_mrkdwn_control_characters_are_escaped(self) -> None:
        payload = build_payload(
            create_notification(account_name="R&D <Labs>", reason="usage <50% & falling")
        )
        texts = _texts(payload)
        assert "usage &lt;50% &amp; falling" in texts
        assert not any("<50%" in t for t in texts)
        # The header is plain_text: Slack shows it literally, so it stays unescaped.
        assert payload["blocks"][0]["text"]["text"] == "R&D <Labs> · yellow"

    def test_a_resolve_has_no_next_step(self) -> None:
        payload = build_payload(create_notification(kind="resolve", band="green", score=74))
        assert payload["blocks"][0]["text"]["text"] == "Resolved: Acme Corp · green"
        assert not any("Next step" in t for t in _texts(payload))
        assert "login plateau resolved (green, 74)" in payload["text"]

    @pytest.mark.parametrize("length", [0, 1, 149, 150, 151, 400])
    def test_the_header_fits_slacks_150_characters(self, length: int) -> None:
        name = "x" * length
        header = build_payload(create_notification(account_name=name))["blocks"][0]["text"]
        assert len(header["text"]) <= 150
        assert header["text"].startswith(name[:140] or "acme")

    def test_unknown_numbers_are_said_so(self) -> None:
        payload = build_payload(
            create_notification(score=None, band="new", mrr=None, renewal_date=None)
        )
        fields = [f["text"] for f in payload["blocks"][1]["fields"]]
        assert fields[:3] == [
            "*Score*\nnew",
            "*MRR*\nMRR unknown",
            "*Renewal*\nrenewal date unknown",
        ]


class TestClassification:
    async def test_429_honours_retry_after_and_holds_the_webhook_until_then(
        self, slack: SlackWebhookServer, slack_notifier: SlackNotifier, fake_clock: FakeClock
    ) -> None:
        slack.script(Reply(429, "rate_limited", {"Retry-After": "7"}))

        first = await slack_notifier.send(create_notification(), slack.url())
        assert first.is_retry
        assert first.retry_after_s == 7
        assert first.delay(attempt=3) == 7  # the server's wait, not a backoff
        # Within those 7 s another send to that webhook does not hit Slack at all.
        fake_clock.now += 3
        second = await slack_notifier.send(create_notification(alert_id="43"), slack.url())
        assert second.is_retry
        assert second.retry_after_s == pytest.approx(4)
        assert len(slack.requests) == 1
        # Afterwards it posts again.
        fake_clock.now += 4
        third = await slack_notifier.send(create_notification(alert_id="43"), slack.url())
        assert third.is_delivered
        assert len(slack.requests) == 2

    async def test_429_without_retry_after_waits_30_seconds(
        self, slack: SlackWebhookServer, slack_notifier: SlackNotifier
    ) -> None:
        slack.script(Reply(429, "rate_limited"))
        result = await slack_notifier.send(create_notification(), slack.url())
        assert (result.outcome, result.retry_after_s) == ("retry", 30)

    async def test_500_is_retried_with_backoff_then_succeeds(
        self, slack: SlackWebhookServer, slack_notifier: SlackNotifier
    ) -> None:
        slack.script(Reply(500, "internal_error"), Reply(200, "ok"))
        retried = await slack_notifier.send(create_notification(), slack.url())
        assert retried.is_retry
        assert retried.backoff
        assert retried.reason == "HTTP 500 Internal Server Error"
        assert retried.delay(1) < retried.delay(2) < retried.delay(3)

        delivered = await slack_notifier.send(create_notification(), slack.url())
        assert delivered.is_delivered
        assert len(slack.requests) == 2
        assert slack.requests[0].body == slack.requests[1].body

    @pytest.mark.parametrize(
        ("status", "body"),
        [
            (400, "invalid_payload"),
            (403, "action_prohibited"),
            (404, "no_service"),
            (410, "channel_is_archived"),
        ],
    )
    async def test_refusals_are_permanent_counted_and_logged_without_the_secret(
        self,
        slack: SlackWebhookServer,
        slack_notifier: SlackNotifier,
        caplog: pytest.LogCaptureFixture,
        status: int,
        body: str,
    ) -> None:
        slack.script(Reply(status, body))
        before = _count("failed")
        with caplog.at_level(logging.DEBUG):
            result = await slack_notifier.send(create_notification(), slack.url())

        assert result.is_failed
        assert result.reason.startswith(f"HTTP {status} ") and result.reason.endswith(f"({body})")
        assert _count("failed") == before + 1
        assert "notification failed permanently" in caplog.text
        assert body in caplog.text
        # httpx logs each request URL at INFO; the webhook's path must not reach any log.
        assert "HTTP Request: POST" in caplog.text
        assert SECRET not in caplog.text

    async def test_a_slow_answer_times_out_and_is_retried(
        self, slack: SlackWebhookServer, fake_clock: FakeClock
    ) -> None:
        slack.script(Reply(200, "ok", delay_s=3))
        async with SlackNotifier(
            timeout_s=0.2, clock=fake_clock, sleep=fake_clock.sleep
        ) as notifier:
            result = await notifier.send(create_notification(), slack.url())
        assert result.is_retry
        assert result.backoff
        assert result.reason.startswith("timeout")

    async def test_nobody_listening_is_retried(self, slack_notifier: SlackNotifier) -> None:
        url = f"http://127.0.0.1:{_free_port()}/services/T/B/{SECRET}"
        result = await slack_notifier.send(create_notification(), url)
        assert result.is_retry
        assert result.reason == "connection refused or host unreachable"
        assert SECRET not in result.reason

    async def test_outcomes_are_counted(
        self, slack: SlackWebhookServer, slack_notifier: SlackNotifier, fake_clock: FakeClock
    ) -> None:
        before = (_count("delivered"), _count("retry"))
        slack.script(Reply(503, "busy"))
        await slack_notifier.send(create_notification(), slack.url())
        await slack_notifier.send(create_notification(), slack.url())
        assert (_count("delivered"), _count("retry")) == (before[0] + 1, before[1] + 1)

    @pytest.mark.parametrize("url", ["", "hooks.slack.com/services/x", "ftp://h/x", "http://"])
    async def test_a_malformed_webhook_url_fails_permanently(
        self, slack_notifier: SlackNotifier, url: str
    ) -> None:
        result = await slack_notifier.send(create_notification(), url)
        assert result == DeliveryResult.failed_permanently("not an http(s) webhook URL")

    def test_redaction_keeps_the_host_and_first_path_part_and_hides_the_rest(self) -> None:
        url = f"https://hooks.slack.com/services/T0001/B0002/{SECRET}"
        safe = redact_webhook(url)
        assert safe == "https://hooks.slack.com/services/…"
        assert SECRET not in safe and "T0001" not in safe


class TestPacing:
    async def test_two_sends_to_one_webhook_are_a_second_apart(
        self, slack: SlackWebhookServer, slack_notifier: SlackNotifier, fake_clock: FakeClock
    ) -> None:
        await slack_notifier.send(create_notification(), slack.url())
        await slack_notifier.send(create_notification(alert_id="43"), slack.url())
        assert fake_clock.sleeps == [pytest.approx(1.0)]
        assert len(slack.requests) == 2

    async def test_a_send_after_the_interval_does_not_wait(
        self, slack: SlackWebhookServer, slack_notifier: SlackNotifier, fake_clock: FakeClock
    ) -> None:
        await slack_notifier.send(create_notification(), slack.url())
        fake_clock.now += 0.4
        await slack_notifier.send(create_notification(), slack.url())
        fake_clock.now += 5
        await slack_notifier.send(create_notification(), slack.url())
        assert fake_clock.sleeps == [pytest.approx(0.6)]

    async def test_different_webhooks_do_not_wait_for_each_other(
        self, slack: SlackWebhookServer, slack_notifier: SlackNotifier, fake_clock: FakeClock
    ) -> None:
        await slack_notifier.send(create_notification(), slack.url("/services/T/B/one"))
        await slack_notifier.send(create_notification(), slack.url("/services/T/B/two"))
        assert fake_clock.sleeps == []

    @pytest.mark.parametrize("sends", [1, 2, 5])
    async def test_concurrent_sends_queue_in_call_order(
        self,
        slack: SlackWebhookServer,
        slack_notifier: SlackNotifier,
        fake_clock: FakeClock,
        sends: int,
    ) -> None:
        results = await asyncio.gather(
            *(
                slack_notifier.send(create_notification(alert_id=str(i)), slack.url())
                for i in range(sends)
            )
        )
        assert all(r.is_delivered for r in results)
        assert fake_clock.sleeps == [pytest.approx(1.0)] * (sends - 1)
        posted = [r.json()["blocks"][-1]["elements"][0]["text"] for r in slack.requests]
        assert posted == [f"CSM: Jane Doe · alert {i} · as of 2026-11-23" for i in range(sends)]

    async def test_a_failed_send_still_spaces_the_next(
        self, slack: SlackWebhookServer, slack_notifier: SlackNotifier, fake_clock: FakeClock
    ) -> None:
        slack.script(Reply(500, "oops"))
        await slack_notifier.send(create_notification(), slack.url())
        await slack_notifier.send(create_notification(), slack.url())
        assert fake_clock.sleeps == [pytest.approx(1.0)]


class TestDeliveryResult:
    @pytest.mark.parametrize(("attempt", "expected"), [(1, 10), (2, 20), (3, 40), (20, 3600)])
    def test_backoff_doubles_up_to_the_cap(self, attempt: int, expected: float) -> None:
        result = DeliveryResult.retry_after(10, "HTTP 500", backoff=True)
        assert result.delay(attempt) == expected

    def test_delivered_and_failed_have_no_delay(self) -> None:
        assert DeliveryResult.delivered().delay(1) == 0
        assert DeliveryResult.failed_permanently("HTTP 410").delay(1) == 0


class TestRender:
    def test_the_plain_text_body(self) -> None:
        text = render_text(create_notification(feature="reports", rule="feature_unused"))
        assert text.startswith("Acme Corp: feature unused: reports (yellow, 58)\n")
        assert "MRR: $4,500 MRR\n" in text
        assert "Open in tend: http://tend.example.com/accounts/acme" in text

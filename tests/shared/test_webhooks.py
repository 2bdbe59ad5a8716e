"""Outbound webhooks, the pure parts: endpoint validation, which change is which event, the
payload, the signature, and the verification snippet of docs/webhooks.md run as written."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import yaml

from services.alerts.webhooks import retry_wait
from shared.alerting.lifecycle import AlertState
from shared.config import ConfigError, parse_config
from shared.db.models import Alert
from shared.webhooks.endpoints import EVENT_TYPES, WebhooksConfig
from shared.webhooks.outbox import alert_event_type
from shared.webhooks.payload import alert_event, band_event, body_bytes, signature_header, verify
from tests.support.webhooks import DOCS, docs_verifier

SECRET = "whsec-0123456789abcdef"
NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


def endpoint(**fields: Any) -> dict[str, Any]:
    return {"name": "crm", "url": "https://crm.example/hooks", "secret": SECRET, **fields}


class TestEndpoints:
    def test_defaults_and_all_events(self) -> None:
        hooks = parse_config({"webhooks": [endpoint()]}).webhooks
        (e,) = hooks.endpoints
        assert e.events == EVENT_TYPES
        assert e.signing_secret() == SECRET
        assert hooks.wanting("alert.opened") == [e]

    def test_secret_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TEND_TEST_HOOK_SECRET", SECRET)
        block = {"endpoints": [endpoint(secret=None, secret_env="TEND_TEST_HOOK_SECRET")]}
        (e,) = parse_config({"webhooks": block}).webhooks.endpoints
        assert e.signing_secret() == SECRET

    def test_event_filter(self) -> None:
        hooks = parse_config({"webhooks": [endpoint(events=["score.band_changed"])]}).webhooks
        assert hooks.wanting("alert.opened") == []
        assert [e.name for e in hooks.wanting("score.band_changed")] == ["crm"]

    def test_no_block_means_no_endpoints(self) -> None:
        assert parse_config({}).webhooks.endpoints == ()
        assert parse_config({"webhooks": None}).webhooks == WebhooksConfig()

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"url": "http://crm.example/hooks"}, "url: must start with https://"),
            ({"url": "ftp://crm.example/x"}, "url: must start with https://"),
            ({"url": "https:///path"}, "url: has no host"),
            ({"url": "https://u:p@crm.example/"}, "url: must not carry a user"),
            ({"url": "https://crm.example/#x"}, "url: must not have a #fragment"),
            ({"url": "https://crm.example:99999/"}, "url: not a URL"),
            ({"url": "https://crm.example/a b"}, "url: must be one URL"),
            ({"secret": "short"}, "secret: it must hold at least 16"),
            ({"secret": None}, "secret: give exactly one"),
            ({"secret_env": "X"}, "secret: give exactly one"),
            ({"secret": None, "secret_env": "TEND_UNSET_TEST_VAR"}, "secret_env: the variable"),
            ({"name": "CRM!"}, "name: Value error, use 1 to 50"),
            ({"events": []}, "events: Value error, list at least one"),
            ({"events": ["alert.exploded"]}, "events.0: Input should be"),
            ({"token": "x"}, "token: Extra inputs are not permitted"),
        ],
    )  # fmt: skip
    def test_mistakes_name_the_key(self, fields: dict[str, Any], message: str) -> None:
        with pytest.raises(ConfigError) as err:
            parse_config({"webhooks": [endpoint(**fields)]}, source="tend.yaml")
        assert f"tend.yaml: webhooks.endpoints.0.{message}" in str(err.value)

    def test_the_documented_block_loads(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TEND_WEBHOOK_CRM_SECRET", SECRET)
        text = DOCS.read_text(encoding="utf-8")
        (block,) = [
            b for b in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL) if "webhooks:" in b
        ]
        hooks = parse_config(yaml.safe_load(block)).webhooks
        assert [e.name for e in hooks.endpoints] == ["crm", "workflow"]
        assert hooks.endpoints[0].events == ("alert.opened", "alert.resolved", "score.band_changed")
        assert hooks.endpoints[0].signing_secret() == SECRET

    def test_http_only_when_allowed(self) -> None:
        block = [endpoint(url="http://127.0.0.1:9/hooks", allow_http=True)]
        assert parse_config({"webhooks": block}).webhooks.endpoints[0].allow_http

    def test_names_are_unique(self) -> None:
        with pytest.raises(ConfigError, match="endpoint names must be unique: crm"):
            parse_config({"webhooks": [endpoint(), endpoint()]})


def alert_row(**fields: Any) -> Alert:
    values: dict[str, Any] = {
        "id": 42, "account_id": "acme", "account_name": "Acme", "rule": "dormant",
        "feature": "", "status": "open", "severity": "critical", "reason": "quiet",
        "next_step": "call", "as_of": date(2026, 11, 3), "started_on": date(2026, 11, 2),
        "opened_on": date(2026, 11, 3), "reopenings": 0, "opened_at": NOW, "score": 41.5,
        "band": "red", "mrr": 4800.0, "csm_email": "dana@vendor.example",
    }  # fmt: skip
    return Alert(**{**values, **fields})


LATER = NOW + timedelta(days=1)
AT_NOW, AT_LATER = {"opened_at": NOW}, {"opened_at": LATER}
UNTIL_NOW, UNTIL_LATER = {"snoozed_until": NOW}, {"snoozed_until": LATER}
SNOOZED, RESOLVED = "alert.snoozed", "alert.resolved"


class TestWhichEvent:
    @pytest.mark.parametrize(
        ("before", "after", "expected"),
        [
            ({"status": "none"}, {"status": "open"}, "alert.opened"),
            ({"status": "pending"}, {"status": "open"}, "alert.opened"),
            ({"status": "resolved", **AT_NOW}, {"status": "open"}, "alert.opened"),
            ({"status": "acknowledged", **AT_NOW}, {"status": "open", **AT_LATER}, "alert.opened"),
            ({"status": "open", **AT_NOW}, {"status": "open"}, None),
            ({"status": "open", **AT_NOW}, {"status": "acknowledged"}, "alert.acknowledged"),
            ({"status": "acknowledged"}, {"status": "acknowledged"}, None),
            ({"status": "open"}, {"status": "snoozed", **UNTIL_LATER}, "alert.snoozed"),
            ({"status": "snoozed", **UNTIL_NOW}, {"status": "snoozed", **UNTIL_LATER}, SNOOZED),
            ({"status": "snoozed", **UNTIL_LATER}, {"status": "snoozed", **UNTIL_LATER}, None),
            ({"status": "snoozed", **AT_NOW}, {"status": "open"}, "alert.snooze_ended"),
            ({"status": "open"}, {"status": "resolved", "resolved_by": "condition"}, RESOLVED),
            ({"status": "snoozed"}, {"status": "resolved", "resolved_by": "manual"}, RESOLVED),
            ({"status": "open"}, {"status": "none"}, "alert.resolved"),
            ({"status": "pending"}, {"status": "none"}, None),
            ({"status": "resolved"}, {"status": "resolved"}, None),
        ],
    )  # fmt: skip
    def test_status_changes(
        self, before: dict[str, Any], after: dict[str, Any], expected: str | None
    ) -> None:
        assert alert_event_type(AlertState(**before), alert_row(**after)) == expected


class TestPayload:
    def test_alert_event_is_version_1_json(self) -> None:
        event = alert_event("alert.opened", alert_row(), NOW)
        assert event["version"] == 1 and event["type"] == "alert.opened"
        assert re.fullmatch(r"evt_[0-9a-f]{32}", event["id"])
        assert event["occurred_at"] == "2026-11-03T12:00:00Z"
        assert event["account"] == {
            "id": "acme", "name": "Acme", "mrr": 4800.0, "csm_email": "dana@vendor.example",
            "score": 41.5, "band": "red",
        }  # fmt: skip
        alert = event["alert"]
        assert (alert["id"], alert["rule"], alert["status"]) == (42, "dormant", "open")
        assert alert["opened_at"] == "2026-11-03T12:00:00Z"
        assert alert["started_on"] == "2026-11-02"
        assert json.loads(body_bytes(event)) == event

    def test_every_event_has_its_own_id(self) -> None:
        ids = {alert_event("alert.opened", alert_row(), NOW)["id"] for _ in range(3)}
        assert len(ids) == 3

    def test_band_event(self) -> None:
        event = band_event(
            {"id": "acme", "name": "Acme", "mrr": 10.0, "csm_email": None},
            as_of=date(2026, 11, 3), score=38.0, band="red",
            previous_as_of=date(2026, 11, 2), previous_score=52.5, previous_band="yellow",
            now=NOW,
        )  # fmt: skip
        assert event["type"] == "score.band_changed"
        assert event["account"]["band"] == "red"
        assert event["score"] == {
            "as_of": "2026-11-03", "score": 38.0, "band": "red",
            "previous_as_of": "2026-11-02", "previous_score": 52.5, "previous_band": "yellow",
        }  # fmt: skip


class TestSignature:
    body = b'{"version":1,"type":"alert.opened"}'

    def test_header_is_hmac_sha256_over_t_dot_body(self) -> None:
        t = 1_790_000_000
        expected = hmac.new(SECRET.encode(), b"1790000000." + self.body, hashlib.sha256)
        assert signature_header(SECRET, t, self.body) == f"t={t},v1={expected.hexdigest()}"

    def test_verify(self) -> None:
        t = int(time.time())
        header = signature_header(SECRET, t, self.body)
        assert verify(SECRET, header, self.body, now=t)
        assert not verify("another-secret-0123456789", header, self.body, now=t)
        assert not verify(SECRET, header, self.body + b" ", now=t)
        assert not verify(SECRET, header, self.body, now=t + 301)
        assert not verify(SECRET, "t=x,v1=00", self.body, now=t)
        assert not verify(SECRET, "", self.body, now=t)

    def test_the_documented_snippet_verifies(self) -> None:
        check = docs_verifier()
        now = int(time.time())
        header = signature_header(SECRET, now, self.body)
        assert check(SECRET, header, self.body)
        assert not check(SECRET, header, self.body.replace(b"opened", b"closed"))
        assert not check("wrong-secret-0123456789", header, self.body)
        assert not check(SECRET, signature_header(SECRET, now - 600, self.body), self.body)
        assert not check(SECRET, "v1=abc", self.body)


class TestBackoff:
    hooks = WebhooksConfig(initial_backoff_s=5, max_backoff_s=60)

    @pytest.mark.parametrize(
        ("attempts", "nominal"), [(1, 5), (2, 10), (3, 20), (4, 40), (5, 60), (30, 60)]
    )
    def test_doubles_with_jitter_up_to_the_cap(self, attempts: int, nominal: float) -> None:
        rng = random.Random(7)
        waits = [retry_wait(self.hooks, attempts, rng) for _ in range(50)]
        assert all(nominal / 2 <= w <= nominal for w in waits)
        assert len(set(waits)) > 1

    def test_retry_after_is_a_floor(self) -> None:
        rng = random.Random(7)
        assert retry_wait(self.hooks, 1, rng, retry_after_s=30) == 30
        assert retry_wait(self.hooks, 1, rng, retry_after_s=10_000) == 60

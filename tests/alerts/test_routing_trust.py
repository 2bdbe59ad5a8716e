"""Routing trusts the operator's settings and checks account data: a CSM webhook must be https on
an allowed host, a CSM address at an allowed domain, else the default route takes the alert."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from services.alerts.routing import Defaults, destinations, email_refusal, webhook_refusal
from shared.alert_rules import Route

pytestmark = pytest.mark.unit

DEFAULT = "http://10.0.0.5:8080/services/T/B/operator-default"
"""The operator's own webhook: trusted even though it is http on an internal address."""
SLACK = "https://hooks.slack.com/services/T01/B01/csmsecretcsmsecret"


def defaults(**overrides: object) -> Defaults:
    values: dict[str, object] = {"slack_webhook_url": DEFAULT, "emails": ("ops@vendor.example",)}
    values.update(overrides)
    return Defaults(**values)  # type: ignore[arg-type]


def refused(channel: str) -> float:
    value = REGISTRY.get_sample_value(
        "tend_alerts_refused_destinations_total", {"channel": channel}
    )
    return value or 0.0


class TestWebhookFromAccountData:
    @pytest.mark.parametrize(
        ("url", "why"),
        [
            ("http://hooks.slack.com/services/T/B/x", "scheme http is not https"),
            ("https://169.254.169.254/latest/meta-data/", "host 169.254.169.254 is not in"),
            ("https://127.0.0.1:8000/v1/accounts", "host 127.0.0.1 is not in"),
            ("https://hooks.slack.com.evil.example/services/x", "is not in"),
            ("https://hooks.slack.com@evil.example/services/x", "user info"),
            ("https://u:p@hooks.slack.com/services/x", "user info"),
            ("https://[::1/x", "not a valid URL"),
        ],
    )
    def test_refused_urls_say_why(self, url: str, why: str) -> None:
        reason = webhook_refusal(url, defaults())
        assert reason is not None and why in reason

    def test_https_on_the_allowlist_is_accepted_in_any_case(self) -> None:
        assert webhook_refusal(SLACK, defaults()) is None
        assert webhook_refusal(SLACK.replace("hooks", "HOOKS"), defaults()) is None

    def test_http_only_with_the_testing_switch_and_still_only_allowed_hosts(self) -> None:
        local = "http://127.0.0.1:8123/services/T/B/x"
        allowed = defaults(slack_webhook_hosts=("127.0.0.1",))
        assert webhook_refusal(local, allowed) == "scheme http is not https"
        relaxed = defaults(slack_webhook_hosts=("127.0.0.1",), slack_webhook_allow_http=True)
        assert webhook_refusal(local, relaxed) is None
        assert webhook_refusal("http://10.0.0.7/x", relaxed) is not None

    def test_a_refused_csm_webhook_takes_the_default_route_counted_and_logged_masked(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        evil = "https://internal.example/admin/secretpath?token=abc"
        before = refused("slack")
        with caplog.at_level(logging.WARNING, logger="tend.alerts.routing"):
            found = destinations(None, evil, None, defaults(), account_id="acme")
        assert found == [("slack", DEFAULT), ("email", "ops@vendor.example")]
        assert refused("slack") == before + 1
        assert "account_id=acme" in caplog.text and "is not in" in caplog.text
        assert "https://internal.example/admin/…" in caplog.text
        assert "secretpath" not in caplog.text and "token=abc" not in caplog.text
        [line] = caplog.records  # its ids, as JSON logs show them
        assert (line.account_id, line.channel) == ("acme", "slack")  # type: ignore[attr-defined]

    def test_an_allowed_csm_webhook_replaces_the_default(self) -> None:
        assert destinations(None, SLACK, None, defaults())[0] == ("slack", SLACK)

    def test_a_slack_handle_is_no_webhook_and_no_refusal(self) -> None:
        before = refused("slack")
        assert destinations(None, "@dana", None, defaults())[0] == ("slack", DEFAULT)
        assert refused("slack") == before

    def test_operator_routes_are_trusted_as_they_are(self) -> None:
        route = Route(slack_webhook_url="http://10.0.0.9/hook", emails=["vp@x.example"])
        found = destinations(None, None, route, defaults(email_domains=("vendor.example",)))
        assert ("slack", "http://10.0.0.9/hook") in found
        assert ("email", "vp@x.example") in found


class TestEmailFromAccountData:
    def test_any_domain_when_no_list_is_set(self) -> None:
        assert email_refusal("dana@anywhere.example", defaults()) is None

    @pytest.mark.parametrize(
        ("address", "ok"),
        [
            ("dana@vendor.example", True),
            ("Dana <DANA@Vendor.Example>", True),
            ("dana@vendor.example, eve@evil.example", False),
            ("eve@evil.example", False),
            ("eve@vendor.example.evil.example", False),
        ],
    )
    def test_the_domain_list_is_enforced(self, address: str, ok: bool) -> None:
        reason = email_refusal(address, defaults(email_domains=("vendor.example",)))
        assert (reason is None) == ok

    def test_a_refused_address_takes_the_default_list(self) -> None:
        before = refused("email")
        found = destinations(
            "eve@evil.example", None, None, defaults(email_domains=("vendor.example",))
        )
        assert ("email", "ops@vendor.example") in found
        assert all("evil" not in d for _, d in found)
        assert refused("email") == before + 1

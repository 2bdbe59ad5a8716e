"""One incident per account: how an account's alerts decided together become one notification
(the lead, the items, one next step) and how each channel renders it (pure)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.alerts.notifiers.base import Notification
from services.alerts.notifiers.email import EmailNotifier, SmtpSettings
from services.alerts.notifiers.render import alert_title, render_text, summary, why
from services.alerts.notifiers.slack import build_payload
from services.alerts.state import group_notification
from shared.db.models import Alert
from tests.support.servers import create_notification

pytestmark = pytest.mark.unit


def member(alert_id: int, rule: str, kind: str, severity: str, **fields: Any) -> Any:
    row = Alert(id=alert_id, account_id="acme", rule=rule, feature=fields.get("feature", ""))
    n = create_notification(
        alert_id=str(alert_id),
        rule=rule,
        kind=kind,
        severity=severity,
        reason=f"why {rule}",
        next_step=f"step for {rule}",
        started_on=date(2026, 11, 10),
        **fields,
    )
    return row, n


def grouped(*members: Any) -> tuple[Alert, Notification]:
    return group_notification(list(members))


class TestGroup:
    def test_one_member_is_sent_as_it_is(self) -> None:
        only = member(1, "dormant", "open", "critical")
        assert grouped(only) == only

    def test_the_lead_is_newly_open_then_most_severe(self) -> None:
        lead, n = grouped(
            member(1, "login_decline", "resolve", "critical"),
            member(2, "low_seat_utilization", "open", "warning"),
            member(3, "health_red", "repeat", "critical"),
            member(4, "dormant", "open", "critical"),
        )
        assert lead.id == 4 and (n.rule, n.next_step) == ("dormant", "step for dormant")
        assert [(i.alert_id, i.kind) for i in n.items] == [
            ("4", "open"),
            ("2", "open"),
            ("3", "repeat"),
            ("1", "resolve"),
        ]


class TestRender:
    def notification(self) -> Notification:
        return grouped(
            member(1, "health_red", "open", "critical"),
            member(2, "dormant", "open", "critical"),
            member(3, "login_decline", "resolve", "warning"),
        )[1]

    def test_summary_counts_what_happened(self) -> None:
        assert summary(self.notification()) == "Acme Corp: 2 new alerts, 1 resolved (yellow, 58)"

    def test_every_rule_with_its_reason_and_when_it_began(self) -> None:
        n = self.notification()
        assert alert_title(n) == "3 alerts: dormant, health red, login decline"
        assert why(n).splitlines() == [
            "- dormant (since 2026-11-10): why dormant",
            "- health red (since 2026-11-10): why health_red",
            "- login decline resolved: why login_decline",
        ]
        text = render_text(n)
        assert text.count("Next step:") == 1 and "step for dormant" in text

    def test_slack_one_post_one_next_step(self) -> None:
        payload = build_payload(self.notification())
        blocks = str(payload["blocks"])
        assert "3 alerts: dormant, health red, login decline" in blocks
        assert blocks.count("Next step") == 1 and "why login_decline" in blocks

    def test_email_names_every_rule(self) -> None:
        settings = SmtpSettings(host="127.0.0.1", port=25, from_address="t@v.example", tls="none")
        msg = EmailNotifier(settings).build_message(self.notification(), ["j@v.example"])
        assert msg["X-Tend-Rule"] == "dormant, health_red, login_decline"
        assert "2 new alerts, 1 resolved" in msg["Subject"]
        html = msg.get_body(("html",))
        assert html is not None and "why health_red<br>" in html.get_content()

    def test_a_single_alert_says_when_it_began(self) -> None:
        n = create_notification(started_on=date(2026, 11, 10))
        assert why(n).endswith("(since 2026-11-10)")
        assert why(n.model_copy(update={"kind": "resolve"})) == n.reason

"""The customer's report in the customer's words: feature labels and minutes saved from the
catalog, a silent month that claims nothing, the customer's contacts as operator data, and
the send day of the schedule."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.web.reports.build import Delta, FeatureAdoption
from services.web.reports.highlights import highlights
from services.web.reports.render import render_html
from services.web.reports.schedule import due_month
from services.web.reports.send import customer_recipients, report_email
from shared import format as fmt
from shared.account_fields import account_fields, parse_emails, without_routing
from shared.config import ConfigError, parse_config
from shared.settings import Settings
from tests.web.test_report_render import NOW, create_report

pytestmark = pytest.mark.unit


def feature(name: str, uses: int, previous: int, status: str, **extra: Any) -> FeatureAdoption:
    return FeatureAdoption.model_validate(
        {
            "feature": name,
            "key": True,
            "uses": uses,
            "users": 1 if uses else 0,
            "previous_uses": previous,
            "previous_users": 1 if previous else 0,
            "status": status,
            **extra,
        }
    )


class TestCatalog:
    def test_the_long_form_gives_labels_and_minutes(self) -> None:
        cfg = parse_config(
            {
                "feature_catalog": {
                    "Report Exported": {
                        "feature": "reports",
                        "label": "Exported reports",
                        "minutes_saved_per_use": 15,
                    },
                    "Report Scheduled": {"feature": "reports", "minutes_saved_per_use": 15},
                    "Dashboard Viewed": "dashboards",
                }
            }
        )
        assert cfg.feature_for("Report Scheduled", {}) == "reports"
        assert cfg.feature_for("Dashboard Viewed", {}) == "dashboards"
        assert cfg.feature_labels() == {"reports": "Exported reports"}
        assert cfg.minutes_saved() == {"reports": 15.0}
        assert cfg.catalog_features() == {"reports", "dashboards"}

    @pytest.mark.parametrize(
        ("entry", "message"),
        [
            (
                {"feature": "reports", "minutes_saved_per_use": -1},
                "feature_catalog.E.minutes_saved_per_use: Input should be greater than or equal",
            ),
            ({"feature": "reports", "saves": 3}, "feature_catalog.E.saves: Extra inputs"),
            ({"label": "x"}, "feature_catalog.E.feature: Field required"),
        ],
    )
    def test_a_bad_entry_names_its_key(self, entry: dict[str, Any], message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            parse_config({"feature_catalog": {"E": entry}})

    def test_two_events_of_one_feature_must_agree(self) -> None:
        catalog = {
            "A": {"feature": "reports", "minutes_saved_per_use": 5},
            "B": {"feature": "reports", "minutes_saved_per_use": 9},
        }
        with pytest.raises(ConfigError, match=r"feature_catalog\.B\.minutes_saved_per_use: 9"):
            parse_config({"feature_catalog": catalog})


class TestCustomerWords:
    def test_labels_statuses_and_time_saved(self) -> None:
        features = [
            feature(
                "reports",
                30,
                20,
                "growing",
                label="Exported reports",
                minutes_saved=450.0,
                change_pct=50.0,
            ),
            feature("dashboards", 0, 4, "dropped"),
            feature("sso_setup", 0, 0, "unused"),
        ]
        r = create_report(
            features=features,
            key_features_total=3,
            key_features_used=Delta.of(1, 2),
            minutes_saved=Delta.of(450.0, 300.0, 1),
        )
        text = highlights(r)
        assert "About 7.5 hours saved with Exported reports (5 hours the month before)." in text
        assert "Stopped using Dashboards (used in September 2026)." in text
        assert "Not adopted yet: Sso setup." in text
        assert "1 of 3 key features used in October 2026." in text
        page = render_html(r.model_copy(update={"highlights": text}), now=NOW)
        assert "Exported reports (key)" in page and ">reports (key)" not in page
        assert '<span class="status growing">Used more</span>' in page
        assert '<span class="status dropped">Not used this month</span>' in page
        assert "<td>7.5 hours</td>" in page  # the feature's time saved
        assert '<th scope="row">Time saved</th><td>7.5 hours</td><td>5 hours</td>' in page
        assert '<span class="up">+50%</span>' in page  # reports' trend: 30 uses after 20

    def test_no_time_saved_column_without_a_declared_feature(self) -> None:
        page = render_html(create_report(), now=NOW)
        assert "Time saved" not in page and "About" not in " ".join(highlights(create_report()))

    @pytest.mark.parametrize(
        ("minutes", "words"),
        [
            (0, "0 minutes"),
            (1, "1 minute"),
            (59.4, "59 minutes"),
            (60, "1 hour"),
            (135, "2.2 hours"),
        ],
    )
    def test_durations(self, minutes: float, words: str) -> None:
        assert fmt.duration_minutes(minutes) == words


class TestSilentMonth:
    def test_a_silent_month_claims_no_feature_in_use(self) -> None:
        """Three key features used in September, nothing at all in October: the brief says so
        and never "3 of 3 key features in use"."""
        features = [feature(n, 0, 5, "dropped") for n in ("reports", "dashboards", "exports")]
        r = create_report(
            features=features,
            key_features_total=3,
            key_features_used=Delta.of(0, 3),
            active_users=Delta.of(0, 4),
            logins=Delta.of(0, 40),
            silent=True,
        )
        text = highlights(r)
        assert text[0] == "No activity in October 2026."
        assert "Used in September 2026, not since: Reports, Dashboards, Exports." in text
        assert not any("in use" in line or "key features used" in line for line in text)
        assert text[-1] == "Health 35 (red) on Oct 31, from 50 (yellow) on Oct 1."

    def test_a_running_month_says_so_far(self) -> None:
        r = create_report(silent=True, complete=False, features=[], key_features_total=0)
        assert highlights(r)[0] == "No activity in October 2026 so far."


class TestContacts:
    @pytest.mark.parametrize(
        ("value", "emails"),
        [
            ("a@x.example", ["a@x.example"]),
            ("a@x.example; b@x.example,c@x.example", ["a@x.example", "b@x.example", "c@x.example"]),
            (["a@x.example", "a@x.example"], ["a@x.example"]),
        ],
    )
    def test_one_or_several(self, value: Any, emails: list[str]) -> None:
        assert parse_emails(value) == emails

    @pytest.mark.parametrize(
        ("value", "why"),
        [("", "is blank"), ("a@x.example; nope", "'nope' is not an email"), (5, "expected")],
    )
    def test_bad_values(self, value: Any, why: str) -> None:
        with pytest.raises(ValueError, match=why):
            parse_emails(value)

    def test_too_many(self) -> None:
        with pytest.raises(ValueError, match="at most 20"):
            parse_emails([f"u{i}@x.example" for i in range(21)])

    @pytest.mark.parametrize("key", ["customer_emails", "customerEmails", "Customer Emails"])
    def test_a_write_key_cannot_set_them(self, key: str) -> None:
        """Group traits are the write key's: the contacts are no account field of theirs, even
        with routing_from_traits on (which keeps the routing traits)."""
        traits = {key: "attacker@evil.example", "plan": "team"}
        assert account_fields(without_routing(traits)) == {"plan": "team"}
        assert account_fields(traits) == {"plan": "team"}


class TestRecipients:
    def test_customers_to_the_csm_in_copy(self) -> None:
        r = create_report()
        account = r.account.model_copy(update={"customer_emails": ["ops@acme.example"]})
        who = customer_recipients(r.model_copy(update={"account": account}), Settings())
        assert who is not None
        assert (who.to, who.cc, who.reply_to) == (
            ["ops@acme.example"],
            ["csm@vendor.example"],
            "csm@vendor.example",
        )
        msg = report_email(
            r, "<p>page</p>", "tend <r@v.example>", who.to, cc=who.cc, pdf=b"%PDF-1.4 x"
        )
        assert (msg["To"], msg["Cc"]) == ("ops@acme.example", "csm@vendor.example")
        kinds = [(p.get_content_type(), p.get_filename()) for p in msg.iter_attachments()]
        assert kinds == [("text/html", "a-b-2026-10.html"), ("application/pdf", "a-b-2026-10.pdf")]

    def test_a_csm_off_the_domains_is_replaced_by_the_defaults(self) -> None:
        r = create_report()
        account = r.account.model_copy(update={"customer_emails": ["ops@acme.example"]})
        settings = Settings.model_validate(
            {"alerts": {"email_domains": "ours.example", "default_emails": "cs@ours.example"}}
        )
        who = customer_recipients(r.model_copy(update={"account": account}), settings)
        assert who is not None and who.cc == ["cs@ours.example"] and who.reply_to is None
        assert who.note is not None and "csm@vendor.example" in who.note

    def test_no_contacts_no_recipients(self) -> None:
        assert customer_recipients(create_report(), Settings()) is None


class TestSendDay:
    @pytest.mark.parametrize(
        ("now", "due"),
        [
            (datetime(2026, 12, 4, 23, 0, tzinfo=UTC), None),  # before the day
            (datetime(2026, 12, 5, 7, 59, tzinfo=UTC), None),  # before the hour
            (datetime(2026, 12, 5, 8, 0, tzinfo=UTC), date(2026, 11, 1)),
            (datetime(2026, 12, 31, 8, 0, tzinfo=UTC), date(2026, 11, 1)),  # catching up
            (datetime(2027, 1, 5, 9, 0, tzinfo=UTC), date(2026, 12, 1)),
        ],
    )
    def test_the_month_before_from_the_send_day_on(self, now: datetime, due: date | None) -> None:
        assert due_month(now, 5, 8) == due

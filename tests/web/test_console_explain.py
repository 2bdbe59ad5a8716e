"""The why-this-score table in words (services/web/console/explain.py): plain labels for the
scorer's stored inputs, measured values with their units, thresholds as one sentence."""

from __future__ import annotations

from typing import Any

import pytest

from services.web.console import explain
from services.web.console.explain import Fact

pytestmark = pytest.mark.unit


class TestMeasured:
    @pytest.mark.parametrize(
        ("component", "value", "text"),
        [("seat_utilization", 0.25, "25%"), ("login_trend", 0.0, "0%"),
         ("stickiness", 0.125, "12%"), ("recency", 35, "35 days"), ("recency", 1, "1 day"),
         ("time_to_first_value", 4.0, "4 days"), ("first_week_logins", 3, "3 logins"),
         ("something_new", 0.5, "0.5"), ("recency", None, "\u2014")],
    )  # fmt: skip
    def test_units(self, component: str, value: Any, text: str) -> None:
        assert explain.measured(component, value) == text


class TestFacts:
    def test_plain_labels_and_no_thresholds(self) -> None:
        inputs = {"regular_users": 0, "mau": 7, "seats": 10, "full_at": 0.8}
        assert explain.facts("seat_utilization", inputs) == [
            Fact("Users active most weeks", "0"),
            Fact("Monthly active users", "7"),
            Fact("Seats", "10"),
        ]

    def test_a_key_means_what_its_component_measures(self) -> None:
        trend = explain.facts("login_trend", {"current": 0.0, "baseline": 8.0})
        assert [f.label for f in trend] == [
            "Weekly active users, recent weeks",
            "Weekly active users, the weeks before",
        ]
        assert explain.facts("recency", {"days": 35})[0].label == "Days since"
        assert explain.facts("time_to_first_value", {"days": 3})[0].label == "Days to first value"

    def test_dates_stay_on_one_line_and_none_is_not_yet(self) -> None:
        got = explain.facts("recency", {"last_login": "2026-10-11", "first_value": None})
        assert got == [
            Fact("Last login", "2026-10-11", is_date=True),
            Fact("First key feature used", "not yet"),
        ]

    def test_no_unused_feature_and_unknown_keys(self) -> None:
        got = explain.facts("feature_breadth", {"unused": "", "new_input": 2})
        assert got == [Fact("Unused", "none"), Fact("New input", "2")]


class TestThresholds:
    @pytest.mark.parametrize(
        ("component", "inputs", "text"),
        [("login_trend", {"full_at": 0.85, "zero_at": 0.4}, "Full marks at 85%, none at 40%."),
         ("seat_utilization", {"full_at": 0.8, "mau": 3}, "Full marks at 80%."),
         ("recency", {"full_within_days": 2, "zero_at_days": 30},
          "Full marks within 2 days, none after 30 days."),
         ("first_week_logins", {"full_at": 5}, "Full marks at 5 logins."),
         ("feature_breadth", {"used": 1}, None)],
    )  # fmt: skip
    def test_a_sentence(self, component: str, inputs: dict[str, Any], text: str | None) -> None:
        assert explain.thresholds(component, inputs) == text

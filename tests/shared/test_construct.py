"""Instances built without validation equal validated ones, and copies equal model_copy's."""

from __future__ import annotations

from datetime import date

from services.alerts.rules import Finding
from shared.alerting.lifecycle import DayState
from shared.construct import built, replaced

DAY = date(2026, 3, 2)


class TestBuilt:
    def test_equals_the_validated_model(self) -> None:
        fields = {
            "rule": "dormant",
            "feature": "",
            "as_of": DAY,
            "holds": True,
            "severity": "warning",
            "reason": "no login for 30 days",
            "next_step": "call",
            "facts": {"days_since": 30},
        }
        made = built(Finding, dict(fields))
        assert made == Finding.model_validate(fields)
        assert made.model_dump() == Finding.model_validate(fields).model_dump()
        assert made.model_fields_set == set(fields)


class TestReplaced:
    def test_equals_model_copy_and_leaves_the_original(self) -> None:
        state = DayState(status="pending", last_day=DAY, held_since=DAY)
        update = {"status": "open", "opened_on": DAY, "last_holds": True}
        copy = replaced(state, update)
        assert copy == state.model_copy(update=update)
        assert copy.model_fields_set == state.model_copy(update=update).model_fields_set
        assert copy.model_dump_json() == state.model_copy(update=update).model_dump_json()
        assert state.status == "pending" and state.opened_on is None

"""The pure parts of "a cancelled account stops alerting": which days an account is cancelled
on, and the resolve a cancellation makes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from shared.alerting.cancellation import ACCOUNT_CANCELLED, Cancellations, cancel
from shared.alerting.lifecycle import AlertState, DayState, LifecycleError
from shared.outcomes.model import CustomerOutcome

pytestmark = pytest.mark.unit

D = date
NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)


def outcome(kind: str, day: date) -> CustomerOutcome:
    return CustomerOutcome("a", kind, day)  # type: ignore[arg-type]


class TestCancelledOn:
    CANCELLATIONS = Cancellations(
        {
            "a": [
                outcome("cancellation", D(2026, 3, 1)),
                outcome("renewal", D(2026, 5, 1)),
                outcome("cancellation", D(2026, 6, 15)),
            ]
        }
    )

    @pytest.mark.parametrize(
        ("day", "cancelled"),
        [
            (D(2026, 2, 28), False),
            (D(2026, 3, 1), True),  # from its effective day on
            (D(2026, 4, 30), True),
            (D(2026, 5, 1), False),  # a renewal reactivates
            (D(2026, 6, 14), False),
            (D(2026, 6, 15), True),
            (D(2030, 1, 1), True),
        ],
    )
    def test_by_day(self, day: date, cancelled: bool) -> None:
        assert self.CANCELLATIONS.on("a", day) is cancelled
        assert self.CANCELLATIONS.cancelled_on(day) == (["a"] if cancelled else [])

    def test_an_account_never_cancelled(self) -> None:
        assert not self.CANCELLATIONS.on("b", D(2026, 4, 1))
        assert not Cancellations()


class TestCancel:
    @pytest.mark.parametrize("status", ["open", "acknowledged", "snoozed"])
    def test_an_active_alert_resolves_with_the_reason(self, status: str) -> None:
        state = AlertState.model_validate(
            {
                "status": status,
                "last_evaluated_as_of": D(2026, 6, 29),
                "opened_at": NOW,
                "snoozed_until": NOW.replace(year=2027) if status == "snoozed" else None,
            }
        )
        done = cancel(state, NOW)
        assert (done.status, done.resolved_by, done.resolved_at) == (
            "resolved",
            ACCOUNT_CANCELLED,
            NOW,
        )
        assert done.manual_resolved_on == D(2026, 6, 29)  # a replay keeps it
        assert done.snoozed_until is None

    @pytest.mark.parametrize("status", ["none", "pending", "resolved"])
    def test_an_inactive_one_is_refused(self, status: str) -> None:
        with pytest.raises(LifecycleError):
            cancel(AlertState.model_validate({"status": status}), NOW)

    def test_the_reason_is_a_valid_day_state(self) -> None:
        # Rows resolved this way feed replays (day_state_of): the reason must validate.
        state = DayState.model_validate({"status": "resolved", "resolved_by": ACCOUNT_CANCELLED})
        assert state.resolved_by == ACCOUNT_CANCELLED

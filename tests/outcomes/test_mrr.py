"""MRR history derived from outcomes and the profile's MRR."""

from __future__ import annotations

from datetime import date

import pytest

from shared.outcomes.model import MrrPoint
from shared.outcomes.mrr import InconsistentOutcomes, derive_mrr_history, mrr_before
from tests.outcomes.portfolio import PORTFOLIO, cancellation, change, renewal

pytestmark = pytest.mark.unit

D = date


def values(points: list[MrrPoint]) -> list[tuple[date, float, str]]:
    return [(p.effective_on, p.mrr, p.cause) for p in points]


class TestBaseline:
    def test_no_outcomes_is_the_profile_from_the_start(self) -> None:
        points = derive_mrr_history([], profile_mrr=250, start=D(2026, 1, 5))
        assert values(points) == [(D(2026, 1, 5), 250.0, "start")]

    @pytest.mark.parametrize(("mrr", "start"), [(None, D(2026, 1, 5)), (250, None), (None, None)])
    def test_no_outcomes_and_no_mrr_or_start_is_no_history(
        self, mrr: float | None, start: date | None
    ) -> None:
        assert derive_mrr_history([], profile_mrr=mrr, start=start) == []

    def test_the_profile_is_the_mrr_after_the_last_change(self) -> None:
        outcomes = [change("a", D(2026, 2, 1), 300), change("a", D(2026, 3, 1), -100)]
        points = derive_mrr_history(outcomes, profile_mrr=1200, start=D(2025, 1, 1))
        # 1200 now = baseline + 300 - 100, so the baseline is 1000.
        assert values(points) == [
            (D(2025, 1, 1), 1000.0, "start"),
            (D(2026, 2, 1), 1300.0, "expansion"),
            (D(2026, 3, 1), 1200.0, "contraction"),
        ]

    def test_a_first_renewal_is_taken_as_flat(self) -> None:
        outcomes = [
            change("a", D(2026, 1, 10), 100),
            renewal("a", D(2026, 3, 1), 900, D(2027, 3, 1)),
        ]
        points = derive_mrr_history(outcomes, profile_mrr=5000, start=D(2025, 3, 1))
        # 900 just before the renewal, less the expansion: 800; the profile is not used.
        assert values(points) == [
            (D(2025, 3, 1), 800.0, "start"),
            (D(2026, 1, 10), 900.0, "expansion"),
            (D(2026, 3, 1), 900.0, "renewal"),
        ]

    def test_mrr_lost_of_a_first_cancellation_sets_the_baseline(self) -> None:
        outcomes = [
            change("a", D(2026, 1, 10), -100),
            cancellation("a", D(2026, 2, 1), mrr_lost=400),
        ]
        points = derive_mrr_history(outcomes, profile_mrr=9999, start=D(2025, 3, 1))
        assert values(points) == [
            (D(2025, 3, 1), 500.0, "start"),
            (D(2026, 1, 10), 400.0, "contraction"),
            (D(2026, 2, 1), 0.0, "cancellation"),
        ]

    def test_a_cancelled_accounts_profile_is_the_mrr_it_had(self) -> None:
        points = derive_mrr_history(
            [cancellation("a", D(2026, 2, 1))], profile_mrr=700, start=D(2025, 3, 1)
        )
        assert values(points) == [
            (D(2025, 3, 1), 700.0, "start"),
            (D(2026, 2, 1), 0.0, "cancellation"),
        ]

    def test_only_changes_and_no_profile_mrr_is_no_history(self) -> None:
        assert (
            derive_mrr_history([change("a", D(2026, 1, 1), 5)], profile_mrr=None, start=None) == []
        )

    @pytest.mark.parametrize("start", [None, D(2026, 3, 1), D(2026, 5, 1)])
    def test_an_unknown_or_late_start_opens_the_day_before_the_first_outcome(
        self, start: date | None
    ) -> None:
        points = derive_mrr_history([change("a", D(2026, 3, 1), 5)], profile_mrr=10, start=start)
        assert points[0] == MrrPoint(D(2026, 2, 28), 5.0, "start")


class TestChanges:
    def test_a_reactivation_restores_the_renewals_mrr(self) -> None:
        outcomes = [
            cancellation("a", D(2026, 2, 1), mrr_lost=200),
            renewal("a", D(2026, 4, 20), 300, D(2027, 4, 20)),
            change("a", D(2026, 6, 1), 50),
        ]
        points = derive_mrr_history(outcomes, profile_mrr=350, start=D(2025, 1, 10))
        assert [p.mrr for p in points] == [200.0, 0.0, 300.0, 350.0]

    def test_one_day_applies_renewal_then_changes_then_cancellation(self) -> None:
        day = D(2026, 3, 1)
        outcomes = [
            cancellation("a", day),
            change("a", day, 100),
            renewal("a", day, 1000, D(2027, 3, 1)),
        ]
        points = derive_mrr_history(outcomes, profile_mrr=None, start=D(2025, 3, 1))
        # Flat renewal at 1000, so 1000 before; the day ends cancelled.
        assert values(points) == [(D(2025, 3, 1), 1000.0, "start"), (day, 0.0, "cancellation")]

    def test_the_portfolio_histories(self) -> None:
        by_id = {h.account_id: [p.mrr for p in h.mrr] for h in PORTFOLIO}
        assert by_id == {
            "A": [1000, 1500],
            "B": [800, 0],
            "C": [450, 400, 400],
            "D": [200, 0, 300],
            "E": [600],
            "F": [150, 250, 100],
        }


class TestContradictions:
    def test_a_change_while_cancelled(self) -> None:
        outcomes = [
            cancellation("acme", D(2026, 2, 1), mrr_lost=100),
            change("acme", D(2026, 3, 1), 10),
        ]
        with pytest.raises(InconsistentOutcomes) as err:
            derive_mrr_history(outcomes, profile_mrr=100, start=None)
        assert "'acme'" in str(err.value) and "2026-03-01" in str(err.value)
        assert err.value.kind == "expansion"

    def test_two_cancellations_without_a_renewal(self) -> None:
        outcomes = [cancellation("a", D(2026, 2, 1)), cancellation("a", D(2026, 3, 1))]
        with pytest.raises(InconsistentOutcomes, match="follows the cancellation on 2026-02-01"):
            derive_mrr_history(outcomes, profile_mrr=100, start=None)

    def test_a_contraction_below_zero(self) -> None:
        outcomes = [
            renewal("a", D(2026, 1, 1), 100, D(2027, 1, 1)),
            change("a", D(2026, 2, 1), -150),
        ]
        with pytest.raises(InconsistentOutcomes, match="below 0"):
            derive_mrr_history(outcomes, profile_mrr=None, start=None)

    def test_a_profile_smaller_than_the_expansions(self) -> None:
        with pytest.raises(InconsistentOutcomes, match="negative MRR"):
            derive_mrr_history([change("a", D(2026, 2, 1), 500)], profile_mrr=100, start=None)


class TestMrrBefore:
    POINTS = [MrrPoint(D(2026, 1, 10), 100, "start"), MrrPoint(D(2026, 2, 1), 0, "cancellation")]

    @pytest.mark.parametrize(
        ("day", "mrr"),
        [
            (D(2026, 1, 10), 0.0),  # not a customer yet when the day begins
            (D(2026, 1, 11), 100.0),
            (D(2026, 2, 1), 100.0),  # the cancellation takes effect during the day
            (D(2026, 2, 2), 0.0),
        ],
    )
    def test_the_mrr_when_a_day_begins(self, day: date, mrr: float) -> None:
        assert mrr_before(self.POINTS, day) == mrr

    def test_an_empty_history_is_zero(self) -> None:
        assert mrr_before([], D(2026, 1, 1)) == 0.0

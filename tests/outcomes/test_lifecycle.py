"""Lifecycle stages: new, growing, renewal, cancelled, and the days they change."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.outcomes.lifecycle import stage_changes, stage_on, term_end_on
from shared.outcomes.model import AccountHistory, CustomerOutcome, OutcomesPolicy, StageChange
from tests.outcomes.portfolio import PORTFOLIO, cancellation, change, create_history, renewal

pytestmark = pytest.mark.unit

D = date
POLICY = OutcomesPolicy(new_days=30, renewal_window_days=90)
BY_ID = {h.account_id: h for h in PORTFOLIO}


class TestStageOn:
    HISTORY = create_history("a", D(2026, 1, 1), mrr=100, renewal_date=D(2026, 12, 31))

    @pytest.mark.parametrize(
        ("day", "stage"),
        [
            (D(2025, 12, 31), None),  # before the start
            (D(2026, 1, 1), "new"),
            (D(2026, 1, 30), "new"),  # day 29
            (D(2026, 1, 31), "growing"),  # day 30: New lasts new_days days
            (D(2026, 10, 1), "growing"),  # 2026-12-31 - 90 days is 2026-10-02
            (D(2026, 10, 2), "renewal"),
            (D(2026, 12, 31), "renewal"),  # the renewal date itself
            (D(2027, 1, 1), "growing"),  # passed with no renewal recorded
        ],
    )
    def test_profile_only(self, day: date, stage: str | None) -> None:
        assert stage_on(self.HISTORY, day, POLICY) == stage

    def test_new_wins_over_a_near_renewal(self) -> None:
        h = create_history("a", D(2026, 1, 1), mrr=100, renewal_date=D(2026, 2, 1))
        assert stage_on(h, D(2026, 1, 15), POLICY) == "new"
        assert stage_on(h, D(2026, 1, 31), POLICY) == "renewal"

    def test_cancelled_wins_and_a_renewal_reactivates(self) -> None:
        h = BY_ID["D"]
        assert stage_on(h, D(2026, 1, 31), POLICY) == "renewal"
        assert stage_on(h, D(2026, 2, 1), POLICY) == "cancelled"
        assert stage_on(h, D(2026, 4, 19), POLICY) == "cancelled"
        assert stage_on(h, D(2026, 4, 20), POLICY) == "growing"

    @pytest.mark.parametrize("days", [0, 1])
    def test_edge_windows(self, days: int) -> None:
        policy = OutcomesPolicy(new_days=days, renewal_window_days=days)
        h = create_history("a", D(2026, 1, 1), mrr=1, renewal_date=D(2026, 6, 1))
        assert stage_on(h, D(2026, 1, 1), policy) == ("new" if days else "growing")
        assert stage_on(h, D(2026, 6, 1), policy) == "renewal"
        assert stage_on(h, D(2026, 5, 31), policy) == ("renewal" if days else "growing")


class TestTermEnd:
    OUTCOMES = [
        renewal("a", D(2026, 3, 1), 400, D(2027, 3, 1)),
        renewal("a", D(2027, 3, 1), 400, D(2028, 3, 1)),
    ]

    @pytest.mark.parametrize(
        ("day", "end"),
        [
            (D(2025, 6, 1), D(2026, 3, 1)),  # before the first renewal: its date
            (D(2026, 3, 1), D(2027, 3, 1)),
            (D(2027, 6, 1), D(2028, 3, 1)),
        ],
    )
    def test_the_term_in_force(self, day: date, end: date) -> None:
        assert term_end_on(self.OUTCOMES, day, D(2099, 1, 1)) == end

    def test_no_renewal_is_the_profiles_date(self) -> None:
        assert term_end_on([], D(2026, 1, 1), D(2026, 9, 1)) == D(2026, 9, 1)


class TestStageChanges:
    def test_the_portfolio(self) -> None:
        until = D(2026, 6, 30)
        assert stage_changes(BY_ID["C"], until, POLICY) == [
            StageChange(D(2025, 3, 1), "new"),
            StageChange(D(2025, 3, 31), "growing"),
            StageChange(D(2025, 12, 1), "renewal"),  # 90 days before 2026-03-01
            StageChange(D(2026, 3, 1), "growing"),  # renewed until 2027-03-01
        ]
        assert stage_changes(BY_ID["D"], until, POLICY) == [
            StageChange(D(2025, 1, 10), "new"),
            StageChange(D(2025, 2, 9), "growing"),
            StageChange(D(2026, 1, 20), "renewal"),
            StageChange(D(2026, 2, 1), "cancelled"),
            StageChange(D(2026, 4, 20), "growing"),
        ]

    def test_nothing_before_the_start(self) -> None:
        assert stage_changes(BY_ID["E"], D(2026, 2, 19), POLICY) == []
        assert stage_changes(create_history("x", None, mrr=1), D(2026, 1, 1), POLICY) == []


START = D(2025, 1, 1)


@st.composite
def histories(draw: st.DrawFn) -> tuple[AccountHistory, date]:
    offsets = sorted(draw(st.sets(st.integers(1, 700), max_size=6)))
    outcomes: list[CustomerOutcome] = []
    cancelled = False
    for off in offsets:
        day = START + timedelta(days=off)
        if cancelled or draw(st.booleans()):
            term = day + timedelta(days=draw(st.integers(1, 400)))
            outcomes.append(renewal("a", day, 100, term))
            cancelled = False
        elif draw(st.booleans()):
            outcomes.append(cancellation("a", day, mrr_lost=100))
            cancelled = True
        else:
            outcomes.append(change("a", day, 10))
    profile_renewal = draw(st.none() | st.integers(0, 800).map(lambda d: START + timedelta(days=d)))
    start = START + timedelta(days=draw(st.integers(0, 30)))
    h = create_history("a", start, mrr=100, outcomes=outcomes, renewal_date=profile_renewal)
    return h, START + timedelta(days=draw(st.integers(0, 900)))


class TestChangesMatchDayByDay:
    @settings(max_examples=60, deadline=None)
    @given(histories(), st.integers(0, 45), st.integers(0, 120))
    def test_boundaries_find_every_change(
        self, drawn: tuple[AccountHistory, date], new_days: int, window: int
    ) -> None:
        history, until = drawn
        policy = OutcomesPolicy(new_days=new_days, renewal_window_days=window)
        expected: list[StageChange] = []
        day = START
        while day <= until:
            stage = stage_on(history, day, policy)
            if stage is not None and (not expected or expected[-1].stage != stage):
                expected.append(StageChange(day, stage))
            day += timedelta(days=1)
        assert stage_changes(history, until, policy) == expected

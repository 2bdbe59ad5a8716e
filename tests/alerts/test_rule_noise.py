"""The trend rules against simulated usage: steady accounts stay quiet, real changes are caught.

Each example simulates an account day by day (:mod:`tests.alerts.usage_sim`), scores every day
with the scorer's pure code and evaluates the rules, counting alert episodes with the default
life cycle. Pure and seeded (hypothesis draws the seeds), so a failure replays exactly.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.alerts.rules import login_plateau
from shared.alert_rules import RulesConfig
from tests.alerts.usage_sim import habits, run_rules, simulate, snapshot

pytestmark = pytest.mark.simulation

CONFIG = RulesConfig()
TREND_RULES = ("login_decline", "login_plateau", "champion_lost")
WARM_UP_DAYS = 12 * 7
"""The first 12 weeks fill the window; a year is judged after them."""
CHANGE = 30 * 7 + 3
"""The day (a Thursday) a behaviour changes in the change tests."""
SLOW = settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

sizes = st.sampled_from([5, 8, 10, 15, 25, 40, 60, 100])
seeds = st.integers(min_value=0, max_value=2**16)


class TestSteadyAccountsStayQuiet:
    @SLOW
    @given(seats=sizes, weekday_chance=st.floats(0.25, 0.9), seed=seeds)
    def test_a_steady_binomial_account_fires_at_most_about_once_a_year(
        self, seats: int, weekday_chance: float, seed: int
    ) -> None:
        # Every user comes on a weekday with the same chance: active in 76% to 100% of weeks.
        usage = simulate(seats, 64, lambda d, u: weekday_chance, seed)
        episodes, _ = run_rules(usage, TREND_RULES, CONFIG, WARM_UP_DAYS)
        for rule in TREND_RULES:
            assert sum(1 for e in episodes if e.rule == rule) <= 2, (rule, episodes)

    @SLOW
    @given(seats=sizes, seed=seeds)
    def test_a_steady_account_of_mixed_habits_fires_at_most_about_once_a_year(
        self, seats: int, seed: int
    ) -> None:
        # 1 to 4.5 weekdays a week per user, 85% of the seats in play.
        h = habits(seats, seed)
        in_play = round(0.85 * seats)
        usage = simulate(seats, 64, lambda d, u: h[u] if u < in_play else 0.0, seed)
        episodes, _ = run_rules(usage, TREND_RULES, CONFIG, WARM_UP_DAYS)
        for rule in TREND_RULES:
            assert sum(1 for e in episodes if e.rule == rule) <= 2, (rule, episodes)

    def test_on_average_under_once_a_year(self) -> None:
        """16 account-years from 5 to 100 seats: each rule's mean false alarms a year."""
        years = 0
        alarms = dict.fromkeys(TREND_RULES, 0)
        for seats in (5, 10, 25, 100):
            for seed in range(4):
                rng = random.Random(seed)
                chance = rng.uniform(0.25, 0.9)
                usage = simulate(seats, 64, lambda d, u, c=chance: c, 7_000 + seed)
                episodes, _ = run_rules(usage, TREND_RULES, CONFIG, WARM_UP_DAYS)
                years += 1
                for e in episodes:
                    alarms[e.rule] += 1
        assert all(n / years <= 1.0 for n in alarms.values()), alarms


class TestRealChangesAreCaught:
    @SLOW
    @given(seats=st.sampled_from([10, 15, 25, 40, 60, 100]), seed=seeds)
    def test_a_40_percent_decline_is_caught_within_14_days(self, seats: int, seed: int) -> None:
        h = habits(seats, seed)
        gone = {u for u in range(seats) if u % 5 in (0, 1)}  # 40% of the users stop
        usage = simulate(seats, 36, lambda d, u: 0.0 if d >= CHANGE and u in gone else h[u], seed)
        episodes, _ = run_rules(usage, ("login_decline",), CONFIG, CHANGE - 14)
        opened = [e.opened - CHANGE for e in episodes]
        assert opened and 0 <= opened[0] <= 14, opened

    @SLOW
    @given(seats=st.sampled_from([25, 40, 60, 100, 250]), seed=seeds)
    def test_a_one_week_holiday_dip_is_not_a_decline(self, seats: int, seed: int) -> None:
        h = habits(seats, seed)
        usage = simulate(
            seats, 36, lambda d, u: h[u] * (0.5 if CHANGE <= d < CHANGE + 7 else 1.0), seed
        )
        episodes, _ = run_rules(usage, ("login_decline",), CONFIG, CHANGE - 7)
        assert episodes == []

    @SLOW
    @given(seats=st.sampled_from([5, 10, 25, 60]), seed=seeds)
    def test_a_lost_champion_is_caught_within_three_weeks(self, seats: int, seed: int) -> None:
        # User 0 comes nearly every weekday, everyone else on 1 to 3.5: u0 is the champion.
        h = habits(seats, seed, high=0.7)
        h[0] = 0.95
        usage = simulate(seats, 36, lambda d, u: 0.0 if u == 0 and d >= CHANGE else h[u], seed)
        assert snapshot(usage, CHANGE - 1).metrics.champion == "u0"
        episodes, _ = run_rules(usage, ("champion_lost",), CONFIG, CHANGE - 28)
        # Their silence began on their last day before the change, a few days earlier.
        opened = [e.opened - CHANGE for e in episodes]
        assert opened and 0 <= opened[0] <= 21, opened

    @SLOW
    @given(seats=st.sampled_from([10, 25, 100, 500]), seed=seeds)
    def test_a_plateau_at_low_regular_use_fires(self, seats: int, seed: int) -> None:
        # Everyone comes on a weekday with a 7.5% chance: about 30% of the seats are active in
        # any week, about 80% within 28 days, but few are regulars.
        usage = simulate(seats, 14, lambda d, u: 0.075, seed)
        s = snapshot(usage, usage.days - 1)
        m = s.metrics
        assert m.seats is not None and m.mau / m.seats >= 0.6
        assert m.seat_utilization is not None and m.seat_utilization < 0.3
        [finding] = login_plateau(s, None, CONFIG.login_plateau)
        assert finding.holds, finding.reason

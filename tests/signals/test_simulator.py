"""The simulated portfolio on its own (pure, seeded): each behaviour looks like its name, and the
report's measures count what they say."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

import pytest

from services.cli.demo_plan import KEY_FEATURES
from shared.alert_rules import RulesConfig
from tests.signals.report import (
    AccountResult,
    allowed_delay,
    band_differences,
    episode_differences,
    first_alert_delay,
)
from tests.signals.runner import Episode, Outcome
from tests.signals.simulator import (
    BEHAVIOURS,
    SMALL_SIZES,
    Behaviour,
    SimAccount,
    build_portfolio,
)

pytestmark = pytest.mark.unit

PORTFOLIO = build_portfolio(1, sizes=SMALL_SIZES)
CALLS = [(day, c) for day, calls in PORTFOLIO.calls() for c in calls]


def of(behaviour: Behaviour) -> SimAccount:
    [account] = [a for a in PORTFOLIO.accounts if a.behaviour is behaviour]
    return account


def active_days(account: SimAccount) -> dict[str, set[date]]:
    """user -> the days they signed in."""
    out: dict[str, set[date]] = defaultdict(set)
    for day, c in CALLS:
        if c.get("event") == "Signed In" and c["context"]["groupId"] == account.account_id:
            out[c["userId"]].add(day)
    return out


def feature_days(account: SimAccount, feature: str) -> list[date]:
    return [
        day
        for day, c in CALLS
        if c["context"]["groupId"] == account.account_id
        and c.get("properties", {}).get("feature") == feature
    ]


def weekly_actives(account: SimAccount, end: date) -> int:
    days = active_days(account)
    return sum(1 for d in days.values() if any(end - timedelta(days=7) < x <= end for x in d))


class TestPortfolio:
    def test_ten_behaviours_five_to_five_hundred_seats_twenty_six_weeks(self) -> None:
        assert {a.behaviour for a in PORTFOLIO.accounts} == set(BEHAVIOURS) and len(
            BEHAVIOURS
        ) >= 10
        seats = [a.seats for a in PORTFOLIO.accounts]
        assert min(seats) == 5 and max(seats) == 500
        assert PORTFOLIO.days == 26 * 7
        assert {a.behaviour for a in PORTFOLIO.accounts if a.expected_rule is None} == {
            Behaviour.STEADY,
            Behaviour.GROWING,
            Behaviour.SEASONAL,
        }

    def test_same_seed_same_calls_other_seed_other_calls(self) -> None:
        def calls(seed: int) -> list[Any]:
            p = build_portfolio(1, seed=seed, sizes=SMALL_SIZES, behaviours=(Behaviour.STEADY,))
            return p.all_calls()

        assert calls(3) == calls(3) and calls(3) != calls(4)

    def test_calls_are_segment_calls_in_the_past_in_time_order(self) -> None:
        stamps = [c["timestamp"] for _, c in CALLS]
        assert stamps == sorted(stamps)
        assert max(stamps) < (PORTFOLIO.end + timedelta(days=1)).isoformat()
        assert len({c["messageId"] for _, c in CALLS}) == len(CALLS)
        types = {c["type"] for _, c in CALLS}
        assert types == {"group", "identify", "track"}
        assert sum(c["type"] == "group" for _, c in CALLS) == len(PORTFOLIO.accounts)

    def test_weekdays_busier_than_weekends(self) -> None:
        logins = [day for day, c in CALLS if c.get("event") == "Signed In"]
        weekday = sum(d.weekday() < 5 for d in logins) / 5
        weekend = sum(d.weekday() >= 5 for d in logins) / 2
        assert weekend < 0.2 * weekday

    def test_accounts_csv_names_every_account_with_its_seats(self) -> None:
        header, *rows = PORTFOLIO.accounts_csv()
        assert header.split(",")[:4] == ["account_id", "name", "plan", "seats"]
        assert {r.split(",")[0]: int(r.split(",")[3]) for r in rows} == {
            a.account_id: a.seats for a in PORTFOLIO.accounts
        }


class TestBehaviours:
    def test_plateau_a_third_of_seats_weekly_most_of_them_in_28_days(self) -> None:
        a = of(Behaviour.PLATEAU)
        end = PORTFOLIO.end
        days = active_days(a)
        weekly = weekly_actives(a, end) / a.seats
        monthly = sum(1 for d in days.values() if any(x > end - timedelta(days=28) for x in d))
        assert 0.22 <= weekly <= 0.38
        assert 0.7 <= monthly / a.seats <= 0.9

    def test_seasonal_dip_halves_one_week_then_recovers(self) -> None:
        # Large enough for the week-to-week noise to be small against a halving.
        p = build_portfolio(1, sizes={Behaviour.SEASONAL: (250,)}, behaviours=(Behaviour.SEASONAL,))
        [a] = p.accounts
        logins: dict[date, int] = defaultdict(int)
        for day, calls in p.calls():
            logins[day] = sum(c.get("event") == "Signed In" for c in calls)

        def week(start: date) -> int:
            return sum(logins[start + timedelta(days=i)] for i in range(7))

        before, dip, after = (week(a.change + timedelta(days=7 * w)) for w in (-1, 0, 1))
        assert dip < 0.65 * before and after > 0.8 * before

    def test_dormant_silent_from_its_change(self) -> None:
        a = of(Behaviour.DORMANT)
        last = max(d for days in active_days(a).values() for d in days)
        assert last < a.change and (a.change - last).days <= 7

    def test_abandoned_feature_stops_never_adopted_never_starts(self) -> None:
        a = of(Behaviour.ABANDONED)
        used = feature_days(a, a.expected_feature)
        assert used and max(used) < a.change
        assert feature_days(a, "reports") and max(feature_days(a, "reports")) > a.change
        assert feature_days(of(Behaviour.NEVER_ADOPTED), "integrations") == []

    def test_lost_champion_was_the_most_regular_user_then_stops_others_go_on(self) -> None:
        a = of(Behaviour.LOST_CHAMPION)
        days = active_days(a)
        before = {u: sum(d < a.change for d in ds) for u, ds in days.items()}
        assert max(before, key=before.__getitem__) == a.users[0]
        assert all(d < a.change for d in days[a.users[0]])
        assert sum(1 for ds in days.values() if any(d >= a.change for d in ds)) >= 0.6 * a.seats

    def test_decline_loses_most_weekly_actives(self) -> None:
        a = of(Behaviour.DECLINE)
        before = weekly_actives(a, a.change - timedelta(days=1))
        assert weekly_actives(a, PORTFOLIO.end) < 0.55 * before

    def test_near_seat_limit_uses_every_seat_in_28_days(self) -> None:
        a = of(Behaviour.NEAR_SEAT_LIMIT)
        end = PORTFOLIO.end
        days = active_days(a)
        assert sum(1 for d in days.values() if any(x > end - timedelta(days=28) for x in d)) >= (
            0.9 * a.seats
        )

    def test_every_key_feature_in_use_on_a_steady_account(self) -> None:
        a = of(Behaviour.STEADY)
        assert all(feature_days(a, f) for f in KEY_FEATURES)


def episode(rule: str, opened: date, resolved: date | None = None, feature: str = "") -> Episode:
    return Episode("acct", rule, feature, opened, resolved)


class TestReport:
    account = of(Behaviour.DORMANT)

    def test_delay_counts_from_the_change_to_the_first_opening_on_the_rule(self) -> None:
        c = self.account.change
        assert first_alert_delay(self.account, [episode("dormant", c + timedelta(days=15))]) == 15
        assert first_alert_delay(self.account, [episode("health_red", c)]) is None
        over = episode("dormant", c - timedelta(days=30), c - timedelta(days=20))
        assert first_alert_delay(self.account, [over]) is None
        assert first_alert_delay(self.account, [episode("dormant", c - timedelta(days=3))]) == 0
        assert allowed_delay("dormant", RulesConfig()) == 14 + 14

    def test_reopenings_per_account_and_quarter(self) -> None:
        d = date(2026, 7, 1)
        eps = [
            episode("dormant", d, d + timedelta(days=3)),
            episode("dormant", d + timedelta(days=10), d + timedelta(days=12)),
            episode("dormant", d + timedelta(days=20)),
            Episode("acct", "login_decline", "", d, None, reopenings=1),
        ]
        r = AccountResult(self.account, "red", eps, 0, None)
        assert r.reopenings == 3
        assert dict(r.reopenings_by_quarter()) == {(2026, 2): 3}

    def test_band_and_episode_differences_between_orders(self) -> None:
        d = date(2026, 7, 1)
        one = Outcome("stream", scores={("a", d): (80.0, "green"), ("b", d): (50.0, "yellow")})
        two = Outcome("at_once", scores={("a", d): (80.0, "green"), ("b", d): (30.0, "red")})
        three = Outcome("shuffled", scores={("a", d): (80.0, "green")})
        assert band_differences([one, two, three]) == (2, 1)
        assert band_differences([one, one]) == (2, 0)
        one.episodes = [episode("dormant", d)]
        two.episodes = [episode("dormant", d), episode("health_red", d)]
        assert episode_differences([one, two]) == 1

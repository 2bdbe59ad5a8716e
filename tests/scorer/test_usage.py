"""Rolling usage metrics against hand-computed cases."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from services.scorer.activity import AccountActivity, AccountProfile, FeatureActivity, UserWeeks
from services.scorer.usage import (
    UsageMetrics,
    account_start,
    compute_metrics,
    least_squares_slope,
    week_range,
)
from shared.scoring_model import TrendWindows

AS_OF = date(2026, 11, 2)
KEYS = ("reports", "dashboards", "exports")


def day(n: int) -> date:
    """``n`` days before AS_OF."""
    return AS_OF - timedelta(days=n)


def create_activity(
    *,
    seats: int | None = 10,
    created_at: date | None = None,
    age: int | None = 400,
    profile: dict[str, Any] | None = None,
    **kw: Any,
) -> AccountActivity:
    """An account ``age`` days old (created_at) unless created_at is given."""
    if created_at is None and age is not None:
        created_at = day(age)
    p = AccountProfile(account_id="acme", seats=seats, created_at=created_at, **(profile or {}))
    return AccountActivity(profile=p, as_of=AS_OF, **kw)


def metrics(keys: tuple[str, ...] = KEYS, **kw: Any) -> UsageMetrics:
    return compute_metrics(create_activity(**kw), keys)


class TestCounts:
    def test_no_events_ever(self) -> None:
        m = compute_metrics(create_activity(age=None), KEYS)
        assert (m.dau, m.wau, m.mau, m.mean_dau) == (0, 0, 0, 0.0)
        assert m.stickiness is None
        assert m.seat_utilization == 0.0
        assert m.days_since_last_login is None
        assert m.started is None and m.account_age_days is None
        assert m.trend_current is None and m.trend_baseline is None and m.trend_ratio is None
        assert m.trend_slope is None and m.trend_slope_weeks == 0
        assert m.weekly_active_users == (0,) * 12
        assert m.time_to_first_value_days is None
        assert m.key_features_used == 0 and m.feature_breadth == 0.0

    @pytest.mark.parametrize(
        ("daily", "dau"),
        [((), 0), ((3,), 3), ((1, 2, 3), 3), ((5,) * 27 + (0,), 0), ((0,) * 30 + (7,), 7)],
    )
    def test_dau_is_the_last_day(self, daily: tuple[int, ...], dau: int) -> None:
        assert metrics(daily_active_users=daily).dau == dau

    def test_wau_mau_pass_through(self) -> None:
        m = metrics(wau=4, mau=9)
        assert (m.wau, m.mau) == (4, 9)

    def test_weekly_series_padded_to_12_oldest_first(self) -> None:
        m = metrics(weekly_active_users=(1, 2, 3), weekly_logins=(4,))
        assert m.weekly_active_users == (0,) * 9 + (1, 2, 3)
        assert m.weekly_logins == (0,) * 11 + (4,)

    def test_weekly_series_longer_than_12_keeps_the_last(self) -> None:
        m = metrics(weekly_active_users=tuple(range(14)))
        assert m.weekly_active_users == tuple(range(2, 14))

    def test_json_round_trip(self) -> None:
        m = metrics(
            mau=3,
            daily_active_users=(1, 2),
            features=(FeatureActivity("reports", day(9), day(1), 4, 2),),
        )
        assert UsageMetrics.model_validate_json(m.model_dump_json()) == m


class TestSeatUtilization:
    @pytest.mark.parametrize(
        ("mau", "seats", "expected"),
        [
            (33, 120, 0.275),
            (0, 10, 0.0),
            (1, 1, 1.0),
            (8, 10, 0.8),
            (12, 10, 1.2),
            (10, None, None),
            (10, 0, None),
            (10, -3, None),
            (0, None, None),
        ],
    )
    def test_regular_users_over_seats(
        self, mau: int, seats: int | None, expected: float | None
    ) -> None:
        # Each of the ``mau`` users active in every one of the 12 weeks: all regular.
        users = tuple(
            UserWeeks(user_id=f"u{i}", active_days=(1,) * 12, events=(1,) * 12) for i in range(mau)
        )
        m = metrics(mau=mau + 5, seats=seats, users=users)
        assert m.regular_users == mau and m.regular_weeks == 4
        assert m.seat_utilization == (pytest.approx(expected) if expected is not None else None)

    def test_before_a_whole_week_mau_over_seats(self) -> None:
        m = metrics(mau=4, seats=10, age=5)
        assert m.regular_users is None and m.seat_utilization == pytest.approx(0.4)

    @pytest.mark.parametrize(("seats", "shown"), [(0, None), (None, None), (5, 5)])
    def test_unknown_seats_are_none_not_zero(self, seats: int | None, shown: int | None) -> None:
        assert metrics(seats=seats).seats == shown

    @pytest.mark.parametrize(
        ("activated", "seats", "expected"), [(0, 10, 0.0), (5, 10, 0.5), (3, None, None)]
    )
    def test_seats_activated(
        self, activated: int, seats: int | None, expected: float | None
    ) -> None:
        assert metrics(activated_users=activated, seats=seats).seats_activated == expected


class TestStickiness:
    def test_mean_dau_over_28_days(self) -> None:
        m = metrics(daily_active_users=(2,) * 14 + (4,) * 14, mau=10)
        assert m.mean_dau == pytest.approx(3.0)
        assert m.stickiness == pytest.approx(0.3)

    def test_missing_days_count_as_zero(self) -> None:
        m = metrics(daily_active_users=(7,), mau=7)
        assert m.mean_dau == pytest.approx(0.25)
        assert m.stickiness == pytest.approx(1 / 28)

    def test_young_account_averages_over_its_own_days(self) -> None:
        # 10 days old: 11 days of life in the window (day 0 .. day 10).
        m = metrics(age=10, daily_active_users=(2,) * 11, mau=4)
        assert m.mean_dau == pytest.approx(2.0)
        assert m.stickiness == pytest.approx(0.5)

    def test_single_day_account(self) -> None:
        m = metrics(age=0, daily_active_users=(3,), mau=3)
        assert m.mean_dau == 3.0 and m.stickiness == 1.0

    def test_mau_zero_is_none(self) -> None:
        assert metrics(daily_active_users=(0,) * 28, mau=0).stickiness is None

    @pytest.mark.parametrize("n", [1, 2, 5, 28])
    def test_everyone_every_day_is_one(self, n: int) -> None:
        assert metrics(daily_active_users=(n,) * 28, mau=n).stickiness == pytest.approx(1.0)


class TestFeatureBreadth:
    def test_none_when_no_key_features(self) -> None:
        m = metrics(keys=(), features=(FeatureActivity("reports", uses_28d=3),))
        assert m.feature_breadth is None and m.key_features_total == 0 and m.features == ()

    @pytest.mark.parametrize(
        ("used", "expected"),
        [((), 0.0), (("reports",), 1 / 3), (("reports", "exports"), 2 / 3), (KEYS, 1.0)],
    )
    def test_used_over_total(self, used: tuple[str, ...], expected: float) -> None:
        feats = tuple(FeatureActivity(f, day(40), day(1), 5, 2) for f in used)
        m = metrics(features=feats)
        assert m.feature_breadth == pytest.approx(expected)
        assert m.key_features_used == len(used)

    def test_only_28_day_uses_count(self) -> None:
        m = metrics(features=(FeatureActivity("reports", day(90), day(40), 0, 0),))
        assert m.key_features_used == 0
        (reports,) = [f for f in m.features if f.feature == "reports"]
        assert reports.days_since_last_use == 40 and reports.last_used == day(40)

    def test_every_key_feature_listed_in_config_order(self) -> None:
        m = metrics(features=(FeatureActivity("exports", day(3), day(2), 7, 3),))
        assert [f.feature for f in m.features] == list(KEYS)
        ex = m.features[2]
        assert (ex.uses_28d, ex.users_28d, ex.days_since_last_use) == (7, 3, 2)
        assert m.features[0].days_since_last_use is None

    def test_non_key_features_ignored_and_duplicates_once(self) -> None:
        m = compute_metrics(
            create_activity(features=(FeatureActivity("other", uses_28d=9),)),
            ("reports", "reports"),
        )
        assert [f.feature for f in m.features] == ["reports"]
        assert m.key_features_used == 0


class TestDates:
    def test_start_is_the_earlier_of_created_and_first_seen(self) -> None:
        a = create_activity(created_at=day(10), first_seen=day(20))
        assert account_start(a) == day(20)
        b = create_activity(created_at=day(30), first_seen=day(20))
        assert account_start(b) == day(30)
        assert account_start(create_activity(age=None, first_seen=day(5))) == day(5)
        assert account_start(create_activity(age=None)) is None

    @pytest.mark.parametrize("age", [0, 1, 29, 30, 400])
    def test_age(self, age: int) -> None:
        assert metrics(age=age).account_age_days == age

    @pytest.mark.parametrize(
        ("last_login", "days"), [(None, None), (AS_OF, 0), (day(1), 1), (day(45), 45)]
    )
    def test_days_since_last_login(self, last_login: date | None, days: int | None) -> None:
        m = metrics(last_login=last_login, last_active=last_login)
        assert m.days_since_last_login == days and m.days_since_last_active == days

    @pytest.mark.parametrize(
        ("first_uses", "expected"),
        [
            ((), None),
            ((day(90),), 10),
            ((day(95), day(80)), 5),
            ((day(100),), 0),
            ((day(120),), 0),  # used before created_at was recorded: 0, never negative
        ],
    )
    def test_time_to_first_value(self, first_uses: tuple[date, ...], expected: int | None) -> None:
        feats = tuple(
            FeatureActivity(k, u, u, 0, 0) for k, u in zip(KEYS, first_uses, strict=False)
        )
        m = metrics(created_at=day(100), features=feats)
        assert m.time_to_first_value_days == expected
        assert m.first_value == (min(first_uses) if first_uses else None)

    def test_time_to_first_value_needs_a_key_feature(self) -> None:
        m = metrics(keys=(), features=(FeatureActivity("reports", day(1), day(1), 1, 1),))
        assert m.time_to_first_value_days is None

    @pytest.mark.parametrize(
        ("renewal", "days"), [(None, None), (AS_OF, 0), (day(-60), 60), (day(3), -3)]
    )
    def test_days_to_renewal(self, renewal: date | None, days: int | None) -> None:
        m = metrics(profile={"renewal_date": renewal})
        assert m.renewal_date == renewal and m.days_to_renewal == days

    def test_champion_with_their_dates(self) -> None:
        users = (
            UserWeeks(
                user_id="u-1",
                active_days=(2,) * 9 + (0, 0, 0),
                events=(5,) * 9 + (0, 0, 0),
                last_active=day(21),
                last_login=day(22),
            ),
            UserWeeks(user_id="u-2", active_days=(1,) * 12, events=(1,) * 12, last_active=day(0)),
        )
        m = metrics(users=users)
        assert (m.champion, m.champion_source, m.champion_last_active) == (
            "u-1",
            "inferred",
            day(21),
        )
        assert (m.champion_days_since_active, m.champion_weeks_active) == (21, 9)
        assert m.champion_weeks_observed == 9
        assert (m.top_user, m.top_user_last_login, m.top_user_days_since_login) == (
            "u-1",
            day(22),
            22,
        )

    def test_named_champion_wins(self) -> None:
        users = (UserWeeks(user_id="u-2", active_days=(1,) * 12, events=(1,) * 12),)
        m = metrics(users=users, profile={"champion": "boss"})
        assert (m.champion, m.champion_source, m.champion_last_active) == ("boss", "named", None)

    def test_first_week_logins_and_activated_passed_through(self) -> None:
        m = metrics(first_week_logins=6, activated_users=4)
        assert (m.first_week_logins, m.activated_users) == (6, 4)


class TestSlope:
    @pytest.mark.parametrize(
        ("values", "slope"),
        [
            ((), None),
            ((5,), None),
            ((1, 2), 1.0),
            ((3, 3, 3), 0.0),
            ((1, 2, 3, 4), 1.0),
            ((10, 8, 6, 4, 2, 0), -2.0),
            ((1, 3, 2), 0.5),
            ((0, 0, 0, 0, 0, 6), 6 * 2.5 / 17.5),
        ],
    )
    def test_least_squares(self, values: tuple[float, ...], slope: float | None) -> None:
        got = least_squares_slope(values)
        assert got == (pytest.approx(slope) if slope is not None else None)


def weeks(*values: int) -> tuple[int, ...]:
    """A 12-week series given oldest first."""
    assert len(values) == 12
    return values


class TestLoginTrend:
    def test_flat_account_holds_its_baseline(self) -> None:
        m = metrics(weekly_active_users=(10,) * 12, weekly_logins=(50,) * 12)
        assert m.trend_current == 10 and m.trend_baseline == 10 and m.trend_ratio == 1.0
        assert m.trend_baseline_weeks == 8
        assert m.trend_slope == 0.0 and m.trend_relative_slope == 0.0
        assert m.logins_slope == 0.0 and m.trend_slope_weeks == 6

    def test_hand_computed_decline(self) -> None:
        # k (weeks back): 11..4 baseline -> [20,22,21,19,20,30,18,20] -> median 20;
        # k 3 skipped; k 2..0 current -> (12, 10, 8) -> mean 10.
        m = metrics(weekly_active_users=weeks(20, 22, 21, 19, 20, 30, 18, 20, 15, 12, 10, 8))
        assert m.trend_baseline == 20.0
        assert m.trend_current == 10.0
        assert m.trend_ratio == 0.5
        # slope over the last 6 weeks: 18, 20, 15, 12, 10, 8 -> -41.5 / 17.5; mean 83 / 6
        assert m.trend_slope == pytest.approx(-41.5 / 17.5)
        assert m.trend_relative_slope == pytest.approx((-41.5 / 17.5) / (83 / 6))

    def test_growth_ratio_above_one(self) -> None:
        m = metrics(weekly_active_users=weeks(5, 5, 5, 5, 5, 5, 5, 5, 8, 9, 10, 11))
        assert m.trend_ratio == pytest.approx(2.0)
        assert m.trend_slope is not None and m.trend_slope > 0

    @pytest.mark.parametrize("scale", [1, 10, 1000])
    def test_relative_slope_is_size_free(self, scale: int) -> None:
        base = (20, 20, 20, 20, 20, 20, 12, 11, 10, 9, 8, 7)
        m = metrics(weekly_active_users=tuple(v * scale for v in base))
        assert m.trend_relative_slope == pytest.approx(-1.0 / 9.5)

    @pytest.mark.parametrize(
        ("age", "baseline_weeks", "has_baseline"),
        [
            (0, 0, False),
            (27, 0, False),
            (34, 1, False),  # week 4 back starts on day 34: one full baseline week
            (40, 1, False),
            (41, 2, True),
            (83, 8, True),
            (84, 8, True),
            (400, 8, True),
        ],
    )
    def test_baseline_counts_only_whole_weeks_of_life(
        self, age: int, baseline_weeks: int, has_baseline: bool
    ) -> None:
        m = metrics(age=age, weekly_active_users=(6,) * 12)
        assert m.trend_baseline_weeks == baseline_weeks
        assert (m.trend_baseline is not None) is has_baseline

    def test_young_account_is_not_judged_on_zeros_before_it_existed(self) -> None:
        # 6 weeks old: weeks 6..11 back predate it and must not drag the baseline to 0.
        m = metrics(age=41, weekly_active_users=weeks(0, 0, 0, 0, 0, 0, 9, 10, 9, 9, 9, 9))
        assert m.trend_baseline == pytest.approx(9.5)
        assert m.trend_ratio == pytest.approx(9 / 9.5)

    @pytest.mark.parametrize(("age", "fitted"), [(6, 0), (13, 0), (20, 3), (41, 6)])
    def test_slope_needs_three_whole_weeks(self, age: int, fitted: int) -> None:
        m = metrics(age=age, weekly_active_users=(4,) * 12, weekly_logins=(4,) * 12)
        assert m.trend_slope_weeks == fitted
        assert (m.trend_slope is None) is (fitted == 0)
        assert (m.logins_slope is None) is (fitted == 0)

    def test_current_level_of_a_young_account_uses_its_whole_weeks(self) -> None:
        m = metrics(age=8, weekly_active_users=(0,) * 10 + (3, 5))
        assert m.trend_current == 5.0

    def test_baseline_zero_gives_no_ratio(self) -> None:
        m = metrics(weekly_active_users=weeks(0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3))
        assert m.trend_baseline == 0.0 and m.trend_ratio is None

    def test_relative_slope_none_for_silent_weeks(self) -> None:
        m = metrics(weekly_active_users=(0,) * 12)
        assert m.trend_slope == 0.0 and m.trend_relative_slope is None

    def test_windows_are_configurable(self) -> None:
        w = TrendWindows(current_weeks=1, baseline_skip_weeks=1, lookback_weeks=3, slope_weeks=3)
        a = create_activity(weekly_active_users=weeks(0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 20, 5))
        m = compute_metrics(a, KEYS, w)
        assert m.trend_current == 5 and m.trend_baseline == 15.0
        assert m.trend_slope == pytest.approx(-2.5)

    def test_median_is_robust_to_one_spike(self) -> None:
        m = metrics(weekly_active_users=weeks(10, 10, 10, 10, 10, 10, 10, 500, 10, 10, 10, 10))
        assert m.trend_baseline == 10.0


class TestWeekRange:
    @pytest.mark.parametrize(("k", "first", "last"), [(0, 6, 0), (1, 13, 7), (11, 83, 77)])
    def test_week_k_back(self, k: int, first: int, last: int) -> None:
        assert week_range(AS_OF, k) == (day(first), day(last))

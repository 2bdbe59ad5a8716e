"""Alert rules on hand-made snapshots, at and around their thresholds; the rules config."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.alerts.rules import RULES, Finding, ScoreHistory, ScorePoint, evaluate
from shared.alert_rules import RULE_NAMES, RulesConfig
from shared.config import ConfigError, load_config, parse_config
from shared.scores import EXAMPLE_SCORE, FeatureUsage, Scorecard, ScoreMessage

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "tend.yaml"
AS_OF = EXAMPLE_SCORE.as_of
DEFAULTS = RulesConfig()


def create_snapshot(metrics: dict[str, Any] | None = None, **overrides: Any) -> ScoreMessage:
    """EXAMPLE_SCORE with top-level fields and ``metrics`` fields replaced."""
    update = dict(overrides)
    if metrics:
        update["metrics"] = EXAMPLE_SCORE.metrics.model_copy(update=metrics)
    return EXAMPLE_SCORE.model_copy(update=update)


def run(
    rule: str, snapshot: ScoreMessage, history: ScoreHistory | None = None, **cfg: Any
) -> list[Finding]:
    config = parse_config({"rules": {rule: cfg}}).rules if cfg else DEFAULTS
    found = evaluate(snapshot, history, config)
    # The backtest's verdicts without the text: the same rules, features and holds.
    verdicts = evaluate(snapshot, history, config, explain=False)
    assert [(f.rule, f.feature, f.holds) for f in verdicts] == [
        (f.rule, f.feature, f.holds) for f in found
    ]
    for f in found:
        # The rules construct their findings without validation: validating gives the same.
        assert Finding.model_validate(f.model_dump()) == f, f
        assert type(f.facts) is dict and all(type(v) is not tuple for v in f.facts.values())
    return [f for f in found if f.rule == rule]


def one(
    rule: str, snapshot: ScoreMessage, history: ScoreHistory | None = None, **cfg: Any
) -> Finding:
    found = run(rule, snapshot, history, **cfg)
    assert len(found) == 1, found
    return found[0]


def seats_snapshot(mau: int, seats: int | None, **more: Any) -> ScoreMessage:
    util = mau / seats if seats else None
    return create_snapshot(
        {"mau": mau, "seats": seats, "seat_utilization": util, **more.pop("metrics", {})},
        seats=seats,
        **more,
    )


def flat(
    series: tuple[int, ...] = (30, 31, 33, 35, 38, 40, 41, 40, 42, 41, 40, 41),
    regular: int | None = 30,
    seats: int | None = 120,
    mau: int = 40,
    **metrics: Any,
) -> ScoreMessage:
    """Weekly actives that grew, then stopped at about 41, with ``regular`` regular users."""
    return seats_snapshot(
        mau,
        seats,
        metrics={"weekly_active_users": series, "regular_users": regular, **metrics},
    )


def weeks_of(*tail: int, level: int = 41) -> tuple[int, ...]:
    return (level,) * (12 - len(tail)) + tail


class TestLoginPlateau:
    @pytest.mark.parametrize(
        ("tail", "holds"),
        [
            pytest.param((41,) * 8, True, id="flat"),
            pytest.param((40, 41, 42, 40, 41, 42, 41, 40), True, id="noise"),
            pytest.param((32, 34, 36, 38, 40, 42, 44, 46), False, id="growing 2 a week (5%)"),
            pytest.param((46, 44, 42, 40, 38, 36, 34, 32), False, id="falling 2 a week"),
            pytest.param((40, 40, 41, 41, 42, 42, 43, 43), True, id="0.5 a week is within 3%"),
        ],
    )
    def test_flat_means_no_trend_beyond_the_band_and_the_noise(
        self, tail: tuple[int, ...], holds: bool
    ) -> None:
        assert one("login_plateau", flat(weeks_of(*tail))).holds is holds

    def test_a_small_accounts_noise_is_not_a_trend(self) -> None:
        # 10 seats: 3, 2, 4, 3, 4, 2 is a slope of 0.03 users a week, well inside the noise; a
        # 5%-a-week rule on the raw slope would call each jump a trend.
        snap = flat((3,) * 6 + (3, 2, 4, 3, 4, 2), regular=2, seats=10, mau=6)
        f = one("login_plateau", snap)
        assert f.holds and f.facts["flat_band"] > 0.03 * 3

    def test_a_clear_growth_in_a_small_account_is_not_flat(self) -> None:
        snap = flat((1,) * 6 + (1, 2, 3, 4, 5, 6), regular=3, seats=10, mau=7)
        assert not one("login_plateau", snap).holds

    @pytest.mark.parametrize(
        ("regular", "holds"),
        [(30, True), (60, True), (62, False), (72, False), (96, False), (0, True)],
    )
    def test_room_to_grow_counts_regular_users(self, regular: int, holds: bool) -> None:
        # 72 of 120 is exactly 60%; 62 is under it but within 2 binomial sd (about 11 seats).
        assert one("login_plateau", flat(weeks_of(), regular=regular)).holds is holds

    def test_low_regular_use_is_room_even_with_most_seats_seen_in_28_days(self) -> None:
        # 30% of the seats active in any week, 80% seen at some point in 28 days.
        snap = seats_snapshot(8, 10, metrics={"weekly_active_users": (3,) * 12, "regular_users": 1})
        f = one("login_plateau", snap)
        assert f.holds and f.facts["mau"] == 8 and f.facts["seat_utilization"] == 0.1

    def test_reason_carries_the_numbers(self) -> None:
        f = one("login_plateau", flat(weeks_of(42, 41, 40, 41, 41, 41)))
        assert f.reason == (
            "weekly actives 41, 41, 42, 41, 40, 41, 41, 41 over 8 weeks (trend -0.1% a week; "
            "flat within ±1.2 a week, the larger of 3% of the level and 2 standard errors); "
            "30 of 120 seats used regularly (25%; 40 active in 28 days), room to grow below 60%"
        )
        assert f.next_step == "Book a usage review with u-42; 90 seats are not used regularly."
        assert f.facts["series"] == [41, 41, 42, 41, 40, 41, 41, 41]
        assert f.severity == "warning" and f.feature == ""

    @pytest.mark.parametrize(
        "snapshot",
        [
            pytest.param(flat((0,) * 12), id="no activity (no level)"),
            pytest.param(flat(seats=None), id="unknown seats"),
            pytest.param(flat(regular=None), id="no regular users measured"),
            pytest.param(flat(account_age_days=26), id="3 whole weeks lived"),
            pytest.param(flat(account_age_days=None), id="unknown age"),
        ],
    )
    def test_missing_data_is_not_evaluable(self, snapshot: ScoreMessage) -> None:
        assert run("login_plateau", snapshot) == []

    def test_weeks_band_and_room_configurable(self) -> None:
        young = one("login_plateau", flat(account_age_days=40))
        assert young.holds and young.facts["weeks"] == 5
        assert run("login_plateau", flat(account_age_days=40), min_weeks=6) == []
        grow = flat(weeks_of(32, 34, 36, 38, 40, 42, 44, 46))
        assert one("login_plateau", grow, relative_slope=0.1).holds
        assert not one("login_plateau", flat(), seat_utilization_below=0.2).holds

    def test_logins_series(self) -> None:
        snap = create_snapshot(
            {
                "weekly_active_users": weeks_of(4, 8, 12, 16, 20, 24, 28, 32),
                "weekly_logins": (100,) * 12,
            }
        )
        assert not one("login_plateau", snap).holds
        f = one("login_plateau", snap, series="weekly_logins")
        assert f.holds and f.reason.startswith("weekly logins 100, 100, 100, 100, 100, 100, 100")


def decline(
    *current: int, baseline: tuple[int, ...] = (10,) * 8, seats: int = 120, **metrics: Any
) -> ScoreMessage:
    """Weekly actives ``baseline`` then ``current``; users seen in 28 days a bit above the
    baseline's best week (the users in play)."""
    series = (10,) * (12 - len(baseline) - len(current)) + baseline + current
    return create_snapshot(
        {
            "weekly_active_users": series,
            "trend_relative_slope": None,
            "seats": seats,
            "mau": round(1.15 * max(baseline)),
            **metrics,
        },
        seats=seats,
    )


class TestLoginDecline:
    @pytest.mark.parametrize(
        ("current", "baseline", "holds"),
        [
            pytest.param((100, 100), (140,) * 8, True, id="-29% twice, 140 of 1000"),
            pytest.param((112, 112), (140,) * 8, True, id="exactly 80% twice"),
            pytest.param((133, 112), (140,) * 8, True, id="95% then exactly 80%"),
            pytest.param((134, 112), (140,) * 8, False, id="95.7% then 80%: not yet down"),
            pytest.param((100, 113), (140,) * 8, False, id="then 80.7%"),
            pytest.param((140, 70), (140,) * 8, False, id="one week's dip"),
            pytest.param((70, 140), (140,) * 8, False, id="a dip that recovered"),
            pytest.param((0, 0), (140,) * 8, True, id="gone"),
            pytest.param((100, 100), (140, 140, 140, 140, 70, 140, 140, 140), True, id="median"),
        ],
    )
    def test_last_week_down_the_one_before_already_down_on_the_baseline_median(
        self, current: tuple[int, int], baseline: tuple[int, ...], holds: bool
    ) -> None:
        snap = decline(*current, baseline=baseline, seats=1000)
        assert one("login_decline", snap).holds is holds

    @pytest.mark.parametrize(
        ("seats", "level", "current", "holds"),
        [
            # 7 of 10 seats active a week: noise sd ~1.6, so a 30% drop is within 2 sd.
            pytest.param(10, 7, 5, False, id="10 seats: 7 -> 5 is noise"),
            pytest.param(10, 7, 3, True, id="10 seats: 7 -> 3"),
            pytest.param(1000, 700, 550, True, id="1000 seats: 700 -> 550"),
            pytest.param(1000, 700, 570, False, id="1000 seats: 700 -> 570 (81%)"),
        ],
    )
    def test_small_accounts_need_a_larger_relative_drop(
        self, seats: int, level: int, current: int, holds: bool
    ) -> None:
        snap = decline(current, current, baseline=(level,) * 8, seats=seats)
        assert one("login_decline", snap).holds is holds

    def test_a_noisy_baseline_widens_the_noise(self) -> None:
        calm = decline(60, 60, baseline=(100,) * 8, seats=1000)
        noisy = decline(60, 60, baseline=(60, 140, 60, 140, 100, 60, 140, 100), seats=1000)
        assert one("login_decline", calm).holds and not one("login_decline", noisy).holds

    @pytest.mark.parametrize(
        ("slope", "holds"), [(-0.10, True), (-0.5, True), (-0.0999, False), (0.0, False)]
    )
    def test_optional_negative_slope(self, slope: float, holds: bool) -> None:
        snap = decline(10, 10, trend_relative_slope=slope)
        assert not one("login_decline", snap).holds
        assert one("login_decline", snap, relative_slope=-0.1).holds is holds

    def test_reason(self) -> None:
        f = one("login_decline", decline(100, 90, baseline=(140,) * 8, seats=1000))
        assert f.reason == (
            "weekly actives 100, 90 in the last 2 weeks vs a median of 140 over the 8 weeks "
            "before (140, 140, 140, 140, 140, 140, 140, 140): 71.4%, 64.3%; alert when the last "
            "is at most 80% of the median (112), the weeks before it at most 95% (133), and "
            "their mean 2.5 standard deviations below the median (at most 131; noise ±4.7 a "
            "week)"
        )
        assert f.facts["baseline_median"] == 140.0 and f.facts["current"] == [100, 90]

    @pytest.mark.parametrize(
        "snapshot",
        [
            pytest.param(decline(0, 0, baseline=(0,) * 8), id="baseline 0"),
            pytest.param(decline(3, 3, account_age_days=27), id="4 whole weeks lived"),
            pytest.param(decline(3, 3, account_age_days=None), id="unknown age"),
        ],
    )
    def test_missing_data_is_not_evaluable(self, snapshot: ScoreMessage) -> None:
        assert run("login_decline", snapshot) == []

    def test_five_whole_weeks_are_enough(self) -> None:
        # 35 days old: 2 current weeks and a baseline of 3.
        f = one("login_decline", decline(1, 1, account_age_days=35))
        assert f.holds and f.facts["baseline"] == [10, 10, 10]

    def test_window_configurable(self) -> None:
        dip = decline(70, 14, baseline=(70,) * 8, seats=1000)
        assert not one("login_decline", dip).holds
        assert one("login_decline", dip, current_weeks=1).holds
        assert one("login_decline", decline(50, 50, baseline=(70,) * 8), ratio=0.75).holds
        snap = decline(5, 5, baseline=(30, 30, 30, 30, 30, 30, 5, 5), seats=1000)
        assert one("login_decline", snap).holds
        assert not one("login_decline", snap, trailing_weeks=3).holds


class TestDormant:
    @pytest.mark.parametrize(("days", "holds"), [(0, False), (13, False), (14, True), (90, True)])
    def test_days_since_login(self, days: int, holds: bool) -> None:
        snap = create_snapshot(
            {"days_since_last_login": days, "last_login": AS_OF - timedelta(days=days)}
        )
        f = one("dormant", snap)
        assert f.holds is holds
        assert f.facts["days_since"] == days

    def test_reason(self) -> None:
        snap = create_snapshot({"days_since_last_login": 21, "last_login": date(2026, 10, 12)})
        f = one("dormant", snap)
        assert f.reason == "no login for 21 days (last login 2026-10-12); alert after 14"
        assert f.severity == "critical"
        assert "21 days" in f.next_step

    def test_falls_back_to_activity_when_logins_were_never_seen(self) -> None:
        snap = create_snapshot(
            {
                "days_since_last_login": None,
                "last_login": None,
                "days_since_last_active": 20,
                "last_active": AS_OF - timedelta(days=20),
            }
        )
        f = one("dormant", snap)
        assert f.holds and f.reason.startswith("no activity for 20 days")

    def test_never_seen_is_not_evaluable(self) -> None:
        snap = create_snapshot({"days_since_last_login": None, "days_since_last_active": None})
        assert run("dormant", snap) == []

    def test_days_configurable(self) -> None:
        snap = create_snapshot({"days_since_last_login": 7})
        assert one("dormant", snap, days=7).holds


def feature(
    name: str, last_days: int | None, first: date | None = date(2025, 1, 1)
) -> FeatureUsage:
    if last_days is None:
        return FeatureUsage(feature=name)
    return FeatureUsage(
        feature=name,
        first_used=first,
        last_used=AS_OF - timedelta(days=last_days),
        days_since_last_use=last_days,
        uses_28d=5 if last_days < 28 else 0,
        users_28d=2 if last_days < 28 else 0,
    )


class TestFeatureUnused:
    @pytest.mark.parametrize(("days", "holds"), [(0, False), (29, False), (30, True), (200, True)])
    def test_abandoned(self, days: int, holds: bool) -> None:
        f = one("feature_unused", create_snapshot({"features": (feature("reports", days),)}))
        assert (f.feature, f.holds) == ("reports", holds)
        assert f.facts["kind"] == ("abandoned" if holds else "in_use")

    def test_one_finding_per_feature(self) -> None:
        snap = create_snapshot(
            {
                "features": (
                    feature("reports", 0),
                    feature("dashboards", 45),
                    feature("exports", 31),
                    feature("integrations", None),
                )
            }
        )
        found = run("feature_unused", snap)
        assert [(f.feature, f.holds, f.facts["kind"]) for f in found] == [
            ("reports", False, "in_use"),
            ("dashboards", True, "abandoned"),
            ("exports", True, "abandoned"),
            ("integrations", True, "never_adopted"),
        ]
        assert len({f.key for f in found}) == 4

    def test_never_adopted_only_after_onboarding(self) -> None:
        features = {"features": (feature("integrations", None),)}
        assert run("feature_unused", create_snapshot(features, scorecard="onboarding")) == []
        f = one("feature_unused", create_snapshot({**features, "account_age_days": 120}))
        assert f.holds and f.reason == "integrations never used, account 120 days old"
        assert "walkthrough" in f.next_step

    def test_never_adopted_can_be_switched_off(self) -> None:
        snap = create_snapshot({"features": (feature("integrations", None),)})
        assert run("feature_unused", snap, never_adopted=False) == []

    def test_abandoned_is_judged_during_onboarding_too(self) -> None:
        snap = create_snapshot({"features": (feature("reports", 30),)}, scorecard="onboarding")
        assert one("feature_unused", snap).holds

    def test_reason(self) -> None:
        f = next(f for f in run("feature_unused", EXAMPLE_SCORE) if f.feature == "exports")
        assert f.holds
        assert f.reason == (
            "exports last used 80 days ago (2026-08-14) (first used 2025-05-02); "
            "0 uses by 0 users in 28 days; alert after 30 days"
        )

    def test_no_key_features_no_findings(self) -> None:
        assert run("feature_unused", create_snapshot({"features": ()})) == []


class TestSeatRules:
    @pytest.mark.parametrize(
        ("regular", "seats", "holds"),
        [(47, 120, True), (48, 120, False), (399, 1000, True), (400, 1000, False), (0, 10, True)],
    )
    def test_low_seat_utilization_counts_regular_users(
        self, regular: int, seats: int, holds: bool
    ) -> None:
        snap = seats_snapshot(seats, seats, metrics={"regular_users": regular})
        assert one("low_seat_utilization", snap).holds is holds

    def test_low_seat_reason(self) -> None:
        f = one("low_seat_utilization", seats_snapshot(60, 120, metrics={"regular_users": 33}))
        assert f.reason == (
            "33 of 120 seats used regularly (27.5%; 60 active in 28 days); alert below 40%"
        )
        assert (
            f.next_step == "Plan an adoption push with u-42: 87 seats are idle, renewal in 74 days."
        )
        assert f.facts["idle_seats"] == 87

    def test_low_seat_before_regular_users_are_measured(self) -> None:
        snap = seats_snapshot(33, 120, metrics={"regular_users": None})
        f = one("low_seat_utilization", snap)
        assert f.holds and f.reason == "33 of 120 seats active in 28 days (27.5%); alert below 40%"

    def test_low_seat_only_after_onboarding(self) -> None:
        assert run("low_seat_utilization", seats_snapshot(1, 120, scorecard="onboarding")) == []

    @pytest.mark.parametrize(
        ("mau", "seats", "holds"),
        [(899, 1000, False), (900, 1000, True), (9, 10, True), (8, 10, False), (12, 10, True)],
    )
    def test_upsell_at_90(self, mau: int, seats: int, holds: bool) -> None:
        f = one("upsell_seats", seats_snapshot(mau, seats))
        assert f.holds is holds and f.severity == "opportunity"

    def test_upsell_reason(self) -> None:
        f = one("upsell_seats", seats_snapshot(19, 20))
        assert f.reason == "19 of 20 seats active in 28 days (95%); signal at 90%"
        assert f.next_step == "Talk to the account about more seats; 1 seat is left."
        full = one("upsell_seats", seats_snapshot(25, 20))
        assert full.next_step == "Talk to the account about more seats; all 20 are in use."

    @pytest.mark.parametrize("seats", [None, 0])
    @pytest.mark.parametrize("rule", ["low_seat_utilization", "upsell_seats", "login_plateau"])
    def test_unknown_seats_no_seat_rules(self, rule: str, seats: int | None) -> None:
        snap = create_snapshot({"seats": seats, "seat_utilization": None}, seats=seats)
        assert run(rule, snap) == []


class TestHealth:
    @pytest.mark.parametrize(
        ("band", "score", "holds"),
        [("red", 12.0, True), ("yellow", 40.0, False), ("green", 90.0, False)],
    )
    def test_health_red(self, band: str, score: float, holds: bool) -> None:
        f = one("health_red", create_snapshot(band=band, score=score))
        assert f.holds is holds

    def test_health_red_reason_names_the_weakest_component(self) -> None:
        f = one("health_red", create_snapshot(band="red", score=32.1))
        assert f.reason.startswith(
            "health score 32.1 is red; weakest: seat utilization at 34.4 points (33 of"
        )

    @pytest.mark.parametrize("band", ["new", "unknown"])
    def test_no_judgement_without_a_score(self, band: str) -> None:
        snap = create_snapshot(band=band, score=None)
        assert run("health_red", snap) == []
        assert run("renewal_risk", snap) == []
        assert run("health_drop", snap, ScoreHistory.of([EXAMPLE_SCORE])) == []


def history(*points: tuple[int, float | None], scorecard: Scorecard = "health") -> ScoreHistory:
    """Points as (days before AS_OF, score)."""
    return ScoreHistory(
        points=tuple(
            ScorePoint(
                as_of=AS_OF - timedelta(days=d),
                score=s,
                band="yellow" if s is not None else "unknown",
                scorecard=scorecard,
            )
            for d, s in points
        )
    )


class TestHealthDrop:
    @pytest.mark.parametrize(
        ("past", "holds"),
        [(72.2, True), (72.1, False), (80.0, True), (57.2, False), (40.0, False)],
    )
    def test_fell_15_points(self, past: float, holds: bool) -> None:
        # current score 57.2: 72.2 is exactly 15 points above.
        f = one("health_drop", EXAMPLE_SCORE, history((3, past)))
        assert f.holds is holds

    def test_peak_within_7_days_counts(self) -> None:
        h = history((8, 90.0), (7, 75.0), (2, 60.0), (1, 58.0))
        f = one("health_drop", EXAMPLE_SCORE, h)
        assert f.holds and f.facts["peak"] == 75.0 and f.facts["peak_as_of"] == "2026-10-26"
        assert f.reason.startswith(
            "health score 57.2, down 17.8 points from 75 on 2026-10-26 (within 7 days; alert at 15)"
        )
        assert "login trend moved most (down 15.2 points since the last score)" in f.reason

    def test_older_than_the_window_is_ignored(self) -> None:
        assert run("health_drop", EXAMPLE_SCORE, history((8, 95.0))) == []

    def test_the_snapshot_itself_and_later_points_are_ignored(self) -> None:
        h = history((0, 99.0), (-1, 99.0), (1, 60.0))
        assert not one("health_drop", EXAMPLE_SCORE, h).holds

    @pytest.mark.parametrize(
        "h",
        [
            pytest.param(None, id="no history"),
            pytest.param(ScoreHistory(), id="empty history"),
            pytest.param(history((2, None)), id="only unscored points"),
            pytest.param(history((2, 90.0), scorecard="onboarding"), id="other scorecard"),
        ],
    )
    def test_missing_history_is_not_evaluable(self, h: ScoreHistory | None) -> None:
        assert run("health_drop", EXAMPLE_SCORE, h) == []

    def test_points_and_window_configurable(self) -> None:
        assert one("health_drop", EXAMPLE_SCORE, history((2, 67.2)), points=10).holds
        assert one("health_drop", EXAMPLE_SCORE, history((10, 90.0)), within_days=14).holds

    def test_history_from_messages(self) -> None:
        earlier = create_snapshot(as_of=AS_OF - timedelta(days=1), score=80.0, band="green")
        assert one("health_drop", EXAMPLE_SCORE, ScoreHistory.of([earlier])).holds


class TestRenewalRisk:
    @pytest.mark.parametrize(
        ("days", "band", "holds"),
        [
            (90, "yellow", True),
            (91, "yellow", False),
            (0, "red", True),
            (30, "green", False),
            (-1, "red", False),
        ],
    )
    def test_near_renewal_not_green(self, days: int, band: str, holds: bool) -> None:
        renewal = AS_OF + timedelta(days=days)
        snap = create_snapshot(
            {"days_to_renewal": days, "renewal_date": renewal}, band=band, renewal_date=renewal
        )
        assert one("renewal_risk", snap).holds is holds

    def test_reason(self) -> None:
        f = one("renewal_risk", EXAMPLE_SCORE)
        assert f.reason == "renewal in 74 days (2027-01-15) with health yellow (57.2); MRR 4800"
        assert f.severity == "critical"

    def test_no_renewal_date_is_not_evaluable(self) -> None:
        snap = create_snapshot({"days_to_renewal": None, "renewal_date": None}, renewal_date=None)
        assert run("renewal_risk", snap) == []

    def test_days_from_the_profile_when_metrics_lack_them(self) -> None:
        snap = create_snapshot(
            {"days_to_renewal": None, "renewal_date": None},
            renewal_date=AS_OF + timedelta(days=10),
        )
        assert one("renewal_risk", snap).facts["days_to_renewal"] == 10

    def test_only_red_configurable(self) -> None:
        assert not one("renewal_risk", EXAMPLE_SCORE, bands="red").holds


def champion(quiet_days: int, active: int = 10, observed: int = 10, **metrics: Any) -> ScoreMessage:
    return create_snapshot(
        {
            "champion": "u-42",
            "champion_source": "inferred",
            "champion_last_active": AS_OF - timedelta(days=quiet_days),
            "champion_days_since_active": quiet_days,
            "champion_weeks_active": active,
            "champion_weeks_observed": observed,
            "days_since_last_active": 0,
            **metrics,
        }
    )


class TestChampionLost:
    @pytest.mark.parametrize(
        ("quiet_days", "active_days", "holds"),
        [
            (14, 0, True),
            (13, 0, False),
            (21, 7, True),
            (21, 8, False),  # the whole account is quiet: that is `dormant`
            (40, None, False),
        ],
    )
    def test_a_regular_champion_quiet_while_account_active(
        self, quiet_days: int, active_days: int | None, holds: bool
    ) -> None:
        snap = champion(quiet_days, days_since_last_active=active_days)
        assert one("champion_lost", snap).holds is holds

    @pytest.mark.parametrize(
        ("active", "observed", "quiet_days", "holds"),
        [
            # Every week of 10: 2 quiet weeks had a (1/12)^2 = 0.7% chance.
            (10, 10, 14, True),
            # Active in 7 of 10 weeks (a weekly but not daily person who skips some):
            # 2 quiet weeks are ordinary (11%), 3 still 3.7%, 4 1.2%, 5 are 0.4%.
            (7, 10, 14, False),
            (7, 10, 34, False),
            (7, 10, 35, True),
            # Too little history to call 2 or 3 weeks unusual: (1/4)^3 is 1.6%.
            (2, 2, 27, False),
            (2, 2, 28, True),
        ],
    )
    def test_the_silence_must_be_unusual_for_this_champion(
        self, active: int, observed: int, quiet_days: int, holds: bool
    ) -> None:
        assert one("champion_lost", champion(quiet_days, active, observed)).holds is holds

    def test_reason(self) -> None:
        f = one("champion_lost", champion(21, 9, 9))
        assert f.reason == (
            "champion u-42 not active for 21 days (last 2026-10-12); active in 9 of the 9 weeks "
            "before, so 3 quiet weeks had a 0.1% chance; alert after 14 days at a chance of 1% "
            "or less; the account was last active today, 19 weekly actives"
        )
        assert f.next_step.startswith("Reach out to u-42")
        assert f.facts["quiet_weeks"] == 3 and f.facts["champion_source"] == "inferred"

    def test_never_more_regular_than_the_accounts_typical_user(self) -> None:
        # The most regular of many looks regular by luck: when people here are active in 60%
        # of weeks, 2 quiet weeks of the champion are a 16% chance, 6 are 0.4%.
        assert not one("champion_lost", champion(20, users_weekly_rate=0.6)).holds
        f = one("champion_lost", champion(42, users_weekly_rate=0.6))
        assert f.holds and "(people here are active in 60% of weeks)" in f.reason

    def test_a_named_champion_says_so(self) -> None:
        f = one("champion_lost", champion(30, 8, 8, champion_source="named"))
        assert f.holds and f.reason.startswith("named champion u-42 not active for 30 days")

    @pytest.mark.parametrize(
        "metrics",
        [{"champion": None}, {"champion_last_active": None}],
    )
    def test_no_champion_is_not_evaluable(self, metrics: dict[str, Any]) -> None:
        assert run("champion_lost", champion(30, **{k: v for k, v in metrics.items()})) == []

    def test_chance_and_days_configurable(self) -> None:
        assert one("champion_lost", champion(14, 7, 10), chance=0.2).holds
        assert not one("champion_lost", champion(14, 7, 10)).holds
        assert not one("champion_lost", champion(14), days=21).holds


class TestEvaluate:
    def test_example_score(self) -> None:
        found = evaluate(EXAMPLE_SCORE, None, DEFAULTS)
        verdicts = {(f.rule, f.feature): f.holds for f in found}
        assert verdicts == {
            ("login_plateau", ""): False,
            ("login_decline", ""): True,
            ("dormant", ""): False,
            ("feature_unused", "reports"): False,
            ("feature_unused", "dashboards"): False,
            ("feature_unused", "exports"): True,
            ("low_seat_utilization", ""): True,
            ("health_red", ""): False,
            ("renewal_risk", ""): True,
            ("champion_lost", ""): True,
            ("upsell_seats", ""): False,
        }
        assert all(f.as_of == AS_OF and f.reason and f.next_step for f in found)

    def test_with_history_adds_health_drop(self) -> None:
        found = evaluate(EXAMPLE_SCORE, history((1, 61.0)), DEFAULTS)
        assert [f.holds for f in found if f.rule == "health_drop"] == [False]

    def test_disabled_rules_are_skipped(self) -> None:
        cfg = parse_config(
            {"rules": {"dormant": {"enabled": False}, "feature_unused": {"enabled": False}}}
        ).rules
        rules = {f.rule for f in evaluate(EXAMPLE_SCORE, None, cfg)}
        assert "dormant" not in rules and "feature_unused" not in rules
        assert "login_decline" in rules

    def test_severity_per_rule(self) -> None:
        cfg = parse_config({"rules": {"login_decline": {"severity": "critical"}}}).rules
        f = next(f for f in evaluate(EXAMPLE_SCORE, None, cfg) if f.rule == "login_decline")
        assert f.severity == "critical"

    def test_every_rule_is_registered(self) -> None:
        assert tuple(RULES) == RULE_NAMES

    def test_findings_survive_json(self) -> None:
        for f in evaluate(EXAMPLE_SCORE, history((1, 80.0)), DEFAULTS):
            assert Finding.model_validate_json(f.model_dump_json()) == f


class TestConfig:
    def test_defaults_from_the_issue(self) -> None:
        r = RulesConfig()
        assert (r.for_days, r.keep_firing_for_days, r.reopen_cooldown_days) == (2, 3, 14)
        assert (r.repeat_interval_days, r.present_days) == (7, 2)
        assert r.notify_on_resolve is True
        assert (r.login_plateau.weeks, r.login_plateau.seat_utilization_below) == (8, 0.60)
        assert (r.login_plateau.sigmas, r.login_decline.sigmas) == (2.0, 2.5)
        assert r.login_decline.earlier_ratio == 0.95
        assert (r.login_decline.ratio, r.login_decline.trailing_weeks) == (0.80, 8)
        assert (r.login_decline.current_weeks, r.login_decline.relative_slope) == (2, None)
        assert r.dormant.days == 14 and r.feature_unused.days == 30
        assert r.low_seat_utilization.below == 0.40 and r.upsell_seats.at_least == 0.90
        assert (r.health_drop.points, r.health_drop.within_days) == (15, 7)
        assert r.renewal_risk.within_days == 90 and r.renewal_risk.bands == ("yellow", "red")
        assert (r.champion_lost.days, r.champion_lost.chance) == (14, 0.01)
        assert r.upsell_seats.severity == "opportunity"
        assert all(r.rule(n).enabled for n in RULE_NAMES)

    @pytest.mark.parametrize(
        "data", [None, {}, {"rules": None}, {"rules": {}}, {"rules": {"dormant": None}}]
    )
    def test_empty_is_the_defaults(self, data: Any) -> None:
        assert parse_config(data).rules == RulesConfig()

    def test_policy_inherits_and_overrides(self) -> None:
        cfg = parse_config(
            {
                "rules": {
                    "fire_after": 3,
                    "repeat_interval_days": 1,
                    "dormant": {"fire_after": 1, "notify_on_resolve": False},
                    "upsell_seats": {"repeat_interval_days": 0},
                }
            }
        ).rules
        dormant = cfg.policy("dormant")
        assert (dormant.for_days, dormant.keep_firing_for_days, dormant.notify_on_resolve) == (
            1,
            3,
            False,
        )
        assert dormant.repeat_interval == timedelta(days=1)
        plateau = cfg.policy("login_plateau")
        assert (plateau.for_days, plateau.notify_on_resolve) == (3, True)
        assert cfg.policy("upsell_seats").repeat_interval is None

    def test_day_settings_by_their_names(self) -> None:
        cfg = parse_config(
            {
                "rules": {
                    "keep_firing_for_days": 5,
                    "reopen_cooldown_days": 0,
                    "login_decline": {"for_days": 7, "reopen_cooldown_days": 21},
                }
            }
        ).rules
        decline = cfg.policy("login_decline")
        assert (decline.for_days, decline.keep_firing_for_days) == (7, 5)
        assert decline.reopen_cooldown_days == 21
        assert cfg.policy("dormant").reopen_cooldown_days == 0

    def test_routes(self) -> None:
        cfg = parse_config(
            {
                "rules": {
                    "renewal_risk": {
                        "route": {
                            "slack_webhook_url": "https://hooks.slack.com/services/T/B/x",
                            "emails": " renewals@vendor.example ",
                            "replace_csm": True,
                        }
                    }
                }
            }
        ).rules
        route = cfg.renewal_risk.route
        assert route is not None and route.emails == ("renewals@vendor.example",)
        assert route.replace_csm and cfg.dormant.route is None

    def test_upsell_may_sit_anywhere_when_low_seats_is_off(self) -> None:
        data = {
            "rules": {"low_seat_utilization": {"enabled": False}, "upsell_seats": {"at_least": 0.3}}
        }
        assert parse_config(data).rules.upsell_seats.at_least == 0.3

    @pytest.mark.parametrize(
        ("rules", "expected"),
        [
            (
                {"login_decline": {"ratio": 1.5}},
                "rules.login_decline.ratio: Input should be less than 1",
            ),
            (
                {"login_decline": {"ratio": "most"}},
                "rules.login_decline.ratio: Input should be a valid number",
            ),
            ({"login_decline": {"relative_slope": 0.1}}, "rules.login_decline.relative_slope:"),
            ({"login_decline": {"trailing_weeks": 0}}, "rules.login_decline.trailing_weeks:"),
            (
                {"login_decline": {"trailing_weeks": 11}},
                "rules.login_decline.trailing_weeks: current_weeks + trailing_weeks must fit",
            ),
            (
                {"login_decline": {"trailing_weeks": 4, "min_baseline_weeks": 5}},
                "rules.login_decline.min_baseline_weeks: must be at most trailing_weeks (5 > 4)",
            ),
            ({"login_decline": {"sigmas": -1}}, "rules.login_decline.sigmas:"),
            (
                {"login_decline": {"earlier_ratio": 0.7}},
                "rules.login_decline.earlier_ratio: must be at least ratio (0.7 < 0.8)",
            ),
            ({"login_plateau": {"sigmas": "many"}}, "rules.login_plateau.sigmas:"),
            (
                {"login_plateau": {"weeks": 5, "min_weeks": 6}},
                "rules.login_plateau.min_weeks: must be at most weeks (6 > 5)",
            ),
            ({"champion_lost": {"chance": 0}}, "rules.champion_lost.chance:"),
            ({"login_plateau": {"weeks": 2}}, "rules.login_plateau.weeks:"),
            ({"login_plateau": {"series": "daily"}}, "rules.login_plateau.series:"),
            ({"dormant": {"days": 0}}, "rules.dormant.days:"),
            ({"dormant": {"dayz": 3}}, "rules.dormant.dayz: Extra inputs are not permitted"),
            ({"dormant": {"severity": "urgent"}}, "rules.dormant.severity: Input should be"),
            ({"dormant": {"enabled": "sometimes"}}, "rules.dormant.enabled:"),
            ({"dormant": {"fire_after": 0}}, "rules.dormant.fire_after:"),
            ({"fire_after": 0}, "rules.fire_after: Input should be greater than or equal to 1"),
            ({"resolve_after": "two"}, "rules.resolve_after:"),
            ({"repeat_interval_days": -1}, "rules.repeat_interval_days:"),
            ({"notify_on_resolve": "maybe"}, "rules.notify_on_resolve:"),
            ({"churn": {}}, "rules.churn: Extra inputs are not permitted"),
            ({"low_seat_utilization": {"below": 0}}, "rules.low_seat_utilization.below:"),
            ({"renewal_risk": {"bands": ["purple"]}}, "rules.renewal_risk.bands.0:"),
            ({"renewal_risk": {"bands": []}}, "rules.renewal_risk.bands:"),
            ({"health_drop": {"points": 0}}, "rules.health_drop.points:"),
            (
                {"upsell_seats": {"at_least": 0.4}},
                "rules.upsell_seats.at_least: must be above low_seat_utilization.below "
                "(0.4 <= 0.4)",
            ),
            (
                {"low_seat_utilization": {"below": 0.95}},
                "rules.upsell_seats.at_least: must be above low_seat_utilization.below",
            ),
            (
                {"dormant": {"route": {}}},
                "rules.dormant.route: Value error, give a slack_webhook_url",
            ),
            (
                {"dormant": {"route": {"slack_webhook_url": "hooks.slack.com/x"}}},
                "rules.dormant.route.slack_webhook_url: Value error, must be an http(s):// URL",
            ),
            (
                {"dormant": {"route": {"emails": ["ok@x.example", "nope"]}}},
                "rules.dormant.route.emails: Value error, 'nope' is not an email address",
            ),
            (
                {"dormant": {"route": {"channel": "#cs"}}},
                "rules.dormant.route.channel: Extra inputs",
            ),
            ([], "rules: Input should be"),
        ],
    )
    def test_errors_name_the_key(self, rules: Any, expected: str) -> None:
        with pytest.raises(ConfigError) as info:
            parse_config({"rules": rules}, source="tend.yaml")
        assert str(info.value).startswith("tend.yaml: ")
        assert expected in str(info.value)


class TestExampleFile:
    def test_deploy_example_documents_the_defaults(self) -> None:
        cfg = load_config(EXAMPLE)
        assert cfg.rules == RulesConfig()

    def test_commented_route_example_is_valid(self) -> None:
        text = EXAMPLE.read_text()
        lines = []
        for ln in text[text.index("#   rules:") :].splitlines():
            if not ln.startswith("#   "):
                break
            lines.append(ln.removeprefix("#"))
        cfg = parse_config(yaml.safe_load("\n".join(lines))).rules
        route = cfg.renewal_risk.route
        assert route is not None and route.emails == ("renewals@vendor.example",)
        assert route.slack_webhook_url is not None and not route.replace_csm

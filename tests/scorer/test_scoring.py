"""The health score against hand-computed cases: components, left-out rule, bands, onboarding,
segments and what moved."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.scorer.activity import AccountActivity, AccountProfile
from services.scorer.scoring import PreviousScore, Score, band_for, is_onboarding, score
from services.scorer.usage import compute_metrics
from shared.scores import EXAMPLE_SCORE, FeatureUsage, ScoreMessage, UsageMetrics
from shared.scoring_model import (
    FewerDaysIsBetter,
    HigherIsBetter,
    ScoringModel,
)

AS_OF = date(2026, 11, 2)
KEYS = ("reports", "dashboards", "exports")
DEFAULT = ScoringModel()


def create_profile(**kw: Any) -> AccountProfile:
    kw.setdefault("account_id", "acme")
    kw.setdefault("seats", 10)
    return AccountProfile(**kw)


def create_metrics(**kw: Any) -> UsageMetrics:
    """A healthy 400-day-old account scoring full marks everywhere, with ``kw`` on top."""
    used = kw.pop("used", KEYS)
    features = tuple(FeatureUsage(feature=f, uses_28d=5 if f in used else 0) for f in KEYS)
    base: dict[str, Any] = {
        "account_id": "acme",
        "as_of": AS_OF,
        "mau": 8,
        "mean_dau": 1.6,
        "seats": 10,
        "seat_utilization": 0.8,
        "stickiness": 0.2,
        "key_features_total": 3,
        "key_features_used": len(used),
        "feature_breadth": len(used) / 3,
        "features": features,
        "trend_current": 10.0,
        "trend_baseline": 10.0,
        "trend_baseline_weeks": 8,
        "trend_ratio": 1.0,
        "days_since_last_login": 0,
        "days_since_last_active": 0,
        "account_age_days": 400,
        "activated_users": 10,
        "seats_activated": 1.0,
        "first_week_logins": 9,
        "time_to_first_value_days": 2,
    }
    base.update(kw)
    return UsageMetrics(**base)


def run(
    m: UsageMetrics | None = None,
    *,
    model: ScoringModel = DEFAULT,
    keys: tuple[str, ...] = KEYS,
    previous: PreviousScore | None = None,
    **profile: Any,
) -> Score:
    return score(m or create_metrics(), create_profile(**profile), model, keys, previous)


def points(s: Score) -> dict[str, float]:
    return {c.name: c.score for c in s.components}


def left_out(s: Score) -> dict[str, str]:
    return {lo.name: lo.reason for lo in s.left_out}


def model_with(**data: Any) -> ScoringModel:
    return ScoringModel.model_validate(data)


class TestRamps:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (-1.0, 0.0),
            (0.0, 0.0),
            (0.2, 25.0),
            (0.4, 50.0),
            (0.6, 75.0),
            (0.79, 98.75),
            (0.8, 100.0),
            (1.0, 100.0),
            (3.0, 100.0),
        ],
    )
    def test_higher_is_better_from_zero(self, value: float, expected: float) -> None:
        rule = HigherIsBetter(weight=1, full_at=0.8, zero_at=0.0)
        assert rule.points(value) == pytest.approx(expected)

    @pytest.mark.parametrize(
        ("ratio", "expected"),
        [
            (0.0, 0.0),
            (0.40, 0.0),
            (0.49, 20.0),
            (0.625, 50.0),
            (0.76, 80.0),
            (0.85, 100.0),
            (2.0, 100.0),
        ],
    )
    def test_login_trend_ramp(self, ratio: float, expected: float) -> None:
        assert DEFAULT.components.login_trend.points(ratio) == pytest.approx(expected)

    @pytest.mark.parametrize(
        ("days", "expected"),
        [
            (0, 100.0),
            (1, 100.0),
            (2, 100.0),
            (3, 100 * 27 / 28),
            (16, 50.0),
            (29, 100 / 28),
            (30, 0.0),
            (365, 0.0),
        ],
    )
    def test_recency_ramp(self, days: int, expected: float) -> None:
        assert DEFAULT.components.recency.points(days) == pytest.approx(expected)

    @pytest.mark.parametrize(("days", "expected"), [(7, 100.0), (8, 100 * 22 / 23), (30, 0.0)])
    def test_time_to_first_value_ramp(self, days: int, expected: float) -> None:
        rule: FewerDaysIsBetter = DEFAULT.onboarding.components.time_to_first_value
        assert rule.points(days) == pytest.approx(expected)


class TestBands:
    @pytest.mark.parametrize(
        ("value", "band"),
        [
            (0.0, "red"),
            (39.9, "red"),
            (40.0, "yellow"),
            (55.0, "yellow"),
            (69.9, "yellow"),
            (70.0, "green"),
            (100.0, "green"),
        ],
    )
    def test_default_bands(self, value: float, band: str) -> None:
        assert band_for(value, DEFAULT, "health") == band
        assert band_for(value, DEFAULT, "onboarding") == band

    @pytest.mark.parametrize(("card", "band"), [("health", "unknown"), ("onboarding", "new")])
    def test_nothing_to_judge_is_never_red(self, card: Any, band: str) -> None:
        assert band_for(None, DEFAULT, card) == band

    @pytest.mark.parametrize(
        ("ratio", "total", "band"),
        [
            # only the login trend scored (others weight 0): total = trend points
            (0.40 + 0.45 * 0.399, 39.9, "red"),
            (0.40 + 0.45 * 0.40, 40.0, "yellow"),
            (0.40 + 0.45 * 0.699, 69.9, "yellow"),
            (0.40 + 0.45 * 0.70, 70.0, "green"),
        ],
    )
    def test_band_of_the_rounded_score(self, ratio: float, total: float, band: str) -> None:
        model = model_with(
            components={
                "seat_utilization": {"weight": 0},
                "stickiness": {"weight": 0},
                "feature_breadth": {"weight": 0},
                "recency": {"weight": 0},
            }
        )
        s = run(create_metrics(trend_ratio=ratio), model=model)
        assert s.score == total and s.band == band


class TestHealthScore:
    def test_healthy_account_scores_100(self) -> None:
        s = run()
        assert s.scorecard == "health"
        assert s.score == 100.0 and s.band == "green"
        assert [c.name for c in s.components] == [
            "seat_utilization",
            "stickiness",
            "feature_breadth",
            "login_trend",
            "recency",
        ]
        assert [c.share for c in s.components] == [0.25, 0.15, 0.2, 0.25, 0.15]
        assert s.left_out == () and s.segments == ()

    def test_hand_computed_yellow(self) -> None:
        m = create_metrics(
            mau=33,
            seats=120,
            seat_utilization=33 / 120,  # 34.375
            mean_dau=4.0,
            stickiness=4 / 33,  # 60.606
            used=("reports",),  # 33.333
            trend_current=21.0,
            trend_baseline=33.5,
            trend_ratio=21 / 33.5,  # 50.365
            days_since_last_login=5,  # 89.286
        )
        s = run(m, seats=120)
        expected = 0.25 * 34.375 + 0.15 * 60.606 + 0.2 * 33.333 + 0.25 * 50.365 + 0.15 * 89.286
        assert s.score == round(expected, 1) == 50.3
        assert s.band == "yellow"
        assert points(s) == {
            "seat_utilization": 34.4,
            "stickiness": 60.6,
            "feature_breadth": 33.3,
            "login_trend": 50.4,
            "recency": 89.3,
        }

    def test_explanations_and_inputs(self) -> None:
        m = create_metrics(mau=33, seats=120, seat_utilization=0.275, used=("reports",))
        s = run(m, seats=120)
        seat = s.component("seat_utilization")
        assert seat is not None
        assert seat.explanation == "33 of 120 seats active in 28 days (28%); full marks at 80%"
        assert seat.inputs == {"mau": 33, "seats": 120, "full_at": 0.8}
        assert seat.value == 0.275
        breadth = s.component("feature_breadth")
        assert breadth is not None
        assert breadth.explanation == (
            "1 of 3 key features used in 28 days; unused: dashboards, exports"
        )
        trend = s.component("login_trend")
        assert trend is not None and "vs a baseline of 10" in trend.explanation
        recency = s.component("recency")
        assert recency is not None and recency.explanation.startswith("last login today")

    @pytest.mark.parametrize(
        ("days", "expected"), [(0, 100.0), (2, 100.0), (16, 50.0), (30, 0.0), (400, 0.0)]
    )
    def test_recency_points(self, days: int, expected: float) -> None:
        assert points(run(create_metrics(days_since_last_login=days)))["recency"] == expected

    def test_recency_falls_back_to_last_activity(self) -> None:
        m = create_metrics(days_since_last_login=None, days_since_last_active=16)
        s = run(m)
        rec = s.component("recency")
        assert rec is not None and rec.score == 50.0
        assert "no login ever recorded" in rec.explanation

    def test_seats_over_100_percent_cap_at_full_marks(self) -> None:
        s = run(create_metrics(mau=15, seat_utilization=1.5))
        assert points(s)["seat_utilization"] == 100.0


class TestLeftOut:
    @pytest.mark.parametrize(
        ("change", "component", "reason"),
        [
            ({"seats": None, "seat_utilization": None}, "seat_utilization", "seats unknown"),
            ({"stickiness": None}, "stickiness", "no active users"),
            ({"trend_baseline": None, "trend_ratio": None}, "login_trend", "no baseline yet"),
            ({"trend_baseline": 0.0, "trend_ratio": None}, "login_trend", "baseline weeks"),
            (
                {"days_since_last_login": None, "days_since_last_active": None},
                "recency",
                "no login or activity",
            ),
        ],
    )
    def test_missing_input_is_left_out_not_zero(
        self, change: dict[str, Any], component: str, reason: str
    ) -> None:
        s = run(create_metrics(**change))
        assert component not in points(s)
        assert reason in left_out(s)[component]
        assert s.score == 100.0  # the rest is perfect, and the gap costs nothing

    def test_no_key_features_configured(self) -> None:
        m = create_metrics(feature_breadth=None, key_features_total=0, features=())
        s = run(m, keys=())
        assert left_out(s) == {"feature_breadth": "no key features configured"}

    @pytest.mark.parametrize(
        ("missing", "shares"),
        [
            ((), [0.25, 0.15, 0.2, 0.25, 0.15]),
            (("seat_utilization",), [0.2, 0.2667, 0.3333, 0.2]),
            (("seat_utilization", "login_trend"), [0.3, 0.4, 0.3]),
            (("stickiness", "feature_breadth", "login_trend", "recency"), [1.0]),
        ],
    )
    def test_weights_spread_over_the_rest(
        self, missing: tuple[str, ...], shares: list[float]
    ) -> None:
        model = model_with(components={n: {"weight": 0} for n in missing})
        s = run(model=model)
        assert [c.share for c in s.components] == shares
        assert sum(c.share for c in s.components) == pytest.approx(1.0, abs=1e-3)
        assert all(left_out(s)[n] == "weight is 0" for n in missing)

    def test_redistribution_changes_the_score(self) -> None:
        # seats unknown: remaining weights 15/20/25/15 over 75
        m = create_metrics(
            seats=None, seat_utilization=None, days_since_last_login=16, trend_ratio=0.625
        )
        s = run(m, seats=None)
        expected = (15 * 100 + 20 * 100 + 25 * 50 + 15 * 50) / 75
        assert s.score == round(expected, 1) == 73.3

    def test_everything_left_out_is_unknown_not_red(self) -> None:
        m = UsageMetrics(account_id="acme", as_of=AS_OF, account_age_days=400)
        s = run(m, seats=None, keys=())
        assert s.score is None and s.band == "unknown" and s.components == ()
        assert set(left_out(s)) == {
            "seat_utilization",
            "stickiness",
            "feature_breadth",
            "login_trend",
            "recency",
        }

    def test_dormant_old_account_with_seats_is_red(self) -> None:
        # No events in 400 days is not missing data: nobody uses the seats.
        a = AccountActivity(
            profile=create_profile(created_at=date(2025, 9, 28)),
            as_of=AS_OF,
            first_seen=date(2025, 9, 28),
            last_login=date(2026, 6, 1),
            last_active=date(2026, 6, 1),
            weekly_active_users=(0,) * 12,
        )
        s = score(compute_metrics(a, KEYS), a.profile, DEFAULT, KEYS)
        assert s.band == "red" and s.score == 0.0


class TestOnboarding:
    @pytest.mark.parametrize(
        ("age", "card"), [(0, "onboarding"), (29, "onboarding"), (30, "health"), (31, "health")]
    )
    def test_the_age_edge(self, age: int, card: str) -> None:
        s = run(create_metrics(account_age_days=age))
        assert s.scorecard == card

    @pytest.mark.parametrize(("days", "age", "card"), [(10, 9, "onboarding"), (10, 10, "health")])
    def test_configured_days(self, days: int, age: int, card: str) -> None:
        model = model_with(onboarding={"days": days})
        assert run(create_metrics(account_age_days=age), model=model).scorecard == card

    @pytest.mark.parametrize("stage", ["new", "New", " NEW "])
    def test_lifecycle_stage_new_is_onboarding_at_any_age(self, stage: str) -> None:
        s = run(create_metrics(account_age_days=400), lifecycle_stage=stage)
        assert s.scorecard == "onboarding"

    def test_unknown_age_is_onboarding(self) -> None:
        m = UsageMetrics(account_id="acme", as_of=AS_OF)
        assert is_onboarding(m, create_profile(), DEFAULT)
        s = run(m)
        assert s.band == "new" and s.score is None

    def test_hand_computed_onboarding(self) -> None:
        m = create_metrics(
            account_age_days=20,
            activated_users=3,
            seats_activated=0.3,  # 60
            time_to_first_value_days=18,  # 100 * 12 / 23
            first_week_logins=2,  # 40
        )
        s = run(m)
        assert s.scorecard == "onboarding"
        expected = 0.4 * 60 + 0.4 * (100 * 12 / 23) + 0.2 * 40
        assert s.score == round(expected, 1) == 52.9
        assert s.band == "yellow"
        ttv = s.component("time_to_first_value")
        assert ttv is not None
        assert ttv.explanation == (
            "first key feature used after 18 days; full marks within 7 days, none after 30"
        )

    @pytest.mark.parametrize(
        ("age", "expected"), [(8, 100 * 22 / 23), (20, 100 * 10 / 23), (29, 100 / 23)]
    )
    def test_value_not_reached_scores_the_days_elapsed(self, age: int, expected: float) -> None:
        m = create_metrics(account_age_days=age, time_to_first_value_days=None)
        comp = run(m).component("time_to_first_value")
        assert comp is not None and comp.score == round(expected, 1)
        assert comp.explanation.startswith(f"no key feature used yet after {age} days")

    @pytest.mark.parametrize("age", [0, 3, 6])
    def test_value_not_reached_early_is_not_late(self, age: int) -> None:
        m = create_metrics(account_age_days=age, time_to_first_value_days=None)
        assert "no key feature used yet" in left_out(run(m))["time_to_first_value"]

    def test_time_to_value_needs_key_features(self) -> None:
        m = create_metrics(account_age_days=20)
        assert left_out(run(m, keys=()))["time_to_first_value"] == "no key features configured"

    def test_seats_unknown_in_onboarding(self) -> None:
        m = create_metrics(account_age_days=20, seats=None, seats_activated=None)
        assert "seats unknown" in left_out(run(m, seats=None))["seats_activated"]

    @pytest.mark.parametrize("age", list(range(7)))
    def test_brand_new_account_with_nothing_yet_is_new_not_red(self, age: int) -> None:
        m = UsageMetrics(account_id="acme", as_of=AS_OF, seats=10, account_age_days=age)
        m = m.model_copy(update={"seats_activated": 0.0})
        s = run(m)
        assert s.score is None and s.band == "new"
        assert set(left_out(s)) == {"seats_activated", "time_to_first_value", "first_week_logins"}

    @pytest.mark.parametrize("age", list(range(7)))
    def test_grace_period_counts_only_achievements(self, age: int) -> None:
        m = create_metrics(
            account_age_days=age,
            seats_activated=0.1,
            time_to_first_value_days=0,
            first_week_logins=1,
        )
        s = run(m)
        assert points(s) == {"time_to_first_value": 100.0}
        assert s.band == "green"
        assert "too early to judge" in left_out(s)["seats_activated"]

    def test_first_week_logins_wait_for_the_week(self) -> None:
        model = model_with(onboarding={"grace_days": 0})
        m = create_metrics(account_age_days=3, first_week_logins=2)
        s = run(m, model=model)
        assert left_out(s)["first_week_logins"] == "first week not over (2 logins so far, day 4)"
        m5 = create_metrics(account_age_days=3, first_week_logins=5)
        assert points(run(m5, model=model))["first_week_logins"] == 100.0

    def test_after_grace_shortfalls_count(self) -> None:
        m = create_metrics(account_age_days=7, seats_activated=0.1, first_week_logins=1)
        s = run(m)
        assert points(s) == {
            "seats_activated": 20.0,
            "time_to_first_value": 100.0,
            "first_week_logins": 20.0,
        }

    @pytest.mark.parametrize("age", list(range(7)))
    def test_no_data_at_all_in_the_first_week_is_never_red(self, age: int) -> None:
        m = UsageMetrics(account_id="acme", as_of=AS_OF, account_age_days=age)
        s = run(m, seats=None, keys=())
        assert s.band == "new"

    @pytest.mark.parametrize("age", [7, 15, 29])
    def test_silent_after_the_first_week_is_red(self, age: int) -> None:
        # Not missing data any more: nobody logged in during the whole first week.
        m = UsageMetrics(account_id="acme", as_of=AS_OF, account_age_days=age)
        s = run(m, seats=None, keys=())
        assert points(s) == {"first_week_logins": 0.0} and s.band == "red"

    def test_first_week_logins_left_out_when_logins_are_not_instrumented(self) -> None:
        m = create_metrics(account_age_days=15, first_week_logins=0, last_active=AS_OF)
        s = run(m)
        assert "no login event ever recorded" in left_out(s)["first_week_logins"]


ENTERPRISE = {
    "name": "enterprise",
    "match": {"plan": ["enterprise", "enterprise-plus"]},
    "components": {"seat_utilization": {"full_at": 0.5}, "stickiness": {"weight": 0}},
    "bands": {"green": 80},
}
RENEWAL = {
    "match": {"lifecycle_stage": "renewal"},
    "components": {"recency": {"weight": 45}},
}


class TestSegments:
    def test_plan_override_changes_thresholds_and_weights(self) -> None:
        model = model_with(segments=[ENTERPRISE])
        m = create_metrics(seat_utilization=0.4)  # 50 by default, 80 at full_at 0.5
        base = run(m, model=model, plan="team")
        ent = run(m, model=model, plan="Enterprise")
        assert points(base)["seat_utilization"] == 50.0 and base.segments == ()
        assert points(ent)["seat_utilization"] == 80.0
        assert ent.segments == ("enterprise",)
        assert "stickiness" not in points(ent)
        # 25 * 80 + 20 * 100 + 25 * 100 + 15 * 100 over 85
        assert ent.score == round((25 * 80 + 60 * 100) / 85, 1) == 94.1

    def test_only_written_keys_change(self) -> None:
        model = model_with(segments=[ENTERPRISE])
        merged, _ = model.for_account("enterprise", None)
        assert merged.components.seat_utilization.weight == 25.0
        assert merged.components.seat_utilization.zero_at == 0.0
        assert merged.components.stickiness.full_at == 0.2
        assert merged.bands.yellow == 40.0 and merged.bands.green == 80.0
        assert merged.onboarding == DEFAULT.onboarding
        assert merged.segments == ()

    @pytest.mark.parametrize(("value", "band"), [(79.9, "yellow"), (80.0, "green")])
    def test_band_override(self, value: float, band: str) -> None:
        model = model_with(segments=[ENTERPRISE])
        merged, _ = model.for_account("enterprise", None)
        assert band_for(value, merged, "health") == band

    def test_lifecycle_override_and_stacking_in_order(self) -> None:
        model = model_with(segments=[ENTERPRISE, RENEWAL])
        merged, labels = model.for_account("enterprise", "renewal")
        assert labels == ("enterprise", "lifecycle_stage=renewal")
        assert merged.components.recency.weight == 45
        assert merged.components.seat_utilization.full_at == 0.5
        _, labels2 = model.for_account("team", "renewal")
        assert labels2 == ("lifecycle_stage=renewal",)

    def test_later_segment_wins(self) -> None:
        a = {"match": {"plan": "x"}, "bands": {"green": 90}}
        b = {"match": {"plan": "x"}, "bands": {"green": 60}}
        merged, _ = model_with(segments=[a, b]).for_account("x", None)
        assert merged.bands.green == 60

    @pytest.mark.parametrize(
        ("plan", "stage", "matches"),
        [
            ("pro", "renewal", True),
            ("pro", "growing", False),
            ("team", "renewal", False),
            (None, "renewal", False),
            ("PRO", "RENEWAL", True),
        ],
    )
    def test_all_criteria_must_match(self, plan: str | None, stage: str, matches: bool) -> None:
        seg = {"match": {"plan": "pro", "lifecycle_stage": "renewal"}, "bands": {"green": 90}}
        _, labels = model_with(segments=[seg]).for_account(plan, stage)
        assert bool(labels) is matches

    def test_onboarding_override(self) -> None:
        seg = {"match": {"plan": "self-serve"}, "onboarding": {"days": 7}}
        model = model_with(segments=[seg])
        m = create_metrics(account_age_days=10)
        assert run(m, model=model, plan="self-serve").scorecard == "health"
        assert run(m, model=model, plan="team").scorecard == "onboarding"

    def test_merged_models_are_cached_and_equal_to_fresh(self) -> None:
        model = model_with(segments=[ENTERPRISE])
        first, _ = model.for_account("enterprise", None)
        again, _ = model.for_account("enterprise", None)
        assert first is again
        assert model == model_with(segments=[ENTERPRISE])


class TestMoved:
    def test_no_previous(self) -> None:
        s = run()
        assert s.moved.score_delta is None and s.moved.components == ()
        assert not s.moved.band_changed and s.previous_score is None and s.previous_band is None

    def test_deltas_against_the_previous_score(self) -> None:
        prev = PreviousScore(
            score=85.0,
            band="green",
            components={"seat_utilization": 100.0, "login_trend": 100.0, "recency": 100.0},
        )
        m = create_metrics(trend_ratio=0.625, days_since_last_login=16)
        s = run(m, previous=prev)
        # 25 + 15 + 20 + 25 * 0.5 + 15 * 0.5
        assert s.score == 80.0
        assert s.moved.score_delta == -5.0
        assert not s.moved.band_changed
        moves = {mv.name: mv for mv in s.moved.components}
        assert moves["login_trend"].delta == -50.0
        assert moves["recency"].delta == -50.0
        assert moves["seat_utilization"].delta == 0.0
        assert moves["stickiness"].previous is None and moves["stickiness"].delta is None
        assert (s.previous_score, s.previous_band) == (85.0, "green")

    def test_band_change_and_dropped_component(self) -> None:
        prev = PreviousScore(score=75.0, band="green", components={"old_metric": 50.0})
        s = run(create_metrics(days_since_last_login=30, trend_ratio=0.4), previous=prev)
        assert s.score == 60.0 and s.band == "yellow"
        assert s.moved.band_changed and s.moved.score_delta == -15.0
        gone = [mv for mv in s.moved.components if mv.name == "old_metric"]
        assert gone[0].current is None and gone[0].delta is None

    def test_from_nothing_to_a_score(self) -> None:
        prev = PreviousScore(score=None, band="new", scorecard="onboarding")
        s = run(previous=prev)
        assert s.moved.score_delta is None
        assert s.moved.band_changed and s.moved.scorecard_changed

    def test_previous_from_score_round_trips(self) -> None:
        first = run(create_metrics(days_since_last_login=16))
        second = run(previous=first.as_previous())
        assert second.moved.score_delta == round(100.0 - first.score, 1)  # type: ignore[operator]
        assert {mv.name: mv.delta for mv in second.moved.components}["recency"] == 50.0


class TestMessage:
    def test_to_message_carries_profile_and_metrics(self) -> None:
        profile = create_profile(
            name="Acme",
            plan="business",
            seats=10,
            mrr=990.0,
            renewal_date=date(2027, 1, 1),
            lifecycle_stage="growing",
            csm_email="dana@vendor.example",
            csm_slack="U1",
        )
        m = create_metrics()
        s = score(m, profile, DEFAULT, KEYS)
        msg = s.to_message(m, profile, datetime(2026, 11, 2, 10, tzinfo=UTC))
        assert msg.metrics == m and msg.score == 100.0 and msg.band == "green"
        assert (msg.name, msg.plan, msg.seats, msg.mrr, msg.csm_slack) == (
            "Acme",
            "business",
            10,
            990.0,
            "U1",
        )
        again = ScoreMessage.from_bytes(msg.to_bytes())
        assert again == msg
        assert again.as_previous().components == {c.name: c.score for c in s.components}

    def test_example_round_trips(self) -> None:
        assert ScoreMessage.from_bytes(EXAMPLE_SCORE.to_bytes()) == EXAMPLE_SCORE
        assert EXAMPLE_SCORE.component("recency") is not None
        assert EXAMPLE_SCORE.component("nope") is None

    def test_example_is_what_the_scorer_computes(self) -> None:
        e = EXAMPLE_SCORE
        profile = AccountProfile(
            account_id=e.account_id,
            name=e.name,
            plan=e.plan,
            seats=e.seats,
            mrr=e.mrr,
            renewal_date=e.renewal_date,
            lifecycle_stage=e.lifecycle_stage,
            csm_email=e.csm_email,
            csm_slack=e.csm_slack,
        )
        previous = PreviousScore(
            score=61.0,
            band="yellow",
            components={m.name: m.previous for m in e.moved.components if m.previous},
        )
        s = score(e.metrics, profile, DEFAULT, KEYS, previous)
        assert s.to_message(e.metrics, profile, e.computed_at) == e

    def test_message_rejects_unknown_fields(self) -> None:
        raw = EXAMPLE_SCORE.model_dump(mode="json") | {"surprise": 1}
        with pytest.raises(ValueError, match="surprise"):
            ScoreMessage.model_validate(raw)


class TestEndToEnd:
    """compute_metrics then score, from raw activity."""

    def test_single_day_single_user_account(self) -> None:
        a = AccountActivity(
            profile=create_profile(created_at=AS_OF, seats=1),
            as_of=AS_OF,
            first_seen=AS_OF,
            last_login=AS_OF,
            last_active=AS_OF,
            daily_active_users=(1,),
            wau=1,
            mau=1,
            weekly_active_users=(1,),
            weekly_logins=(1,),
            activated_users=1,
            first_week_logins=1,
        )
        m = compute_metrics(a, KEYS)
        s = score(m, a.profile, DEFAULT, KEYS)
        assert s.scorecard == "onboarding"
        # 1 of 1 seat activated is full marks; the rest is too early to judge.
        assert points(s) == {"seats_activated": 100.0}
        assert s.band == "green"

    def test_brand_new_account_no_events(self) -> None:
        a = AccountActivity(profile=create_profile(created_at=AS_OF, seats=50), as_of=AS_OF)
        s = score(compute_metrics(a, KEYS), a.profile, DEFAULT, KEYS)
        assert s.band == "new" and s.score is None

    def test_never_seen_account_without_a_start(self) -> None:
        a = AccountActivity(profile=create_profile(seats=None), as_of=AS_OF)
        s = score(compute_metrics(a, ()), a.profile, DEFAULT, ())
        assert s.scorecard == "onboarding" and s.band == "new"

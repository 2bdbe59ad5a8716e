"""The backtest's faster pure code against the code it replaced, kept here as the reference
(hypothesis): the people code of the metrics (``services/scorer/people.py``: active weeks
counted with ``tuple.count(0)``, a user with fewer weeks than the leader skipped) and the
health_drop rule's peak (one pass over the history instead of a sorted window); and the
verdicts of login_plateau and login_decline that skip work when no text is asked."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.alerts.rules import (
    Explained,
    FactValue,
    Finding,
    ScoreHistory,
    ScorePoint,
    _days,
    _finding,
    _num,
    evaluate,
    health_drop,
)
from services.scorer.activity import WEEKS, UserWeeks
from services.scorer.people import champion_of, regular_users, typical_weekly_rate
from shared.alert_rules import HealthDrop, RulesConfig
from shared.config import parse_config
from shared.format import words
from shared.scores import EXAMPLE_SCORE, ScoreMessage

pytestmark = pytest.mark.unit

AS_OF = date(2026, 6, 30)

# -- the people code as it was -------------------------------------------------------------------


def _reference_leader(users: Sequence[UserWeeks], start: int, stop: int) -> UserWeeks | None:
    best: UserWeeks | None = None
    best_key = (0, 0, 0)
    for u in users:
        days = u.active_days[start:stop]
        weeks = len([d for d in days if d > 0])
        if weeks == 0:
            continue
        key = (weeks, sum(days), sum(u.events[start:stop]))
        if best is None or key > best_key or (key == best_key and u.user_id < best.user_id):
            best, best_key = u, key
    return best


def _reference_inferred(
    users: Sequence[UserWeeks], lived_weeks: int, recent_weeks: int, margin: float
) -> UserWeeks | None:
    first = WEEKS - min(WEEKS, lived_weeks)
    split = WEEKS - recent_weeks
    if first >= split:
        return _reference_leader(users, first, WEEKS)
    incumbent = _reference_leader(users, first, split)
    challenger = _reference_leader(users, split, WEEKS)
    if incumbent is None:
        return challenger
    if challenger is None or challenger.user_id == incumbent.user_id:
        return incumbent
    recent = range(split, WEEKS)
    leads_each_week = all(challenger.active_days[w] > incumbent.active_days[w] for w in recent)
    challenger_days = sum(challenger.active_days[w] for w in recent)
    incumbent_days = sum(incumbent.active_days[w] for w in recent)
    if leads_each_week and challenger_days >= (1 + margin) * incumbent_days:
        return challenger
    return incumbent


def reference_champion(
    users: Sequence[UserWeeks], as_of: date, lived_weeks: int, named: str | None
) -> tuple[object, ...] | None:
    if named:
        pick = next((u for u in users if u.user_id == named), None) or UserWeeks(user_id=named)
        source = "named"
    else:
        inferred = _reference_inferred(users, lived_weeks, 4, 0.25)
        if inferred is None:
            return None
        pick, source = inferred, "inferred"
    lived = min(WEEKS, max(0, lived_weeks))
    quiet = (as_of - pick.last_active).days // 7 if pick.last_active is not None else lived
    observed = range(WEEKS - lived, WEEKS - min(lived, max(0, quiet)))
    return (
        pick.user_id,
        source,
        pick.last_active,
        pick.last_login,
        len([d for d in pick.active_days[observed.start : observed.stop] if d > 0]),
        len(observed),
    )


def reference_regular(users: Sequence[UserWeeks], lived_weeks: int) -> tuple[int, int] | None:
    weeks = min(4, lived_weeks, WEEKS)
    if weeks <= 0:
        return None
    need = max(1, math.ceil(3 * weeks / 4))
    first = WEEKS - weeks
    count = len([u for u in users if len([d for d in u.active_days[first:WEEKS] if d > 0]) >= need])
    return count, weeks


def reference_rate(users: Sequence[UserWeeks], lived_weeks: int) -> float | None:
    lived = min(WEEKS, lived_weeks)
    if lived <= 0:
        return None
    first = WEEKS - lived
    weeks = sorted(
        n for u in users if (n := len([d for d in u.active_days[first:WEEKS] if d > 0])) > 0
    )
    if not weeks:
        return None
    mid = len(weeks) // 2
    return (
        weeks[mid] / lived if len(weeks) % 2 else (weeks[mid - 1] / lived + weeks[mid] / lived) / 2
    )


@st.composite
def user_weeks(draw: st.DrawFn) -> list[UserWeeks]:
    ids = draw(st.lists(st.sampled_from("abcdefghijkl"), unique=True, max_size=10))
    # Few distinct values, so ties in weeks, days and events are common.
    week = st.tuples(*[st.sampled_from([0, 0, 1, 2, 7])] * WEEKS)
    users = []
    for user_id in ids:
        last = draw(st.none() | st.integers(0, 100).map(lambda n: AS_OF - timedelta(days=n)))
        users.append(UserWeeks(user_id, draw(week), draw(week), last, draw(st.none())))
    return users


@settings(max_examples=400, deadline=None)
@given(user_weeks(), st.integers(-1, 13), st.none() | st.sampled_from("ak"))
def test_the_people_code_equals_the_reference(
    users: list[UserWeeks], lived_weeks: int, named: str | None
) -> None:
    pick = champion_of(users, AS_OF, lived_weeks, named=named)
    got = None
    if pick is not None:
        got = (
            pick.user_id,
            pick.source,
            pick.last_active,
            pick.last_login,
            pick.weeks_active,
            pick.weeks_observed,
        )
    assert got == reference_champion(users, AS_OF, lived_weeks, named)
    assert regular_users(users, lived_weeks) == reference_regular(users, lived_weeks)
    assert typical_weekly_rate(users, lived_weeks) == reference_rate(users, lived_weeks)


# -- health_drop as it was -----------------------------------------------------------------------


def reference_health_drop(
    s: ScoreMessage, history: ScoreHistory | None, cfg: HealthDrop
) -> list[Finding]:
    if history is None or s.score is None:
        return []
    window = [
        p
        for p in history.between(s.as_of - timedelta(days=cfg.within_days), s.as_of)
        if p.score is not None and p.scorecard == s.scorecard
    ]
    if not window:
        return []
    peak = max(window, key=lambda p: (p.score or 0.0, p.as_of))
    assert peak.score is not None
    score, peak_score = s.score, peak.score
    drop = peak_score - score

    def text() -> Explained:
        mover = ""
        moves = [c for c in s.moved.components if c.delta is not None and c.delta < 0]
        if moves:
            worst = min(moves, key=lambda c: c.delta or 0.0)
            mover = (
                f"; {words(worst.name)} moved most (down {_num(abs(worst.delta or 0.0))} points "
                "since the last score)"
            )
        reason = (
            f"health score {_num(score)}, down {_num(drop)} points from {_num(peak_score)} "
            f"on {peak.as_of} (within {_days(cfg.within_days)}; alert at {_num(cfg.points)})"
            f"{mover}"
        )
        step = (
            "Look at what moved in the console and check in with the account "
            "before the drop becomes a trend."
        )
        facts: dict[str, FactValue] = {
            "score": score,
            "peak": peak_score,
            "peak_as_of": peak.as_of.isoformat(),
            "drop": round(drop, 1),
        }
        return reason, step, facts

    holds = drop >= cfg.points - 1e-9
    return [_finding(s, "health_drop", cfg, holds=holds, explain=True, text=text)]


scores = st.none() | st.sampled_from([0.0, 40.0, 55.0, 57.2, 60.0, 72.2, 90.0])
points = st.lists(
    st.builds(
        ScorePoint,
        as_of=st.integers(-2, 20).map(lambda n: EXAMPLE_SCORE.as_of - timedelta(days=n)),
        score=scores,
        band=st.just("yellow"),
        scorecard=st.sampled_from(["health", "onboarding"]),
    ),
    max_size=25,
)


@settings(max_examples=400, deadline=None)
@given(points, scores, st.sampled_from(["health", "onboarding"]), st.integers(1, 14))
def test_health_drop_equals_the_reference(
    history: list[ScorePoint], score: float | None, scorecard: str, within_days: int
) -> None:
    s = EXAMPLE_SCORE.model_copy(update={"score": score, "scorecard": scorecard})
    cfg = HealthDrop(within_days=within_days)
    h = ScoreHistory(points=tuple(history))
    assert health_drop(s, h, cfg) == reference_health_drop(s, h, cfg)
    assert health_drop(s, None, cfg) == reference_health_drop(s, None, cfg) == []


# -- verdicts without text -------------------------------------------------------------------


DAILY = parse_config(
    {"rules": {"login_decline": {"daily": True, "relative_slope": -0.2}, "login_plateau": {}}}
).rules
weekly = st.tuples(*[st.sampled_from([0, 1, 2, 3, 5, 8, 9, 10])] * WEEKS)
# Uniform days, or a decline: 21 busy days, then 14 quieter ones (the daily view's case).
daily = st.tuples(*[st.sampled_from([0, 1, 2, 3, 4, 6])] * 35) | st.builds(
    lambda old, new: old + new,
    st.tuples(*[st.sampled_from([3, 4, 5, 6])] * 21),
    st.tuples(*[st.sampled_from([0, 0, 1, 2, 3, 4])] * 14),
)


@settings(max_examples=400, deadline=None)
@given(
    weekly,
    weekly,
    daily,
    st.none() | st.integers(0, 400),
    st.none() | st.integers(0, 12),
    st.none() | st.integers(1, 20),
    st.none() | st.sampled_from([-0.3, -0.1, 0.0, 0.2]),
)
def test_verdicts_skipping_work_equal_the_explained_findings(
    wau: tuple[int, ...],
    logins: tuple[int, ...],
    dau: tuple[int, ...],
    age: int | None,
    regular: int | None,
    seats: int | None,
    slope: float | None,
) -> None:
    """login_plateau without room and login_decline short of its limits skip the rest of the
    work when only the verdict is asked: the same rules, features and holds as explained."""
    metrics = EXAMPLE_SCORE.metrics.model_copy(
        update={
            "weekly_active_users": wau,
            "weekly_logins": logins,
            "daily_active_users": dau,
            "account_age_days": age,
            "regular_users": regular,
            "seats": seats,
            "mau": max(wau),
            "trend_relative_slope": slope,
            "logins_relative_slope": slope,
        }
    )
    s = EXAMPLE_SCORE.model_copy(update={"metrics": metrics, "seats": seats})
    for rules in (RulesConfig(), DAILY):
        explained = evaluate(s, None, rules)
        verdicts = evaluate(s, None, rules, explain=False)
        assert [(f.rule, f.feature, f.holds) for f in verdicts] == [
            (f.rule, f.feature, f.holds) for f in explained
        ]

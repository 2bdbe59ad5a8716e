"""The health score of one account from its metrics and the scoring model (pure).

Rules, in order:

1. The model is the base with every matching segment (plan, lifecycle stage) merged in.
2. Onboarding scorecard when the account is younger than ``onboarding.days`` (or its age is
   unknown: never seen and no ``created_at``), or its lifecycle stage is in
   ``onboarding.stages``; the health scorecard otherwise.
3. Each component is scored 0..100 on a linear ramp. A component with no input (seats unknown,
   no key features, no baseline yet, never active...) or weight 0 is left out, with the reason;
   the weights of the rest are renormalised. In the first ``onboarding.grace_days`` of an
   onboarding account, a component short of full marks is left out as "too early to judge".
4. The score is the weighted mean, rounded to 1 decimal, and the band comes from the rounded
   score. With nothing to judge the score is ``None`` and the band ``new`` (onboarding) or
   ``unknown``: missing data never makes an account red.

One module of about 490 lines on purpose: the two scorecards share the component ramps, the reasons
a component is left out and the :class:`Score` they build, and the four rules above read as one
contract (tests/scorer/test_scoring.py tests them together).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict

from services.scorer.activity import AccountProfile
from shared.construct import built
from shared.scores import (
    Band,
    ComponentMove,
    ComponentScore,
    InputValue,
    LeftOut,
    Moved,
    PreviousScore,
    Scorecard,
    ScoreMessage,
    UsageMetrics,
)
from shared.scoring_model import (
    COMPONENTS,
    ONBOARDING_COMPONENTS,
    FewerDaysIsBetter,
    HigherIsBetter,
    ScoringModel,
)

__all__ = ["PreviousScore", "Score", "band_for", "is_onboarding", "score"]


class Score(BaseModel):
    """The outcome of :func:`score`; :meth:`to_message` makes it a ``tend.scores.v1`` record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: str
    as_of: date
    scorecard: Scorecard
    score: float | None
    band: Band
    segments: tuple[str, ...] = ()
    components: tuple[ComponentScore, ...] = ()
    left_out: tuple[LeftOut, ...] = ()
    moved: Moved = Moved()
    previous_score: float | None = None
    previous_band: Band | None = None

    def component(self, name: str) -> ComponentScore | None:
        return next((c for c in self.components if c.name == name), None)

    def as_previous(self) -> PreviousScore:
        return built(
            PreviousScore,
            {
                "score": self.score,
                "band": self.band,
                "scorecard": self.scorecard,
                "components": {c.name: c.score for c in self.components},
                "as_of": None,
            },
        )

    def to_message(
        self,
        metrics: UsageMetrics,
        profile: AccountProfile,
        computed_at: datetime,
        *,
        provisional: bool = False,
    ) -> ScoreMessage:
        """The ``tend.scores.v1`` record of this score; ``computed_at`` must be aware."""
        return built(
            ScoreMessage,
            {
                "account_id": self.account_id,
                "as_of": metrics.as_of,
                "computed_at": computed_at,
                "provisional": provisional,
                "scorecard": self.scorecard,
                "score": self.score,
                "band": self.band,
                "previous_score": self.previous_score,
                "previous_band": self.previous_band,
                "segments": self.segments,
                "components": self.components,
                "left_out": self.left_out,
                "moved": self.moved,
                "metrics": metrics,
                "name": profile.name,
                "plan": profile.plan,
                "seats": profile.seats,
                "mrr": profile.mrr,
                "renewal_date": profile.renewal_date,
                "lifecycle_stage": profile.lifecycle_stage,
                "csm_email": profile.csm_email,
                "csm_slack": profile.csm_slack,
            },
        )


def band_for(score: float | None, model: ScoringModel, scorecard: Scorecard) -> Band:
    if score is None:
        return "new" if scorecard == "onboarding" else "unknown"
    if score >= model.bands.green:
        return "green"
    if score >= model.bands.yellow:
        return "yellow"
    return "red"


def is_onboarding(metrics: UsageMetrics, profile: AccountProfile, model: ScoringModel) -> bool:
    if model.onboarding.is_onboarding_stage(profile.lifecycle_stage):
        return True
    age = metrics.account_age_days
    return age is None or age < model.onboarding.days


# -- components ----------------------------------------------------------------------------------


@dataclass
class _Card:
    """Components being scored: (name, raw points, weight, value, inputs, explanation)."""

    scored: list[tuple[str, float, float, float | None, dict[str, InputValue], str]] = field(
        default_factory=list
    )
    left_out: list[LeftOut] = field(default_factory=list)

    def add(
        self,
        name: str,
        rule: HigherIsBetter | FewerDaysIsBetter,
        value: float,
        inputs: dict[str, InputValue],
        explanation: str,
    ) -> None:
        self.scored.append((name, rule.points(value), rule.weight, value, inputs, explanation))

    def leave_out(self, name: str, reason: str) -> None:
        self.left_out.append(built(LeftOut, {"name": name, "reason": reason}))


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d is not None else None


def _pct(x: float) -> str:
    return f"{x:.0%}"


def _num(x: float) -> str:
    return f"{x:.1f}".removesuffix(".0")


def _ago(days: int) -> str:
    if days <= 0:
        return "today"
    return "yesterday" if days == 1 else f"{days} days ago"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _health(card: _Card, m: UsageMetrics, model: ScoringModel, key_features: Sequence[str]) -> None:
    c = model.components
    rule: HigherIsBetter
    for name in COMPONENTS:
        if c.get(name).weight == 0:
            card.leave_out(name, "weight is 0")
            continue
        if name == "seat_utilization":
            rule = c.seat_utilization
            if m.seats is None or m.seat_utilization is None:
                card.leave_out(name, "seats unknown (no seat count on record)")
                continue
            if m.regular_users is None:
                inputs: dict[str, InputValue] = {"mau": m.mau}
                used = f"{m.mau} of {m.seats} seats active in 28 days"
                used += f" ({_pct(m.seat_utilization)})"
            else:
                inputs = {"regular_users": m.regular_users, "mau": m.mau}
                used = (
                    f"{m.regular_users} of {m.seats} seats used regularly "
                    f"({_pct(m.seat_utilization)}; active in most of the last "
                    f"{_plural(m.regular_weeks, 'week')}; {m.mau} active in 28 days)"
                )
            card.add(
                name,
                rule,
                m.seat_utilization,
                {**inputs, "seats": m.seats, "full_at": rule.full_at},
                f"{used}; full marks at {_pct(rule.full_at)}",
            )
        elif name == "stickiness":
            rule = c.stickiness
            if m.stickiness is None:
                card.leave_out(name, "no active users in 28 days")
                continue
            card.add(
                name,
                rule,
                m.stickiness,
                {"mean_dau": round(m.mean_dau, 2), "mau": m.mau, "full_at": rule.full_at},
                f"{_num(m.mean_dau)} daily actives on average of {m.mau} monthly "
                f"({_pct(m.stickiness)} DAU/MAU); full marks at {_pct(rule.full_at)}",
            )
        elif name == "feature_breadth":
            rule = c.feature_breadth
            if m.feature_breadth is None or not key_features:
                card.leave_out(name, "no key features configured")
                continue
            unused = [f.feature for f in m.features if f.uses_28d == 0]
            text = f"{m.key_features_used} of {m.key_features_total} key features used in 28 days"
            if unused:
                text += f"; unused: {', '.join(unused)}"
            if rule.full_at < 1:
                text += f"; full marks at {_pct(rule.full_at)}"
            card.add(
                name,
                rule,
                m.feature_breadth,
                {
                    "used": m.key_features_used,
                    "total": m.key_features_total,
                    "unused": ", ".join(unused),
                },
                text,
            )
        elif name == "login_trend":
            rule = c.login_trend
            w = model.trend
            if m.trend_baseline is None:
                card.leave_out(
                    name,
                    f"no baseline yet ({_plural(m.trend_baseline_weeks, 'full week')} of history "
                    f"older than {w.baseline_skip_weeks} weeks; {w.min_baseline_weeks} needed)",
                )
                continue
            if m.trend_ratio is None or m.trend_current is None:
                card.leave_out(name, "no weekly actives in the baseline weeks")
                continue
            card.add(
                name,
                rule,
                m.trend_ratio,
                {
                    "current": round(m.trend_current, 2),
                    "baseline": round(m.trend_baseline, 2),
                    "full_at": rule.full_at,
                    "zero_at": rule.zero_at,
                },
                f"{_num(m.trend_current)} weekly actives over the last "
                f"{_plural(w.current_weeks, 'week')} vs a baseline of {_num(m.trend_baseline)} "
                f"({_pct(m.trend_ratio)}); full marks at {_pct(rule.full_at)}, "
                f"none at {_pct(rule.zero_at)}",
            )
        else:
            rule_r = c.recency
            if m.days_since_last_login is not None:
                days, what = m.days_since_last_login, "last login"
            elif m.days_since_last_active is not None:
                days, what = m.days_since_last_active, "no login ever recorded; last activity"
            else:
                card.leave_out(name, "no login or activity ever recorded")
                continue
            card.add(
                name,
                rule_r,
                days,
                {
                    "days": days,
                    "last_login": _iso(m.last_login),
                    "last_active": _iso(m.last_active),
                    "full_within_days": rule_r.full_within_days,
                },
                f"{what} {_ago(days)}; full marks within "
                f"{_plural(rule_r.full_within_days, 'day')}, none after {rule_r.zero_at_days}",
            )


def _onboarding(
    card: _Card, m: UsageMetrics, model: ScoringModel, key_features: Sequence[str]
) -> None:
    o = model.onboarding
    c = o.components
    age = m.account_age_days if m.account_age_days is not None else 0
    for name in ONBOARDING_COMPONENTS:
        if c.get(name).weight == 0:
            card.leave_out(name, "weight is 0")
            continue
        if name == "seats_activated":
            rule = c.seats_activated
            if m.seats is None or m.seats_activated is None:
                card.leave_out(name, "seats unknown (no seat count on record)")
                continue
            card.add(
                name,
                rule,
                m.seats_activated,
                {"activated_users": m.activated_users, "seats": m.seats, "full_at": rule.full_at},
                f"{m.activated_users} of {m.seats} seats activated ({_pct(m.seats_activated)}); "
                f"full marks at {_pct(rule.full_at)}",
            )
        elif name == "time_to_first_value":
            rule_t = c.time_to_first_value
            if not key_features:
                card.leave_out(name, "no key features configured")
                continue
            limits = (
                f"full marks within {_plural(rule_t.full_within_days, 'day')}, "
                f"none after {rule_t.zero_at_days}"
            )
            if m.time_to_first_value_days is not None:
                ttv = m.time_to_first_value_days
                card.add(
                    name,
                    rule_t,
                    ttv,
                    {"days": ttv, "first_value": _iso(m.first_value), **_limits(rule_t)},
                    f"first key feature used after {_plural(ttv, 'day')}; {limits}",
                )
            elif age <= rule_t.full_within_days:
                card.leave_out(name, f"no key feature used yet, {_plural(age, 'day')} in; {limits}")
            else:
                # Not reached yet: the days elapsed are a lower bound of the time to value.
                card.add(
                    name,
                    rule_t,
                    age,
                    {"days": age, "first_value": None, **_limits(rule_t)},
                    f"no key feature used yet after {_plural(age, 'day')}; {limits}",
                )
        else:
            rule_f = c.first_week_logins
            logins = m.first_week_logins
            text = f"{_plural(logins, 'login')} in the first week"
            text += f"; full marks at {_num(rule_f.full_at)}"
            if m.last_login is None and m.last_active is not None:
                # Active but never a login: logins are not instrumented (see login_events).
                card.leave_out(name, "no login event ever recorded, though the account is active")
                continue
            if age < 7 and logins < rule_f.full_at:
                card.leave_out(
                    name, f"first week not over ({_plural(logins, 'login')} so far, day {age + 1})"
                )
                continue
            card.add(
                name,
                rule_f,
                logins,
                {"logins": logins, "full_at": rule_f.full_at},
                text,
            )
    if age < o.grace_days:
        # Early on, what has not happened yet is not a failure: only full marks count.
        keep = []
        for entry in card.scored:
            if entry[1] >= 100.0:
                keep.append(entry)
            else:
                card.leave_out(
                    entry[0], f"too early to judge (day {age + 1} of a {o.grace_days}-day grace)"
                )
        card.scored = keep


def _limits(rule: FewerDaysIsBetter) -> dict[str, InputValue]:
    return {"full_within_days": rule.full_within_days, "zero_at_days": rule.zero_at_days}


# -- the score -----------------------------------------------------------------------------------

_NOTHING_MOVED = Moved()


def _moved(
    previous: PreviousScore | None,
    scorecard: Scorecard,
    total: float | None,
    band: Band,
    components: Sequence[ComponentScore],
) -> Moved:
    if previous is None:
        return _NOTHING_MOVED
    now = {c.name: c.score for c in components}
    names = list(now) + [n for n in previous.components if n not in now]
    moves = []
    for n in names:
        cur, prev = now.get(n), previous.components.get(n)
        delta = round(cur - prev, 1) if cur is not None and prev is not None else None
        moves.append(
            built(ComponentMove, {"name": n, "previous": prev, "current": cur, "delta": delta})
        )
    return built(
        Moved,
        {
            "score_delta": (
                round(total - previous.score, 1)
                if total is not None and previous.score is not None
                else None
            ),
            "band_changed": band != previous.band,
            "scorecard_changed": scorecard != previous.scorecard,
            "components": tuple(moves),
        },
    )


def score(
    metrics: UsageMetrics,
    profile: AccountProfile,
    model: ScoringModel,
    key_features: Sequence[str],
    previous: PreviousScore | None = None,
) -> Score:
    effective, segments = model.for_account(profile.plan, profile.lifecycle_stage)
    scorecard: Scorecard = "onboarding" if is_onboarding(metrics, profile, effective) else "health"
    card = _Card()
    if scorecard == "onboarding":
        _onboarding(card, metrics, effective, key_features)
    else:
        _health(card, metrics, effective, key_features)

    weight_sum = sum(entry[2] for entry in card.scored)
    components = []
    total: float | None = None
    if weight_sum > 0:
        raw = 0.0
        for name, points, weight, value, inputs, text in card.scored:
            share = weight / weight_sum
            raw += share * points
            # Typed as validation would leave them: a value in days is an int, the field a float.
            components.append(
                built(
                    ComponentScore,
                    {
                        "name": name,
                        "score": float(round(points, 1)),
                        "weight": float(weight),
                        "share": round(share, 4),
                        "value": float(round(value, 4)) if value is not None else None,
                        "inputs": inputs,
                        "explanation": text,
                    },
                )
            )
        total = round(raw, 1)
    band = band_for(total, effective, scorecard)
    return built(
        Score,
        {
            "account_id": profile.account_id,
            "as_of": metrics.as_of,
            "scorecard": scorecard,
            "score": total,
            "band": band,
            "segments": segments,
            "components": tuple(components),
            "left_out": tuple(card.left_out),
            "moved": _moved(previous, scorecard, total, band, components),
            "previous_score": previous.score if previous is not None else None,
            "previous_band": previous.band if previous is not None else None,
        },
    )

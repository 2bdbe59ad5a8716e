"""The contract of ``tend.scores.v1``: one :class:`ScoreMessage` per account score, as JSON.

The scorer publishes one after every (re)score, key = account id; the alerts service consumes
them. A message is self-contained: the score and its band, each component with the metrics
behind it and a human explanation, which components were left out and why, what moved since the
previous score, the rolling usage metrics and the account traits the alert rules need, so a
consumer never has to query the scorer's database to act on it.

Bands: ``green`` / ``yellow`` / ``red`` from the score; ``new`` (onboarding, nothing to judge
yet) and ``unknown`` (past onboarding but no component has data) when the score is ``None``.
Neither of the last two is ever "at risk".

One module of about 420 lines on purpose: the models, the example message and
:func:`row_parts`, which cuts the stored row's parts out of a message by the layout these
models serialise to, change together (a new or reordered field must meet the function).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Band = Literal["green", "yellow", "red", "new", "unknown"]
Scorecard = Literal["health", "onboarding"]
InputValue = float | int | str | None
"""A metric behind a component; dates are ISO strings so a message survives JSON unchanged."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureUsage(_Frozen):
    """One key feature's use as of the scoring date (listed for every key feature)."""

    feature: str
    first_used: date | None = None
    last_used: date | None = None
    uses_28d: int = 0
    users_28d: int = 0
    days_since_last_use: int | None = None


class UsageMetrics(_Frozen):
    """Rolling usage metrics of one account as of a date (all windows end on ``as_of``).

    ``None`` means "not defined" (no seats on record, no users, no baseline yet, never), not 0.
    Weekly series are oldest first; the last element is the week ending on ``as_of``.
    """

    account_id: str
    as_of: date
    dau: int = Field(0, description="Distinct users active on as_of.")
    wau: int = Field(0, description="Distinct users active in the last 7 days.")
    mau: int = Field(0, description="Distinct users active in the last 28 days.")
    mean_dau: float = Field(0.0, description="Mean daily actives over the last 28 days.")
    weekly_active_users: tuple[int, ...] = ()
    weekly_logins: tuple[int, ...] = ()
    daily_active_users: tuple[int, ...] = Field(
        (),
        description="Distinct active users per day, the last 35 days (the account's days only), "
        "oldest first; the last is as_of.",
    )
    seats: int | None = None
    seat_utilization: float | None = Field(
        None,
        description="regular_users / seats (mau / seats before the account's first whole week).",
    )
    stickiness: float | None = Field(None, description="mean_dau / mau.")
    key_features_total: int = 0
    key_features_used: int = Field(0, description="Key features used in the last 28 days.")
    feature_breadth: float | None = Field(None, description="key_features_used / total.")
    features: tuple[FeatureUsage, ...] = ()
    first_seen: date | None = None
    last_active: date | None = None
    last_login: date | None = None
    days_since_last_login: int | None = None
    days_since_last_active: int | None = None
    trend_current: float | None = Field(
        None, description="Mean weekly active users of the current weeks."
    )
    trend_baseline: float | None = Field(
        None, description="Median weekly active users of the baseline weeks."
    )
    trend_baseline_weeks: int = Field(0, description="Weeks of history in the baseline.")
    trend_ratio: float | None = Field(None, description="trend_current / trend_baseline.")
    trend_slope: float | None = Field(
        None, description="Least-squares slope of weekly active users (users per week)."
    )
    trend_relative_slope: float | None = Field(
        None, description="trend_slope / mean weekly actives over the slope weeks (per week)."
    )
    trend_slope_weeks: int = Field(0, description="Weeks the slopes were fitted over.")
    logins_slope: float | None = Field(None, description="Slope of weekly logins (per week).")
    logins_relative_slope: float | None = None
    started: date | None = Field(
        None, description="The account's start: the earlier of created_at and first_seen."
    )
    account_age_days: int | None = None
    activated_users: int = Field(0, description="Distinct users ever active.")
    seats_activated: float | None = Field(None, description="activated_users / seats.")
    first_week_logins: int = 0
    first_value: date | None = Field(None, description="First use of any key feature.")
    time_to_first_value_days: int | None = None
    renewal_date: date | None = None
    days_to_renewal: int | None = Field(None, description="Negative once the date has passed.")
    regular_users: int | None = Field(
        None,
        description="Users active in most of the last whole weeks (3 of 4 by default); None "
        "before the account's first whole week.",
    )
    regular_weeks: int = Field(0, description="Whole weeks regular_users was judged on.")
    champion: str | None = Field(
        None, description="The champion's user id: named by the operator, else inferred."
    )
    champion_source: Literal["named", "inferred"] | None = None
    champion_last_active: date | None = None
    champion_days_since_active: int | None = None
    champion_weeks_active: int = Field(
        0, description="Weeks the champion was active in, of champion_weeks_observed."
    )
    champion_weeks_observed: int = Field(
        0, description="Whole weeks of the window before the champion's current quiet run."
    )
    users_weekly_rate: float | None = Field(
        None,
        description="Median share of the whole weeks (of 12) a user was active in: how often "
        "people of this account skip a week.",
    )
    top_user: str | None = Field(None, description="The champion (kept for older readers).")
    top_user_last_login: date | None = None
    top_user_days_since_login: int | None = None


class ComponentScore(_Frozen):
    """One scored component: its points, what it was computed from and why, in words."""

    name: str
    score: float = Field(ge=0, le=100, description="0 to 100, rounded to 1 decimal.")
    weight: float = Field(description="The configured weight.")
    share: float = Field(description="Its share of the total after spreading left-out weights.")
    value: float | None = Field(description="The metric scored (a ratio or a number of days).")
    inputs: dict[str, InputValue] = Field(default_factory=dict)
    explanation: str


class LeftOut(_Frozen):
    name: str
    reason: str


class ComponentMove(_Frozen):
    name: str
    previous: float | None
    current: float | None
    delta: float | None = Field(description="current - previous; None when either is missing.")


class Moved(_Frozen):
    """What changed since the previous score (empty when there is none)."""

    score_delta: float | None = None
    band_changed: bool = False
    scorecard_changed: bool = False
    components: tuple[ComponentMove, ...] = ()


class PreviousScore(_Frozen):
    """What the scorer remembers of an account's last score, to say what moved."""

    score: float | None
    band: Band
    scorecard: Scorecard = "health"
    components: dict[str, float] = Field(default_factory=dict)
    as_of: date | None = None


class ScoreMessage(_Frozen):
    account_id: str
    as_of: date
    computed_at: AwareDatetime
    provisional: bool = Field(
        False,
        description="A score of today (UTC): the day is not complete, a later message for the "
        "same (account, as_of) replaces it. Scores of earlier days are final.",
    )
    scorecard: Scorecard
    score: float | None = Field(description="0 to 100 (1 decimal); None when nothing to judge.")
    band: Band
    previous_score: float | None = None
    previous_band: Band | None = None
    segments: tuple[str, ...] = Field((), description="Segment overrides applied, in order.")
    components: tuple[ComponentScore, ...] = ()
    left_out: tuple[LeftOut, ...] = ()
    moved: Moved = Field(default_factory=Moved)
    metrics: UsageMetrics
    name: str | None = None
    plan: str | None = None
    seats: int | None = None
    mrr: float | None = None
    renewal_date: date | None = None
    lifecycle_stage: str | None = None
    csm_email: str | None = None
    csm_slack: str | None = None

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ScoreMessage:
        return cls.model_validate_json(raw)

    def component(self, name: str) -> ComponentScore | None:
        return next((c for c in self.components if c.name == name), None)

    def as_previous(self) -> PreviousScore:
        return PreviousScore(
            score=self.score,
            band=self.band,
            scorecard=self.scorecard,
            components={c.name: c.score for c in self.components},
            as_of=self.as_of,
        )


def row_parts(raw: bytes) -> tuple[bytes, bytes, bytes, bytes] | None:
    """The JSON texts of a stored score's parts, cut out of a message's JSON (what
    :meth:`ScoreMessage.to_bytes` gives): the components as an object by name, the left-out
    list, the metrics and what moved. They hold the values ``model_dump(mode="json")`` gives
    (tested), without serialising the message a second time. None if ``raw`` is not laid out
    as :class:`ScoreMessage` serialises (then encode the parts on their own).

    The cuts are sound because a JSON string never holds a bare ``"``: each marker below, quotes
    included, can only be structure; the fields come in the model's order, the components hold
    no nested object but their flat ``inputs``, and no part has a key named like a later field.
    """
    start = raw.find(b',"components":[')
    left_out = raw.find(b'],"left_out":[', start)
    moved = raw.find(b'],"moved":{', left_out)
    metrics = raw.find(b'},"metrics":{', moved)
    end = raw.rfind(b'},"name":')
    if min(start, left_out, moved, metrics) < 0 or end < metrics:
        return None
    by_name = []
    inner = raw[start + 15 : left_out]
    if inner:
        for item in inner[1:-1].split(b"},{"):
            if not item.startswith(b'"name":"'):
                return None
            name = item[8 : item.find(b'"', 8)]
            if not name or b"\\" in name:
                return None
            by_name.append(b'"' + name + b'":{' + item + b"}")
    return (
        b"{" + b",".join(by_name) + b"}",
        raw[left_out + 13 : moved + 1],
        raw[metrics + 12 : end + 1],
        raw[moved + 10 : metrics + 1],
    )


EXAMPLE_SCORE = ScoreMessage(
    account_id="acme",
    as_of=date(2026, 11, 2),
    computed_at=datetime.fromisoformat("2026-11-02T10:20:00+00:00"),
    scorecard="health",
    score=57.2,
    band="yellow",
    previous_score=61.0,
    previous_band="yellow",
    components=(
        ComponentScore(
            name="seat_utilization",
            score=34.4,
            weight=25,
            share=0.25,
            value=0.275,
            inputs={"regular_users": 33, "mau": 33, "seats": 120, "full_at": 0.8},
            explanation=(
                "33 of 120 seats used regularly (28%; active in most of the last 4 weeks; "
                "33 active in 28 days); full marks at 80%"
            ),
        ),
        ComponentScore(
            name="stickiness",
            score=54.5,
            weight=15,
            share=0.15,
            value=0.1091,
            inputs={"mean_dau": 3.6, "mau": 33, "full_at": 0.2},
            explanation=(
                "3.6 daily actives on average of 33 monthly (11% DAU/MAU); full marks at 20%"
            ),
        ),
        ComponentScore(
            name="feature_breadth",
            score=66.7,
            weight=20,
            share=0.2,
            value=0.6667,
            inputs={"used": 2, "total": 3, "unused": "exports"},
            explanation="2 of 3 key features used in 28 days; unused: exports",
        ),
        ComponentScore(
            name="login_trend",
            score=48.4,
            weight=25,
            share=0.25,
            value=0.6176,
            inputs={"current": 21.0, "baseline": 34.0, "full_at": 0.85, "zero_at": 0.4},
            explanation=(
                "21 weekly actives over the last 3 weeks vs a baseline of 34 (62%); "
                "full marks at 85%, none at 40%"
            ),
        ),
        ComponentScore(
            name="recency",
            score=100.0,
            weight=15,
            share=0.15,
            value=0.0,
            inputs={
                "days": 0,
                "last_login": "2026-11-02",
                "last_active": "2026-11-02",
                "full_within_days": 2,
            },
            explanation="last login today; full marks within 2 days, none after 30",
        ),
    ),
    moved=Moved(
        score_delta=-3.8,
        components=(
            ComponentMove(name="seat_utilization", previous=34.4, current=34.4, delta=0.0),
            ComponentMove(name="stickiness", previous=54.5, current=54.5, delta=0.0),
            ComponentMove(name="feature_breadth", previous=66.7, current=66.7, delta=0.0),
            ComponentMove(name="login_trend", previous=63.6, current=48.4, delta=-15.2),
            ComponentMove(name="recency", previous=100.0, current=100.0, delta=0.0),
        ),
    ),
    metrics=UsageMetrics(
        account_id="acme",
        as_of=date(2026, 11, 2),
        dau=4,
        wau=19,
        mau=33,
        mean_dau=3.6,
        weekly_active_users=(33, 35, 34, 36, 34, 33, 30, 28, 26, 22, 21, 20),
        weekly_logins=(120, 130, 125, 131, 122, 119, 101, 96, 90, 70, 66, 61),
        seats=120,
        seat_utilization=0.275,
        stickiness=3.6 / 33,
        key_features_total=3,
        key_features_used=2,
        feature_breadth=2 / 3,
        features=(
            FeatureUsage(
                feature="reports",
                first_used=date(2025, 3, 4),
                last_used=date(2026, 11, 2),
                uses_28d=212,
                users_28d=19,
                days_since_last_use=0,
            ),
            FeatureUsage(
                feature="dashboards",
                first_used=date(2025, 3, 9),
                last_used=date(2026, 10, 30),
                uses_28d=64,
                users_28d=11,
                days_since_last_use=3,
            ),
            FeatureUsage(
                feature="exports",
                first_used=date(2025, 5, 2),
                last_used=date(2026, 8, 14),
                uses_28d=0,
                users_28d=0,
                days_since_last_use=80,
            ),
        ),
        first_seen=date(2025, 3, 14),
        last_active=date(2026, 11, 2),
        last_login=date(2026, 11, 2),
        days_since_last_login=0,
        days_since_last_active=0,
        trend_current=21.0,
        trend_baseline=34.0,
        trend_baseline_weeks=8,
        trend_ratio=21 / 34,
        trend_slope=-3.2,
        trend_relative_slope=-0.128,
        trend_slope_weeks=6,
        started=date(2025, 3, 1),
        account_age_days=611,
        activated_users=58,
        renewal_date=date(2027, 1, 15),
        days_to_renewal=74,
        regular_users=33,
        regular_weeks=4,
        champion="u-42",
        champion_source="inferred",
        champion_last_active=date(2026, 10, 12),
        champion_days_since_active=21,
        champion_weeks_active=9,
        champion_weeks_observed=9,
        users_weekly_rate=0.9167,
        top_user="u-42",
        top_user_last_login=date(2026, 10, 12),
        top_user_days_since_login=21,
    ),
    name="Acme Corp",
    plan="business",
    seats=120,
    mrr=4800.0,
    renewal_date=date(2027, 1, 15),
    lifecycle_stage="growing",
    csm_email="dana@vendor.example",
    csm_slack="U024BE7LH",
)

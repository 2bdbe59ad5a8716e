"""The health-scoring model: the ``scoring`` section of the YAML file (``TEND_CONFIG``).

Every field has a default, so an empty section means "the defaults of issue 3". A component is
a linear ramp from 0 to 100 points between a floor (``zero_at``) and a target (``full_at``); the
weights are relative (they need not add up to 100) and are spread over the components that have
data. Segments (by plan or lifecycle stage) override any part of ``components``, ``bands`` and
``onboarding``; they are merged over the base model in file order and the merged result is
validated at start like the base.

Field constraints are checked by pydantic (their location names the key); the checks that span
fields (thresholds ordered, weights not all zero, bands ordered) run on the whole model, base and
every merged segment, and raise :class:`KeyedError`, which :mod:`shared.config` reports under the
full key (``scoring.segments.0.components.login_trend.zero_at: ...``).

The key features are not here: they are ``key_features`` at the top level of the file, shared
with the feature catalog and the alert rules, and passed to the scoring functions.

One module of about 420 lines on purpose: the ``scoring`` section is one pydantic model tree with
its cross-field checks, read beside deploy/tend.yaml.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

ComponentName = Literal[
    "seat_utilization", "stickiness", "feature_breadth", "login_trend", "recency"
]
OnboardingComponentName = Literal["seats_activated", "time_to_first_value", "first_week_logins"]

COMPONENTS: tuple[ComponentName, ...] = (
    "seat_utilization",
    "stickiness",
    "feature_breadth",
    "login_trend",
    "recency",
)
ONBOARDING_COMPONENTS: tuple[OnboardingComponentName, ...] = (
    "seats_activated",
    "time_to_first_value",
    "first_week_logins",
)


class KeyedError(ValueError):
    """A model check that spans fields; ``key`` is the dotted path inside ``scoring``."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- ramps ---------------------------------------------------------------------------------------


class HigherIsBetter(_Section):
    """0 points at or below ``zero_at``, 100 at or above ``full_at``, linear in between."""

    weight: float = Field(ge=0, description="Relative weight; 0 leaves the component out.")
    full_at: float = Field(ge=0)
    zero_at: float = Field(0.0, ge=0)

    def points(self, value: float) -> float:
        if value >= self.full_at:
            return 100.0
        if value <= self.zero_at:
            return 0.0
        return 100.0 * (value - self.zero_at) / (self.full_at - self.zero_at)

    def _ordered(self, key: str) -> None:
        if not self.zero_at < self.full_at:
            raise KeyedError(
                f"{key}.zero_at", f"must be below full_at ({self.zero_at} >= {self.full_at})"
            )


class FewerDaysIsBetter(_Section):
    """100 points within ``full_within_days``, 0 at ``zero_at_days`` or more, linear between."""

    weight: float = Field(ge=0, description="Relative weight; 0 leaves the component out.")
    full_within_days: int = Field(ge=0)
    zero_at_days: int = Field(ge=1)

    def points(self, days: float) -> float:
        if days <= self.full_within_days:
            return 100.0
        if days >= self.zero_at_days:
            return 0.0
        return 100.0 * (self.zero_at_days - days) / (self.zero_at_days - self.full_within_days)

    def _ordered(self, key: str) -> None:
        if not self.full_within_days < self.zero_at_days:
            raise KeyedError(
                f"{key}.zero_at_days",
                f"must be above full_within_days ({self.zero_at_days} <= {self.full_within_days})",
            )


# -- the health scorecard ------------------------------------------------------------------------


class SeatUtilization(HigherIsBetter):
    """Users active in 28 days / licensed seats."""

    weight: float = Field(25.0, ge=0)
    full_at: float = Field(0.80, gt=0, le=1)
    zero_at: float = Field(0.0, ge=0, le=1)


class Stickiness(HigherIsBetter):
    """Mean daily actives over 28 days / users active in 28 days (DAU/MAU).

    B2B SaaS products typically sit at 10-25% DAU/MAU (weekday-only use caps it near 70%); 20% is
    the usual "good" mark, so a typical account scores 50-65 and a daily-habit account full marks.
    """

    weight: float = Field(15.0, ge=0)
    full_at: float = Field(0.20, gt=0, le=1)
    zero_at: float = Field(0.0, ge=0, le=1)


class FeatureBreadth(HigherIsBetter):
    """Key features used in 28 days / key features."""

    weight: float = Field(20.0, ge=0)
    full_at: float = Field(1.0, gt=0, le=1)
    zero_at: float = Field(0.0, ge=0, le=1)


class LoginTrendScore(HigherIsBetter):
    """Current weekly actives / the account's own baseline (see :class:`TrendWindows`)."""

    weight: float = Field(25.0, ge=0)
    full_at: float = Field(0.85, gt=0)
    zero_at: float = Field(0.40, ge=0)


class Recency(FewerDaysIsBetter):
    """Days since the last login (the last activity of any kind when no login was ever seen)."""

    weight: float = Field(15.0, ge=0)
    full_within_days: int = Field(2, ge=0)
    zero_at_days: int = Field(30, ge=1)


class Components(_Section):
    seat_utilization: SeatUtilization = Field(default_factory=SeatUtilization)
    stickiness: Stickiness = Field(default_factory=Stickiness)
    feature_breadth: FeatureBreadth = Field(default_factory=FeatureBreadth)
    login_trend: LoginTrendScore = Field(default_factory=LoginTrendScore)
    recency: Recency = Field(default_factory=Recency)

    def get(self, name: ComponentName) -> HigherIsBetter | FewerDaysIsBetter:
        comp: HigherIsBetter | FewerDaysIsBetter = getattr(self, name)
        return comp


class TrendWindows(_Section):
    """How the login trend is measured (metrics, so the same for every segment).

    Weeks are counted back from the scoring date: week 0 ends on it. The current level is the
    mean weekly active users of weeks ``0 .. current_weeks-1``; the baseline the median of weeks
    ``baseline_skip_weeks .. lookback_weeks-1`` (the weeks entirely before the last 28 days by
    default); only full weeks of the account's life count, so a young account has no baseline
    rather than a baseline of zeros.
    """

    current_weeks: int = Field(3, ge=1, le=12)
    baseline_skip_weeks: int = Field(4, ge=1, le=11)
    lookback_weeks: int = Field(12, ge=2, le=12)
    min_baseline_weeks: int = Field(2, ge=1, le=11)
    slope_weeks: int = Field(6, ge=3, le=12, description="Weeks in the least-squares slope.")
    regular_weeks: int = Field(
        4, ge=1, le=12, description="Whole weeks looked at to call a user regular."
    )
    regular_min_weeks: int = Field(
        3, ge=1, le=12, description="Weeks of those a regular user was active in."
    )
    champion_recent_weeks: int = Field(
        4,
        ge=1,
        le=11,
        description="A challenger must lead the champion in each of these last weeks to replace "
        "them; the champion is the leader of the weeks before.",
    )
    champion_margin: float = Field(
        0.25, ge=0, le=10, description="... and have this much more active days over them."
    )


class Bands(_Section):
    green: float = Field(70.0, ge=0, le=100, description="Green at or above this score.")
    yellow: float = Field(40.0, ge=0, le=100, description="Yellow at or above; red below.")


# -- onboarding ----------------------------------------------------------------------------------


class SeatsActivated(HigherIsBetter):
    """Users ever active / seats. Half the seats in the first month is a good start."""

    weight: float = Field(40.0, ge=0)
    full_at: float = Field(0.50, gt=0, le=1)
    zero_at: float = Field(0.0, ge=0, le=1)


class TimeToFirstValue(FewerDaysIsBetter):
    """Days from the account's start to the first use of any key feature."""

    weight: float = Field(40.0, ge=0)
    full_within_days: int = Field(7, ge=0)
    zero_at_days: int = Field(30, ge=1)


class FirstWeekLogins(HigherIsBetter):
    """Logins in the first 7 days of the account."""

    weight: float = Field(20.0, ge=0)
    full_at: float = Field(5.0, gt=0)
    zero_at: float = Field(0.0, ge=0)


class OnboardingComponents(_Section):
    seats_activated: SeatsActivated = Field(default_factory=SeatsActivated)
    time_to_first_value: TimeToFirstValue = Field(default_factory=TimeToFirstValue)
    first_week_logins: FirstWeekLogins = Field(default_factory=FirstWeekLogins)

    def get(self, name: OnboardingComponentName) -> HigherIsBetter | FewerDaysIsBetter:
        comp: HigherIsBetter | FewerDaysIsBetter = getattr(self, name)
        return comp


class Onboarding(_Section):
    """Accounts younger than ``days`` (or in one of ``stages``) get the onboarding scorecard."""

    days: int = Field(30, ge=0, description="Account age (days) below which it is onboarding.")
    stages: tuple[str, ...] = Field(("new",), description="Lifecycle stages scored as onboarding.")
    grace_days: int = Field(
        7,
        ge=0,
        description="In the first days a component short of full marks is left out, not scored.",
    )
    components: OnboardingComponents = Field(default_factory=OnboardingComponents)

    @field_validator("stages", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v

    def is_onboarding_stage(self, stage: str | None) -> bool:
        return stage is not None and stage.strip().lower() in {s.lower() for s in self.stages}


# -- segments ------------------------------------------------------------------------------------


class SegmentMatch(_Section):
    """An account matches when every given criterion matches (case-insensitive)."""

    plan: tuple[str, ...] = ()
    lifecycle_stage: tuple[str, ...] = ()

    @field_validator("plan", "lifecycle_stage", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _not_empty(self) -> SegmentMatch:
        if not self.plan and not self.lifecycle_stage:
            raise ValueError("give a plan or a lifecycle_stage (or both)")
        return self

    def matches(self, plan: str | None, lifecycle_stage: str | None) -> bool:
        return _in(plan, self.plan) and _in(lifecycle_stage, self.lifecycle_stage)


def _in(value: str | None, allowed: tuple[str, ...]) -> bool:
    if not allowed:
        return True
    return value is not None and value.strip().lower() in {a.lower() for a in allowed}


class Segment(_Section):
    """A partial override: only the keys written in the file replace the base model's."""

    name: str | None = None
    match: SegmentMatch
    components: Components = Field(default_factory=Components)
    bands: Bands = Field(default_factory=Bands)
    onboarding: Onboarding = Field(default_factory=Onboarding)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        parts = [f"plan={'|'.join(self.match.plan)}"] if self.match.plan else []
        if self.match.lifecycle_stage:
            parts.append(f"lifecycle_stage={'|'.join(self.match.lifecycle_stage)}")
        return ",".join(parts)


# -- the model -----------------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


class _MergeCache(dict[tuple[int, ...], "ScoringModel"]):
    """Merged models per set of matching segments; a cache, so never part of equality."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _MergeCache)

    __hash__ = None


def _overlay(base: M, over: BaseModel) -> M:
    """``base`` with the fields explicitly set in ``over`` (recursively) put on top."""
    update: dict[str, Any] = {}
    for name in over.model_fields_set:
        new = getattr(over, name)
        old = getattr(base, name)
        if isinstance(new, BaseModel) and isinstance(old, BaseModel):
            update[name] = _overlay(old, new)
        else:
            update[name] = new
    return base.model_copy(update=update) if update else base


class ScoringModel(_Section):
    components: Components = Field(default_factory=Components)
    trend: TrendWindows = Field(default_factory=TrendWindows)
    bands: Bands = Field(default_factory=Bands)
    onboarding: Onboarding = Field(default_factory=Onboarding)
    segments: tuple[Segment, ...] = ()

    _resolved: _MergeCache = PrivateAttr(default_factory=_MergeCache)

    @model_validator(mode="after")
    def _consistent(self) -> ScoringModel:
        _check(self, "")
        t = self.trend
        if t.baseline_skip_weeks < t.current_weeks:
            raise KeyedError(
                "trend.baseline_skip_weeks",
                f"must be at least current_weeks ({t.baseline_skip_weeks} < {t.current_weeks})",
            )
        if t.baseline_skip_weeks + t.min_baseline_weeks > t.lookback_weeks:
            raise KeyedError(
                "trend.min_baseline_weeks",
                f"{t.min_baseline_weeks} baseline weeks do not fit between week "
                f"{t.baseline_skip_weeks} and lookback_weeks ({t.lookback_weeks})",
            )
        if t.regular_min_weeks > t.regular_weeks:
            raise KeyedError(
                "trend.regular_min_weeks",
                f"must be at most regular_weeks ({t.regular_min_weeks} > {t.regular_weeks})",
            )
        for i, seg in enumerate(self.segments):
            merged = self._merge((i,))
            try:
                _check(merged, f"segments.{i}.")
            except KeyedError as err:
                raise KeyedError(
                    err.key, f"{err.problem} (after merging segment {seg.label!r} over the base)"
                ) from None
        return self

    def _merge(self, indices: tuple[int, ...]) -> ScoringModel:
        model = self.model_copy(update={"segments": ()})
        for i in indices:
            seg = self.segments[i]
            update: dict[str, Any] = {}
            for part in ("components", "bands", "onboarding"):
                if part in seg.model_fields_set:
                    update[part] = _overlay(getattr(model, part), getattr(seg, part))
            model = model.model_copy(update=update)
        return model

    def for_account(
        self, plan: str | None, lifecycle_stage: str | None
    ) -> tuple[ScoringModel, tuple[str, ...]]:
        """The model with every matching segment merged in order, and the segments' labels."""
        if not self.segments:
            return self, ()
        indices = tuple(
            i for i, s in enumerate(self.segments) if s.match.matches(plan, lifecycle_stage)
        )
        if not indices:
            return self, ()
        model = self._resolved.get(indices)
        if model is None:
            model = self._merge(indices)
            self._resolved[indices] = model
        return model, tuple(self.segments[i].label for i in indices)


def _check(model: ScoringModel, prefix: str) -> None:
    comps = model.components
    for name in COMPONENTS:
        comps.get(name)._ordered(f"{prefix}components.{name}")
    if all(comps.get(n).weight == 0 for n in COMPONENTS):
        raise KeyedError(f"{prefix}components", "the weights must not all be 0")
    onb = model.onboarding.components
    for oname in ONBOARDING_COMPONENTS:
        onb.get(oname)._ordered(f"{prefix}onboarding.components.{oname}")
    if all(onb.get(n).weight == 0 for n in ONBOARDING_COMPONENTS):
        raise KeyedError(f"{prefix}onboarding.components", "the weights must not all be 0")
    if not model.bands.green > model.bands.yellow:
        raise KeyedError(
            f"{prefix}bands.green",
            f"must be above yellow ({model.bands.green} <= {model.bands.yellow})",
        )

"""The alert rules: the ``rules`` section of the YAML file (``TEND_CONFIG``).

Every key has a default (the defaults of issue 4), so an empty section means "all rules on, with
their default thresholds". The section holds the life-cycle settings every rule shares (in days
of event time ``for_days``, ``keep_firing_for_days``, ``reopen_cooldown_days``, where the earlier
names ``fire_after`` / ``resolve_after`` are still accepted; ``repeat_interval_days``,
``notify_on_resolve``, ``present_days``) and one block per rule with its thresholds, its
severity, ``enabled``, an optional ``route`` and, optionally, its own values of the shared
settings.

Field constraints are checked by pydantic (the location names the key); checks across rules
raise :class:`~shared.scoring_model.KeyedError`, which :mod:`shared.config` reports under the
full key (``rules.upsell_seats.at_least: must be above ...``).

One module of about 410 lines on purpose: the ``rules`` section is one pydantic model tree whose
checks span rules, read beside deploy/tend.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.scoring_model import KeyedError

Severity = Literal["info", "warning", "critical", "opportunity"]
RuleName = Literal[
    "login_plateau",
    "login_decline",
    "dormant",
    "feature_unused",
    "low_seat_utilization",
    "health_red",
    "health_drop",
    "renewal_risk",
    "champion_lost",
    "upsell_seats",
]
RULE_NAMES: tuple[RuleName, ...] = (
    "login_plateau",
    "login_decline",
    "dormant",
    "feature_unused",
    "low_seat_utilization",
    "health_red",
    "health_drop",
    "renewal_risk",
    "champion_lost",
    "upsell_seats",
)
WeeklySeries = Literal["weekly_active_users", "weekly_logins"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Route(_Section):
    """Where a rule's alerts go besides (or, with ``replace_csm``, instead of) the account's CSM."""

    slack_webhook_url: str | None = None
    emails: tuple[str, ...] = ()
    replace_csm: bool = Field(
        False, description="Send only here, not to the account's CSM or the default channels."
    )

    @field_validator("slack_webhook_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("https://", "http://")):
            raise ValueError("must be an http(s):// URL")
        return v

    @field_validator("emails", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v

    @field_validator("emails")
    @classmethod
    def _addresses(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for address in v:
            local, at, domain = address.strip().partition("@")
            if not (at and local and domain and "@" not in domain and " " not in address.strip()):
                raise ValueError(f"{address!r} is not an email address")
        return tuple(a.strip() for a in v)

    @model_validator(mode="after")
    def _somewhere(self) -> Route:
        if self.slack_webhook_url is None and not self.emails:
            raise ValueError("give a slack_webhook_url or emails (or both)")
        return self


class RuleSettings(_Section):
    """What every rule block accepts; ``None`` takes the section-wide value."""

    enabled: bool = True
    severity: Severity = "warning"
    for_days: int | None = Field(
        None, ge=1, le=60, validation_alias=AliasChoices("for_days", "fire_after")
    )
    keep_firing_for_days: int | None = Field(
        None, ge=1, le=60, validation_alias=AliasChoices("keep_firing_for_days", "resolve_after")
    )
    reopen_cooldown_days: int | None = Field(None, ge=0, le=365)
    repeat_interval_days: float | None = Field(None, ge=0)
    notify_on_resolve: bool | None = None
    route: Route | None = None

    @property
    def fire_after(self) -> int | None:
        """The earlier name of ``for_days`` (still accepted in the YAML)."""
        return self.for_days

    @property
    def resolve_after(self) -> int | None:
        """The earlier name of ``keep_firing_for_days`` (still accepted in the YAML)."""
        return self.keep_firing_for_days


class LoginPlateau(RuleSettings):
    """Weekly actives flat, with room to grow in regular use.

    Flat: the least-squares slope over the last ``weeks`` whole weeks is within
    ±``relative_slope`` of the account's level a week, or not told apart from 0 by ``sigmas``
    standard errors (a small account's weeks are too noisy to call a trend). Room to grow:
    the regular users (active in most of the last weeks) are under ``seat_utilization_below`` of
    the seats, by more than ``sigmas`` standard deviations of a binomial count of the seats.
    """

    weeks: int = Field(
        8, ge=3, le=12, description="Whole weeks the slope is fitted over (the last ones)."
    )
    min_weeks: int = Field(
        4, ge=3, le=12, description="A younger account is judged on its weeks, at least these."
    )
    relative_slope: float = Field(
        0.03, gt=0, le=0.5, description="|slope| / the account's own level, per week."
    )
    sigmas: float = Field(
        2.0, ge=0, le=10, description="A trend must exceed this many standard errors to count."
    )
    seat_utilization_below: float = Field(
        0.60, gt=0, le=1, description="Regular users / seats under this leaves room to grow."
    )
    series: WeeklySeries = "weekly_active_users"


class LoginDecline(RuleSettings):
    """The last of the ``current_weeks`` whole weeks at most ``ratio`` of the baseline (the
    median of the ``trailing_weeks`` before them), the earlier current weeks already down to
    ``earlier_ratio`` of it (a one-week dip, or one that recovered, is not a decline), and the
    current weeks' mean ``sigmas`` standard deviations of the week-to-week noise below the
    baseline (binomial in the users in play for weekly actives, never below the spread of the
    baseline's week-to-week changes): a small account needs a larger relative drop than a
    large one. With ``daily`` also the daily view (daily actives of the last 14 days against the
    same weekdays before them, the last ``recent_days`` not recovering: see
    :func:`services.alerts.rules.login_decline`), which tells a sustained decline from a dip that
    recovered days sooner than whole weeks can. Optionally also a relative slope at or below
    ``relative_slope``."""

    ratio: float = Field(
        0.80, gt=0, lt=1, description="The last whole week at most this share of the baseline."
    )
    earlier_ratio: float = Field(
        0.95, gt=0, le=1, description="The earlier current weeks at most this share."
    )
    current_weeks: int = Field(
        2, ge=1, le=6, description="The drop must show in these last whole weeks."
    )
    trailing_weeks: int = Field(
        8, ge=2, le=11, description="Baseline weeks before the current ones (median)."
    )
    min_baseline_weeks: int = Field(3, ge=2, le=11)
    sigmas: float = Field(
        2.5, ge=0, le=10, description="Standard deviations of noise the mean must drop by."
    )
    relative_slope: float | None = Field(
        None, lt=0, description="Also fire at or below this slope per week; null: off."
    )
    series: WeeklySeries = "weekly_active_users"
    daily: bool = Field(
        True,
        description="Also judge the daily actives of the last 14 days against the same weekdays "
        "before them, so a sustained decline is told from a dip that recovered sooner.",
    )
    earlier_sigmas: float = Field(
        1.0, ge=0, le=10, description="Daily view: the 7 days before the last 7 this far below."
    )
    earlier_drop_share: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Daily view: the 7 days before the last 7 carry at least this share of "
        "their drop (a cliff in the last week alone is a dip under way).",
    )
    recent_days: int = Field(
        3, ge=1, le=7, description="Daily view: these last days must not be recovering."
    )
    recovery_margin: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Daily view: the last recent_days may be this much above the week's share.",
    )


class Dormant(RuleSettings):
    severity: Severity = "critical"
    days: int = Field(14, ge=1)


class FeatureUnused(RuleSettings):
    days: int = Field(30, ge=1, description="Days without use after which a feature is abandoned.")
    never_adopted: bool = Field(True, description="Also fire for key features never used.")


class LowSeatUtilization(RuleSettings):
    below: float = Field(
        0.40, gt=0, le=1, description="Regular users / seats (seat_utilization) below this fires."
    )


class HealthRed(RuleSettings):
    severity: Severity = "critical"


class HealthDrop(RuleSettings):
    points: float = Field(15.0, gt=0, le=100)
    within_days: int = Field(7, ge=1, le=90)


class RenewalRisk(RuleSettings):
    severity: Severity = "critical"
    within_days: int = Field(90, ge=1)
    bands: tuple[Literal["green", "yellow", "red"], ...] = Field(
        ("yellow", "red"), min_length=1, description="Bands that put a near renewal at risk."
    )

    @field_validator("bands", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v


class ChampionLost(RuleSettings):
    """The champion (named, else inferred) quiet for ``days``+ days, a silence that had at most
    ``chance`` of happening given how regularly they were active before (each whole quiet week
    counts as a miss of their weekly rate, taken no higher than the account's typical user's),
    while the account was active within ``account_active_within_days``."""

    days: int = Field(14, ge=1, description="Days the champion has not been active.")
    chance: float = Field(
        0.01,
        gt=0,
        le=1,
        description="Fire when a silence this long had at most this chance for this champion.",
    )
    account_active_within_days: int = Field(
        7, ge=0, description="Someone else was active this recently (else it is `dormant`)."
    )


class UpsellSeats(RuleSettings):
    severity: Severity = "opportunity"
    at_least: float = Field(0.90, gt=0, le=2, description="MAU / seats at or above this fires.")


@dataclass(frozen=True, slots=True)
class Policy:
    """One rule's effective life-cycle settings, in days of event time."""

    for_days: int
    """Days the condition must have held (the first holding day counts) before it fires."""
    keep_firing_for_days: int
    """Days it must have cleared before a firing alert resolves."""
    reopen_cooldown_days: int
    """A resolved alert whose condition starts to hold again within this many days of its
    resolve continues as the same alert (a reopening), without a new opened notification."""
    repeat_interval: timedelta | None
    """``None``: an open alert is notified once, never again."""
    notify_on_resolve: bool


class RulesConfig(_Section):
    for_days: int = Field(
        2,
        ge=1,
        le=60,
        validation_alias=AliasChoices("for_days", "fire_after"),
        description="Days of event time the condition must hold before an alert fires.",
    )
    keep_firing_for_days: int = Field(
        3,
        ge=1,
        le=60,
        validation_alias=AliasChoices("keep_firing_for_days", "resolve_after"),
        description="Days of event time it must stay clear before a firing alert resolves.",
    )
    reopen_cooldown_days: int = Field(
        14,
        ge=0,
        le=365,
        description="A return within this many days of a resolve continues the same alert.",
    )
    repeat_interval_days: float = Field(
        7.0, ge=0, description="Re-notify an unacknowledged open alert this often; 0: never."
    )
    notify_on_resolve: bool = True
    present_days: int = Field(
        2,
        ge=0,
        le=60,
        description="Notify only when an account's latest final day is at most this many days "
        "before today (UTC); older days (a backfill, a lagging scorer) are recorded, not "
        "notified.",
    )

    login_plateau: LoginPlateau = Field(default_factory=LoginPlateau)
    login_decline: LoginDecline = Field(default_factory=LoginDecline)
    dormant: Dormant = Field(default_factory=Dormant)
    feature_unused: FeatureUnused = Field(default_factory=FeatureUnused)
    low_seat_utilization: LowSeatUtilization = Field(default_factory=LowSeatUtilization)
    health_red: HealthRed = Field(default_factory=HealthRed)
    health_drop: HealthDrop = Field(default_factory=HealthDrop)
    renewal_risk: RenewalRisk = Field(default_factory=RenewalRisk)
    champion_lost: ChampionLost = Field(default_factory=ChampionLost)
    upsell_seats: UpsellSeats = Field(default_factory=UpsellSeats)

    @field_validator(*RULE_NAMES, mode="before")
    @classmethod
    def _empty_is_default(cls, v: Any) -> Any:
        # `dormant:` with nothing under it (YAML null) means that rule's defaults.
        return {} if v is None else v

    @model_validator(mode="after")
    def _consistent(self) -> RulesConfig:
        plateau = self.login_plateau
        if plateau.min_weeks > plateau.weeks:
            raise KeyedError(
                "login_plateau.min_weeks",
                f"must be at most weeks ({plateau.min_weeks} > {plateau.weeks})",
            )
        decline = self.login_decline
        if decline.earlier_ratio < decline.ratio:
            raise KeyedError(
                "login_decline.earlier_ratio",
                f"must be at least ratio ({decline.earlier_ratio} < {decline.ratio})",
            )
        if decline.current_weeks + decline.trailing_weeks > 12:
            raise KeyedError(
                "login_decline.trailing_weeks",
                f"current_weeks + trailing_weeks must fit in the 12 weeks of history "
                f"({decline.current_weeks} + {decline.trailing_weeks})",
            )
        if decline.min_baseline_weeks > decline.trailing_weeks:
            raise KeyedError(
                "login_decline.min_baseline_weeks",
                f"must be at most trailing_weeks "
                f"({decline.min_baseline_weeks} > {decline.trailing_weeks})",
            )
        low, up = self.low_seat_utilization, self.upsell_seats
        if low.enabled and up.enabled and not up.at_least > low.below:
            raise KeyedError(
                "upsell_seats.at_least",
                f"must be above low_seat_utilization.below ({up.at_least} <= {low.below})",
            )
        return self

    @property
    def fire_after(self) -> int:
        """The earlier name of ``for_days`` (still accepted in the YAML)."""
        return self.for_days

    @property
    def resolve_after(self) -> int:
        """The earlier name of ``keep_firing_for_days`` (still accepted in the YAML)."""
        return self.keep_firing_for_days

    def rule(self, name: RuleName) -> RuleSettings:
        settings: RuleSettings = getattr(self, name)
        return settings

    def policy(self, name: RuleName) -> Policy:
        r = self.rule(name)
        days = (
            self.repeat_interval_days if r.repeat_interval_days is None else r.repeat_interval_days
        )
        return Policy(
            for_days=self.for_days if r.for_days is None else r.for_days,
            keep_firing_for_days=(
                self.keep_firing_for_days
                if r.keep_firing_for_days is None
                else r.keep_firing_for_days
            ),
            reopen_cooldown_days=(
                self.reopen_cooldown_days
                if r.reopen_cooldown_days is None
                else r.reopen_cooldown_days
            ),
            repeat_interval=timedelta(days=days) if days > 0 else None,
            notify_on_resolve=(
                self.notify_on_resolve if r.notify_on_resolve is None else r.notify_on_resolve
            ),
        )

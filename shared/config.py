"""The YAML file (``TEND_CONFIG``): feature catalog, login names, scoring model, alert rules,
outcomes policy, outbound webhooks.

It is validated once at start; a mistake is reported as a :class:`ConfigError` that names the
bad key (``scoring.weights.recency: Input should be a valid number``), never a stack trace.
Every section has built-in defaults, so an absent file means "the defaults".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.alert_rules import RulesConfig
from shared.format import DEFAULT_CURRENCY
from shared.outcomes.model import OutcomesPolicy
from shared.scoring_model import KeyedError, ScoringModel
from shared.webhooks.endpoints import WebhooksConfig

DEFAULT_LOGIN_EVENTS = ("Signed In", "Logged In", "Login")


class ConfigError(ValueError):
    """The YAML file is missing, unreadable or invalid; the message names the bad key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CatalogEntry(Section):
    """A feature catalog entry: the feature key (the short form, ``Report Exported: reports``, is
    just that), and what the monthly report tells the customer about it."""

    feature: str = Field(min_length=1, max_length=200, description="The feature key.")
    label: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="The feature in the customer's words (the report), e.g. 'Exported reports'.",
    )
    minutes_saved_per_use: float | None = Field(
        None,
        ge=0,
        le=1440,
        description="Minutes of work one use saves the customer; the report sums them.",
    )

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, v: Any) -> Any:
        return {"feature": v} if isinstance(v, str) else v


class TendConfig(Section):
    login_events: tuple[str, ...] = Field(
        DEFAULT_LOGIN_EVENTS, description="Event names that count as a login."
    )
    feature_catalog: dict[str, CatalogEntry] = Field(
        default_factory=dict,
        description="Event name -> feature key, or -> {feature, label, minutes_saved_per_use}.",
    )
    key_features: tuple[str, ...] = Field(
        (), description="Feature keys whose adoption is scored and watched."
    )
    scoring: ScoringModel = Field(
        default_factory=ScoringModel, description="The health-scoring model (docs/scoring.md)."
    )
    rules: RulesConfig = Field(
        default_factory=RulesConfig, description="The alert rules and life cycle (docs/alerts.md)."
    )
    currency: str = Field(
        DEFAULT_CURRENCY,
        description="ISO 4217 code of every amount (MRR, revenue at risk) in the console, the "
        "reports and the notifications, e.g. USD, EUR, GBP.",
    )
    outcomes: OutcomesPolicy = Field(
        default_factory=OutcomesPolicy,
        description="Lifecycle stages and lifetime value: new and renewal-window days, gross "
        "margin, lifetime cap (docs/retention.md).",
    )

    webhooks: WebhooksConfig = Field(
        default_factory=WebhooksConfig,
        description="Outbound webhooks: endpoints, secrets, event types (docs/webhooks.md).",
    )

    @field_validator("login_events")
    @classmethod
    def _non_empty_names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(not name.strip() for name in v):
            raise ValueError("login event names must not be blank")
        return v

    @field_validator("currency")
    @classmethod
    def _currency_code(cls, v: str) -> str:
        code = v.strip().upper()
        if len(code) != 3 or not code.isascii() or not code.isalpha():
            raise ValueError("currency must be a three-letter ISO 4217 code such as USD or EUR")
        return code

    @field_validator("scoring", "rules", "outcomes", "webhooks", mode="before")
    @classmethod
    def _empty_is_default(cls, v: Any) -> Any:
        # `scoring:`, `rules:` or `outcomes:` with nothing under it (YAML null) means the
        # defaults, like an absent key.
        return {} if v is None else v

    @model_validator(mode="after")
    def _one_value_per_feature(self) -> TendConfig:
        # Rollups are per feature, not per event: two events of one feature must agree.
        seen: dict[tuple[str, str], tuple[str, object]] = {}
        for event, entry in self.feature_catalog.items():
            for name in ("label", "minutes_saved_per_use"):
                value = getattr(entry, name)
                if value is None:
                    continue
                first = seen.setdefault((entry.feature, name), (event, value))
                if first[1] != value:
                    raise KeyedError(
                        f"feature_catalog.{event}.{name}",
                        f"{value!r} differs from {first[1]!r} given for the same feature "
                        f"{entry.feature!r} under {first[0]!r}",
                    )
        return self

    def catalog_features(self) -> set[str]:
        return {e.feature for e in self.feature_catalog.values()}

    def feature_labels(self) -> dict[str, str]:
        """Feature key -> the customer's word for it, where the catalog gives one."""
        return {e.feature: e.label for e in self.feature_catalog.values() if e.label is not None}

    def minutes_saved(self) -> dict[str, float]:
        """Feature key -> minutes one use saves, where the catalog declares it."""
        return {
            e.feature: e.minutes_saved_per_use
            for e in self.feature_catalog.values()
            if e.minutes_saved_per_use is not None
        }

    def is_login(self, event_name: str | None) -> bool:
        return event_name is not None and event_name in self.login_events

    def feature_for(self, event_name: str | None, properties: dict[str, Any]) -> str | None:
        """The catalog's feature for this event name, else ``properties.feature``."""
        if event_name is not None and event_name in self.feature_catalog:
            return self.feature_catalog[event_name].feature
        prop = properties.get("feature")
        if isinstance(prop, str) and prop.strip():
            return prop.strip()[:200]
        return None


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        parts = [str(p) for p in e["loc"]]
        msg = e["msg"]
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, KeyedError):
            # A check spanning several fields: report it under the key it names.
            parts += cause.key.split(".")
            msg = cause.problem
        loc = ".".join(parts) or "(top level)"
        lines.append(f"{loc}: {msg}")
    return "; ".join(lines)


def parse_config(data: Any, *, source: str = "config") -> TendConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    try:
        return TendConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: {_describe(err)}") from None


def load_config(path: Path | str | None) -> TendConfig:
    """Read and validate the YAML file; ``None`` gives the built-in defaults."""
    if path is None:
        return TendConfig()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{p}: cannot read the config file ({err.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML ({err})") from None
    return parse_config(data, source=str(p))

"""The "why this score" table in words: each component's measured value with its unit, the
numbers behind it with plain labels, and its thresholds as one sentence.

The scorer stores a component's inputs under model keys (``mau``, ``full_at``, ``zero_at``,
fractions such as ``0.8``); people read "monthly active users", "full marks at 80%". Pure
functions of a component's name and stored inputs (no I/O).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared import format as fmt

RATIOS = frozenset(
    {"seat_utilization", "stickiness", "feature_breadth", "login_trend", "seats_activated"}
)
"""Components measured as a fraction (shown in percent)."""
DAYS = frozenset({"recency", "time_to_first_value"})
"""Components measured in days."""
THRESHOLDS = frozenset({"full_at", "zero_at", "full_within_days", "zero_at_days"})

_INPUT_LABELS: dict[str, str] = {
    "mau": "Monthly active users",
    "regular_users": "Users active most weeks",
    "seats": "Seats",
    "mean_dau": "Daily active users, on average",
    "activated_users": "Activated users",
    "logins": "Logins in the first week",
    "last_login": "Last login",
    "last_active": "Last activity",
    "first_value": "First key feature used",
}
_COMPONENT_INPUT_LABELS: dict[str, dict[str, str]] = {
    "feature_breadth": {
        "used": "Key features used",
        "total": "Key features",
        "unused": "Unused",
    },
    "login_trend": {
        "current": "Weekly active users, recent weeks",
        "baseline": "Weekly active users, the weeks before",
    },
    "recency": {"days": "Days since"},
    "time_to_first_value": {"days": "Days to first value"},
}
_DATES = frozenset({"last_login", "last_active", "first_value"})


@dataclass(frozen=True, slots=True)
class Fact:
    """One number behind a component, as shown: ``Monthly active users: 12``."""

    label: str
    value: str
    is_date: bool = False
    """A day (kept on one line: an ISO date never breaks at its hyphens)."""


def measured(component: str, value: Any) -> str:
    """A component's measured value with its unit: ``25%``, ``35 days``, ``4 logins``."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return fmt.measure(value)
    if component in RATIOS:
        return fmt.percent(value)
    if component in DAYS:
        return fmt.days(round(value))
    if component == "first_week_logins":
        return fmt.plural(round(value), "login")
    return fmt.measure(value)


def input_label(component: str, key: str) -> str:
    """The plain label of one stored input; an unknown key still reads as words."""
    own = _COMPONENT_INPUT_LABELS.get(component, {})
    return own.get(key) or _INPUT_LABELS.get(key) or fmt.label(key)


def facts(component: str, inputs: Mapping[str, Any]) -> list[Fact]:
    """The numbers behind a component, thresholds left out (see :func:`thresholds`)."""
    shown = []
    for key, value in inputs.items():
        if key in THRESHOLDS:
            continue
        if key in _DATES:
            text = fmt.day(value) if value else "not yet"
        elif value == "" and key == "unused":
            text = "none"
        else:
            text = fmt.measure(value)
        shown.append(Fact(input_label(component, key), text, key in _DATES and bool(value)))
    return shown


def _amount(component: str, x: Any) -> str:
    if not isinstance(x, int | float) or isinstance(x, bool):
        return fmt.measure(x)
    if component in RATIOS:
        return fmt.percent(x)
    if component == "first_week_logins":
        return fmt.plural(round(x), "login")
    return fmt.trimmed(x)


def thresholds(component: str, inputs: Mapping[str, Any]) -> str | None:
    """The component's scale as a sentence: ``Full marks at 80%, none at 40%.``,
    ``Full marks within 2 days, none after 30 days.``; None when it stores none."""
    parts = []
    if (full := inputs.get("full_at")) is not None:
        parts.append(f"full marks at {_amount(component, full)}")
    if (zero := inputs.get("zero_at")) is not None:
        parts.append(f"none at {_amount(component, zero)}")
    if isinstance(within := inputs.get("full_within_days"), int | float):
        parts.append(f"full marks within {fmt.days(round(within))}")
    if isinstance(after := inputs.get("zero_at_days"), int | float):
        parts.append(f"none after {fmt.days(round(after))}")
    if not parts:
        return None
    text = ", ".join(parts)
    return f"{text[:1].upper()}{text[1:]}."

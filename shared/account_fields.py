"""The account columns operators and ``group`` calls set, and how their values are parsed.

Shared by the scorer's processor (``group`` traits, parsed leniently: a bad value is dropped)
and the profile import (:mod:`shared.accounts_csv`, ``PATCH /v1/accounts/{id}``: a bad value is
an error naming the field). Every parser raises :class:`ValueError` with a reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

ACCOUNT_FIELDS = (
    "name",
    "plan",
    "seats",
    "mrr",
    "renewal_date",
    "lifecycle_stage",
    "created_at",
    "csm_email",
    "csm_slack",
)
"""The account traits with a column of their own, in CSV column order."""

ROUTING_FIELDS = ("csm_email", "csm_slack")
"""Account columns that are alert destinations: operator data, not taken from group calls
unless ``routing_from_traits`` is on. (``csm_name`` is only shown, so it stays a trait.) The
customer's contacts (``customer_emails``, :func:`parse_emails`) are operator data only, never
a trait: like ``champion``, only the profile import and the profile API set them."""

MAX_CUSTOMER_EMAILS = 20


def _text(limit: int) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"expected text, got {type(value).__name__}")
        text = str(value).strip()
        if not text:
            raise ValueError("is blank")
        if len(text) > limit:
            raise ValueError(f"is longer than {limit} characters")
        return text

    return parse


_NUMBER_NOISE = re.compile(r"[\s,_$€£]")


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # JSON integers have no size limit; a double has
            raise ValueError(f"{value!r:.40} is too large") from None
    elif isinstance(value, str):
        cleaned = _NUMBER_NOISE.sub("", value)
        try:
            number = float(cleaned)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    else:
        raise ValueError(f"expected a number, got {type(value).__name__}")
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    if number < 0:
        raise ValueError(f"{value!r} is negative")
    return number


def parse_seats(value: Any) -> int:
    number = _number(value)
    if not number.is_integer():
        raise ValueError(f"{value!r} is not a whole number of seats")
    if number > 2**31 - 1:
        raise ValueError(f"{value!r} is too large")
    return int(number)


def parse_mrr(value: Any) -> float:
    return _number(value)


def parse_date(value: Any) -> date:
    """An ISO date, or an ISO datetime (its UTC date when it carries an offset)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not an ISO date")
    text = value.strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO date (YYYY-MM-DD)") from None
    try:
        return parsed.astimezone(UTC).date() if parsed.tzinfo else parsed.date()
    except OverflowError:  # an offset that moves it past year 1 or 9999
        raise ValueError(f"{value!r} is outside the calendar") from None


def parse_lifecycle_stage(value: Any) -> str:
    return _text(50)(value).lower()


def parse_email(value: Any) -> str:
    text = _text(320)(value)
    if "@" not in text or text.startswith("@") or text.endswith("@") or " " in text:
        raise ValueError(f"{text!r} is not an email address")
    return text


def parse_emails(value: Any) -> list[str]:
    """One address or several: a list, or text separated by commas, semicolons or spaces
    (``a@x.example; b@x.example``). Duplicates are dropped, the order kept."""
    if isinstance(value, list | tuple):
        items = list(value)
    elif isinstance(value, str):
        items = [p for p in re.split(r"[,;\s]+", value) if p]
    else:
        raise ValueError(f"expected email addresses, got {type(value).__name__}")
    if not items:
        raise ValueError("is blank")
    emails = list(dict.fromkeys(parse_email(item) for item in items))
    if len(emails) > MAX_CUSTOMER_EMAILS:
        raise ValueError(f"has {len(emails)} addresses; at most {MAX_CUSTOMER_EMAILS}")
    return emails


ACCOUNT_PARSERS: Mapping[str, Callable[[Any], Any]] = {
    "name": _text(300),
    "plan": _text(100),
    "seats": parse_seats,
    "mrr": parse_mrr,
    "renewal_date": parse_date,
    "lifecycle_stage": parse_lifecycle_stage,
    "created_at": parse_date,
    "csm_email": parse_email,
    "csm_slack": _text(200),
}
"""Column -> parser; a parser raises :class:`ValueError` with a reason for a bad value."""


def _trait_key(key: str) -> str:
    return re.sub(r"[\s_\-]", "", key).lower()


_TRAIT_ALIASES = {_trait_key(col): col for col in ACCOUNT_FIELDS}
"""``renewal_date``, ``renewalDate`` and ``Renewal Date`` all name the same column."""


def without_routing(traits: Mapping[str, Any]) -> dict[str, Any]:
    """``traits`` less the routing ones (``csm_slack``, ``csmSlack``, ``CSM Slack``...)."""
    return {
        k: v for k, v in traits.items() if _TRAIT_ALIASES.get(_trait_key(k)) not in ROUTING_FIELDS
    }


def account_fields(traits: Mapping[str, Any]) -> dict[str, Any]:
    """The typed account columns found in ``traits``; unparseable or null values are dropped."""
    fields: dict[str, Any] = {}
    for key, value in traits.items():
        column = _TRAIT_ALIASES.get(_trait_key(key))
        if column is None or value is None:
            continue
        try:
            fields[column] = ACCOUNT_PARSERS[column](value)
        except ValueError:
            continue
    return fields

"""Numbers, dates and words as people read them: the one formatting module of tend.

The console, the monthly report and the alert notifications all format through these functions
(the web templates register them as Jinja filters), so an amount, a score or a date reads the same
on every page and in every message. Every function is pure: relative times take their ``now`` or
``today`` as an argument, never a clock.

Conventions:

- ``None`` (no value) is shown as :data:`MISSING`, an em dash, by every function that takes one.
- Amounts are in the installation's one currency (``currency:`` in the configuration file,
  US dollars by default), whole units unless ``cents=True`` (``$4,500``, ``-$120``,
  ``€4,500``, ``4,500 SEK``); callers pass the code, so these functions stay pure.
- Ratios are fractions (``0.42`` is ``42%``); ``signed_percent`` shows a change of a ratio.
- Dates are ISO days (``2026-11-19``) where exactness matters (tables, messages), or short
  (``Nov 19``) in running text; times are UTC (``2026-11-19 14:03 UTC``).
- Changes of a score are in points, with an arrow or a sign but never both (``↓ 45.3 points``);
  changes of a ratio are in percent. The two are never mixed in one figure.
- Field names become plain words (``mau`` -> ``monthly active users``, ``seat_utilization`` ->
  ``Seat utilization``): people never read a model's key names.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

__all__ = [
    "CURRENCIES",
    "MISSING",
    "arrow",
    "count",
    "date_range",
    "day",
    "days",
    "days_from",
    "duration_minutes",
    "label",
    "measure",
    "money",
    "month",
    "mrr",
    "number",
    "percent",
    "plural",
    "points",
    "relative_time",
    "renewal",
    "score",
    "score_band",
    "short_day",
    "signed",
    "signed_percent",
    "timestamp",
    "trimmed",
    "words",
]

MISSING = "\u2014"
"""What a missing value shows as (an em dash)."""

DEFAULT_CURRENCY = "USD"
CURRENCIES: dict[str, str] = {
    "USD": "$",
    "EUR": "\u20ac",
    "GBP": "\u00a3",
    "JPY": "\u00a5",
    "CAD": "CA$",
    "AUD": "A$",
    "NZD": "NZ$",
    "INR": "\u20b9",
    "BRL": "R$",
}
"""ISO 4217 codes written with a symbol before the amount; any other code follows it
(``4,500 SEK``)."""


def _is_missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# -- numbers --------------------------------------------------------------------------------------


def count(n: float | None) -> str:
    """A whole number with thousands separators: ``1,234``."""
    if n is None or _is_missing(n):
        return MISSING
    return f"{round(n):,}"


def number(x: float | None, decimals: int = 0) -> str:
    """A number with thousands separators and a fixed number of decimals: ``1,234.5``."""
    if x is None or _is_missing(x):
        return MISSING
    return f"{x:,.{decimals}f}"


def trimmed(x: float | None) -> str:
    """At most one decimal and no trailing ``.0``: ``2``, ``2.5``, ``1,234.5``."""
    if x is None or _is_missing(x):
        return MISSING
    text = f"{round(x, 1):,.1f}".removesuffix(".0")
    return "0" if text == "-0" else text


def measure(value: Any) -> str:
    """A measured value of any kind (a score input, a metric): integers with separators, small
    floats to three significant digits (``0.125``), larger ones to one decimal (``1,234.5``);
    anything else as text."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return MISSING
        return f"{value:.3g}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def percent(ratio: float | None, decimals: int = 0) -> str:
    """A fraction as a percentage: ``0.42`` -> ``42%``."""
    if ratio is None or _is_missing(ratio):
        return MISSING
    return f"{100 * ratio:,.{decimals}f}%"


def signed(x: float | None, decimals: int = 0, unit: str = "") -> str:
    """A change with its sign: ``+3``, ``-2``, ``+0.5 points`` (zero shows as ``0``)."""
    if x is None or _is_missing(x):
        return MISSING
    text = f"{abs(x):,.{decimals}f}"
    if float(text.replace(",", "")) == 0:
        text = f"{0:.{decimals}f}"
    elif x > 0:
        text = "+" + text
    else:
        text = "-" + text
    return f"{text}{unit}"


def signed_percent(ratio: float | None, decimals: int = 0) -> str:
    """A change of a fraction, in percent with its sign: ``0.1`` -> ``+10%``."""
    if ratio is None or _is_missing(ratio):
        return MISSING
    return signed(100 * ratio, decimals, "%")


def score(value: float | None, decimals: int = 0) -> str:
    """A health score (0 to 100): ``58``, or ``58.4`` with ``decimals=1``."""
    if value is None or _is_missing(value):
        return MISSING
    return f"{value:.{decimals}f}"


def score_band(value: float | None, band: str) -> str:
    """``58 (yellow)``; just the band when there is no score."""
    return band if value is None or _is_missing(value) else f"{score(value)} ({band})"


def money(amount: float | None, *, cents: bool = False, currency: str = DEFAULT_CURRENCY) -> str:
    """An amount in ``currency`` (an ISO 4217 code): ``$4,500``, ``-$120``, ``4,500 SEK``;
    ``cents=True`` keeps cents that are not zero (``$4,500.50``, but ``$4,500``)."""
    if amount is None or _is_missing(amount):
        return MISSING
    if cents and not float(round(amount, 2)).is_integer():
        text = f"{abs(amount):,.2f}"
        negative = amount < 0
    else:
        rounded = round(amount)
        text = f"{abs(rounded):,}"
        negative = rounded < 0
    sign = "-" if negative else ""
    symbol = CURRENCIES.get(currency.upper())
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency.upper()}"


def mrr(amount: float | None, currency: str = DEFAULT_CURRENCY) -> str:
    """``$4,500 MRR``, or ``MRR unknown``."""
    if amount is None or _is_missing(amount):
        return "MRR unknown"
    return f"{money(amount, currency=currency)} MRR"


def plural(n: float, word: str, many: str | None = None) -> str:
    """``1 day``, ``3 days``, ``1,200 users``; ``many`` for irregular plurals."""
    noun = word if n == 1 else (many or f"{word}s")
    shown = f"{n:,}" if isinstance(n, int) else trimmed(n)
    return f"{shown} {noun}"


def points(x: float | None, decimals: int = 1, unit: bool = True) -> str:
    """A size of a score change, without sign: ``12.3 points``, ``1 point`` (pair it with
    :func:`arrow` for its direction); ``unit=False`` where a column header names the unit."""
    if x is None or _is_missing(x):
        return MISSING
    text = f"{abs(x):,.{decimals}f}"
    if not unit:
        return text
    return f"{text} {'point' if text in ('1', '1.0') else 'points'}"


def arrow(delta: float | None, steady: float = 0.0) -> str:
    """The direction of a change: ``↑``, ``↓``, or ``→`` within ``steady`` of zero."""
    if delta is None or _is_missing(delta):
        return ""
    return "\u2191" if delta > steady else "\u2193" if delta < -steady else "\u2192"


def days(n: int) -> str:
    """``1 day``, ``53 days``."""
    return plural(n, "day")


# -- dates and times ------------------------------------------------------------------------------


def _as_date(value: date | datetime | str) -> date:
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value[:10])


def day(value: date | datetime | str | None) -> str:
    """An ISO day: ``2026-11-19`` (a datetime gives its UTC day; a string its first 10 chars)."""
    if value is None:
        return MISSING
    if isinstance(value, str):
        return value[:10] if value else MISSING
    return _as_date(value).isoformat()


def short_day(value: date | datetime | str | None) -> str:
    """A day in running text: ``Nov 19``."""
    if value is None or value == "":
        return MISSING
    d = _as_date(value)
    return f"{d:%b} {d.day}"


def month(value: date | datetime | str | None) -> str:
    """A month in words: ``October 2026`` (any day of it; ``2026-10`` works too)."""
    if value is None or value == "":
        return MISSING
    if isinstance(value, str) and len(value) == 7:
        value = value + "-01"
    return f"{_as_date(value):%B %Y}"


def date_range(start: date, end: date) -> str:
    """``Nov 1 to Nov 20, 2026``; ``Dec 1, 2025 to Jan 3, 2026`` across a year."""
    if start.year == end.year:
        return f"{short_day(start)} to {short_day(end)}, {end.year}"
    return f"{short_day(start)}, {start.year} to {short_day(end)}, {end.year}"


def timestamp(at: datetime | None) -> str:
    """A moment in UTC to the minute: ``2026-11-19 14:03 UTC`` (naive datetimes are UTC)."""
    if at is None:
        return MISSING
    if at.tzinfo is not None:
        at = at.astimezone(UTC)
    return f"{at:%Y-%m-%d %H:%M} UTC"


def days_from(target: date, today: date) -> str:
    """How far a day is from ``today``: ``today``, ``in 1 day``, ``22 days ago``."""
    n = (target - today).days
    if n == 0:
        return "today"
    return f"in {days(n)}" if n > 0 else f"{days(-n)} ago"


def renewal(renewal_date: date | None, as_of: date) -> str:
    """``renews 2027-01-15 (in 53 days)``, ``renewal was 2026-11-01 (22 days ago)``, counted
    from ``as_of`` (a snapshot's day, so rendering needs no clock)."""
    if renewal_date is None:
        return "renewal date unknown"
    when = renewal_date.isoformat()
    if renewal_date >= as_of:
        return f"renews {when} ({days_from(renewal_date, as_of)})"
    return f"renewal was {when} ({days_from(renewal_date, as_of)})"


_UNITS = (("day", 86_400), ("hour", 3_600), ("minute", 60))


def relative_time(at: datetime | None, now: datetime) -> str:
    """``just now``, ``5 minutes ago``, ``in 2 hours``, ``3 days ago``: the largest whole unit
    (days at most; a date beyond 30 days shows as its day). Naive datetimes are UTC."""
    if at is None:
        return MISSING
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    seconds = (at - now).total_seconds()
    if abs(seconds) < 60:
        return "just now"
    if abs(seconds) >= 31 * 86_400:
        return day(at)
    for unit, size in _UNITS:
        n = int(abs(seconds) // size)
        if n >= 1:
            amount = plural(n, unit)
            return f"in {amount}" if seconds > 0 else f"{amount} ago"
    return "just now"  # pragma: no cover - the loop always answers from a minute up


# -- words ----------------------------------------------------------------------------------------


PLAIN_WORDS: dict[str, str] = {
    "mau": "monthly active users",
    "dau": "daily active users",
    "mean_dau": "daily active users on average",
    "wau": "weekly active users",
    "regular_users": "users active most weeks",
    "seat_utilization": "seat utilization",
    "seats_activated": "seats activated",
    "activated_users": "activated users",
    "stickiness": "stickiness (daily over monthly active users)",
    "login_trend": "login trend",
    "time_to_first_value": "time to first value",
    "first_week_logins": "logins in the first week",
    "full_at": "full marks at",
    "zero_at": "no points at",
    "full_within_days": "full marks within",
    "zero_at_days": "no points after",
    "days_since_last_login": "days since the last login",
    "last_login": "last login",
    "last_active": "last activity",
    "first_value": "first key feature used",
    "csm_email": "CSM email",
    "csm_slack": "CSM Slack",
    "mrr": "MRR",
}
"""Model keys that do not read as words once their underscores are gone."""


def words(name: str) -> str:
    """A field or rule name in words: ``login_plateau`` -> ``login plateau``, ``mau`` ->
    ``monthly active users``."""
    key = name.strip()
    return PLAIN_WORDS.get(key) or key.replace("_", " ").strip()


def label(name: str) -> str:
    """A field name as a label: ``seat_utilization`` -> ``Seat utilization``, ``mrr`` ->
    ``MRR``."""
    text = words(name)
    return text[:1].upper() + text[1:]


def duration_minutes(minutes: float | None) -> str:
    """Time in minutes as people say it: ``45 minutes``, ``1 hour``, ``12.5 hours``."""
    if minutes is None or _is_missing(minutes):
        return MISSING
    if minutes < 60:
        return plural(round(minutes), "minute")
    hours = round(minutes / 60, 1)
    return plural(int(hours) if hours.is_integer() else hours, "hour")

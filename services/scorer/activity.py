"""What the scorer knows about one account as of a date: the input of the pure scoring code.

The repository builds these from the daily rollups with a few aggregate queries per chunk of
accounts (never one query per account); :mod:`services.scorer.usage` derives the rolling
metrics from them and :mod:`services.scorer.scoring` the health score. Nothing here does I/O.

Conventions: every window ends on ``as_of`` inclusive. "Last 28 days" is
``as_of - 27 .. as_of``; week ``i`` of the 12 weekly series covers
``as_of - 7*(11-i) - 6 .. as_of - 7*(11-i)``, so the last element is the week ending on
``as_of`` and the series is oldest first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

WEEKS = 12
MONTH_DAYS = 28
DAILY_DAYS = 35
"""Days of the daily series (five whole weeks): the login_decline rule's daily view."""


@dataclass(frozen=True, slots=True)
class AccountProfile:
    """The account's traits (from ``group`` calls or ``tend accounts import``)."""

    account_id: str
    name: str | None = None
    plan: str | None = None
    seats: int | None = None
    mrr: float | None = None
    renewal_date: date | None = None
    lifecycle_stage: str | None = None
    created_at: date | None = None
    csm_email: str | None = None
    csm_slack: str | None = None
    champion: str | None = None
    """The champion's user id, when the operator named one (``tend accounts import``)."""


@dataclass(frozen=True, slots=True)
class FeatureActivity:
    """Use of one key feature; present for every configured key feature, used or not."""

    feature: str
    first_used: date | None = None
    last_used: date | None = None
    uses_28d: int = 0
    users_28d: int = 0


@dataclass(frozen=True, slots=True)
class UserWeeks:
    """One user's activity per week over the 12 weeks (oldest first, like the account's series).

    The champion and the regular users are pure functions of these, so they depend only on the
    events on or before ``as_of`` and never on what an earlier score picked.
    """

    user_id: str
    active_days: tuple[int, ...] = (0,) * WEEKS
    events: tuple[int, ...] = (0,) * WEEKS
    last_active: date | None = None
    """The user's last active day on or before ``as_of`` (outside the 12 weeks too, for a named
    champion)."""
    last_login: date | None = None

    @classmethod
    def from_row(cls, user_id: str, row: Mapping[str, Any]) -> UserWeeks:
        """From a per-user row of the reads: ``days`` and ``events`` per week, ``last`` and
        ``login`` days."""
        return cls(
            user_id=user_id,
            active_days=tuple(row["days"]),
            events=tuple(row["events"]),
            last_active=row["last"],
            last_login=row["login"],
        )


@dataclass(frozen=True, slots=True)
class AccountActivity:
    profile: AccountProfile
    as_of: date
    first_seen: date | None = None
    last_active: date | None = None
    last_login: date | None = None
    daily_active_users: tuple[int, ...] = ()
    """Distinct active users per day over the last ``DAILY_DAYS`` (35) days, oldest first (may
    be shorter when the account is younger; missing days count as 0)."""
    wau: int = 0
    """Distinct users active in the last 7 days."""
    mau: int = 0
    """Distinct users active in the last 28 days."""
    weekly_active_users: tuple[int, ...] = ()
    """Distinct active users per week, last 12 weeks, oldest first."""
    weekly_logins: tuple[int, ...] = ()
    """Login events per week, last 12 weeks, oldest first."""
    features: tuple[FeatureActivity, ...] = field(default_factory=tuple)
    activated_users: int = 0
    """Distinct users ever active in the account."""
    first_week_logins: int = 0
    """Logins in the 7 days from the account's start (created_at, else first_seen)."""
    users: tuple[UserWeeks, ...] = ()
    """Every user active in the 12 weeks (and the named champion, active or not)."""

"""Rolling usage metrics of one account, derived from its :class:`AccountActivity` (pure).

Conventions (see :mod:`services.scorer.activity`): windows end on ``as_of`` inclusive; week
``k`` back (``k = 0`` is the week ending on ``as_of``) covers ``as_of - 7k - 6 .. as_of - 7k``.
The account's start is the earlier of ``created_at`` and ``first_seen``; days and weeks before
it are not zeros but "no history", so a young account has no baseline instead of a bad one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from statistics import median

from services.scorer.activity import DAILY_DAYS, MONTH_DAYS, WEEKS, AccountActivity, FeatureActivity
from services.scorer.people import champion_of, regular_users, typical_weekly_rate
from shared.construct import built
from shared.scores import FeatureUsage, UsageMetrics
from shared.scoring_model import TrendWindows
from shared.weekly_stats import least_squares_slope

__all__ = ["UsageMetrics", "account_start", "compute_metrics", "least_squares_slope"]

_DEFAULT_WINDOWS = TrendWindows()


def account_start(activity: AccountActivity) -> date | None:
    known = [d for d in (activity.profile.created_at, activity.first_seen) if d is not None]
    return min(known) if known else None


def _ratio(num: float, den: float | None) -> float | None:
    return num / den if den else None


def _days(later: date, earlier: date | None) -> int | None:
    return (later - earlier).days if earlier is not None else None


def _padded(series: Sequence[int], n: int = WEEKS) -> list[int]:
    """The last ``n`` values, left-padded with zeros (oldest first)."""
    tail = list(series)[-n:]
    return [0] * (n - len(tail)) + tail


def _full_weeks(as_of: date, started: date | None) -> int:
    """How many whole weeks (counting back from ``as_of``) the account has lived."""
    if started is None or started > as_of:
        return 0
    return min(WEEKS, ((as_of - started).days + 1) // 7)


def _relative(slope: float | None, values: Sequence[float]) -> float | None:
    if slope is None or not values:
        return None
    mean = sum(values) / len(values)
    return slope / mean if mean > 0 else None


def compute_metrics(
    activity: AccountActivity,
    key_features: Sequence[str],
    windows: TrendWindows = _DEFAULT_WINDOWS,
) -> UsageMetrics:
    as_of = activity.as_of
    profile = activity.profile
    started = account_start(activity)
    age = _days(as_of, started)
    lived_days = MONTH_DAYS if age is None else max(1, min(MONTH_DAYS, age + 1))

    daily = list(activity.daily_active_users)[-MONTH_DAYS:]
    dau = daily[-1] if daily else 0
    # Days before the account existed are not idle days: average over its days in the window.
    mean_dau = sum(daily) / lived_days if daily else 0.0
    mau = activity.mau
    seats = profile.seats if profile.seats and profile.seats > 0 else None

    # -- key features
    by_name: dict[str, FeatureActivity] = {f.feature: f for f in activity.features}
    features: list[FeatureUsage] = []
    for key in dict.fromkeys(key_features):
        f = by_name.get(key)
        if f is None:
            f = FeatureActivity(feature=key)
        features.append(
            built(
                FeatureUsage,
                {
                    "feature": key,
                    "first_used": f.first_used,
                    "last_used": f.last_used,
                    "uses_28d": f.uses_28d,
                    "users_28d": f.users_28d,
                    "days_since_last_use": _days(as_of, f.last_used),
                },
            )
        )
    used = sum(1 for f in features if f.uses_28d > 0)
    first_uses = [f.first_used for f in features if f.first_used is not None]
    first_value = min(first_uses) if first_uses else None
    ttv = None
    if first_value is not None and started is not None:
        ttv = max(0, (first_value - started).days)

    # -- login trend (weekly active users), over whole weeks of the account's life only
    wau_series = _padded(activity.weekly_active_users)
    logins_series = _padded(activity.weekly_logins)
    lived_weeks = _full_weeks(as_of, started)

    def weeks_back(series: list[int], first: int, stop: int) -> list[int]:
        """Weeks ``first .. stop-1`` back that the account lived through, oldest first."""
        # Week k back is series[WEEKS - 1 - k]: the weeks are one slice.
        last = min(stop, lived_weeks, WEEKS)
        return series[WEEKS - last : WEEKS - first] if last > first else []

    current_weeks = weeks_back(wau_series, 0, windows.current_weeks)
    current = sum(current_weeks) / len(current_weeks) if current_weeks else None
    base_weeks = weeks_back(wau_series, windows.baseline_skip_weeks, windows.lookback_weeks)
    baseline = float(median(base_weeks)) if len(base_weeks) >= windows.min_baseline_weeks else None
    ratio = current / baseline if current is not None and baseline else None
    slope_wau = weeks_back(wau_series, 0, windows.slope_weeks)
    slope_logins = weeks_back(logins_series, 0, windows.slope_weeks)
    fit = len(slope_wau) >= 3
    trend_slope = least_squares_slope(slope_wau) if fit else None
    logins_slope = least_squares_slope(slope_logins) if fit else None

    # -- people: regular users and the champion, from the same whole weeks as the trend
    regular = regular_users(
        activity.users,
        lived_weeks,
        regular_weeks=windows.regular_weeks,
        regular_min_weeks=windows.regular_min_weeks,
    )
    champion = champion_of(
        activity.users,
        as_of,
        lived_weeks,
        named=profile.champion,
        recent_weeks=windows.champion_recent_weeks,
        margin=windows.champion_margin,
    )
    champion_login = champion.last_login if champion else None

    return built(
        UsageMetrics,
        {
            "account_id": profile.account_id,
            "as_of": as_of,
            "dau": dau,
            "wau": activity.wau,
            "mau": mau,
            "mean_dau": mean_dau,
            "weekly_active_users": tuple(wau_series),
            "weekly_logins": tuple(logins_series),
            "daily_active_users": tuple(activity.daily_active_users[-DAILY_DAYS:]),
            "seats": seats,
            # Before a whole week there is no "regular" yet: seats seen at all is all there is.
            "seat_utilization": _ratio(mau if regular is None else regular[0], seats),
            "stickiness": _ratio(mean_dau, mau),
            "key_features_total": len(features),
            "key_features_used": used,
            "feature_breadth": used / len(features) if features else None,
            "features": tuple(features),
            "first_seen": activity.first_seen,
            "last_active": activity.last_active,
            "last_login": activity.last_login,
            "days_since_last_login": _days(as_of, activity.last_login),
            "days_since_last_active": _days(as_of, activity.last_active),
            "trend_current": current,
            "trend_baseline": baseline,
            "trend_baseline_weeks": len(base_weeks),
            "trend_ratio": ratio,
            "trend_slope": trend_slope,
            "trend_relative_slope": _relative(trend_slope, slope_wau),
            "trend_slope_weeks": len(slope_wau) if fit else 0,
            "logins_slope": logins_slope,
            "logins_relative_slope": _relative(logins_slope, slope_logins),
            "started": started,
            "account_age_days": age,
            "activated_users": activity.activated_users,
            "seats_activated": _ratio(activity.activated_users, seats),
            "first_week_logins": activity.first_week_logins,
            "first_value": first_value,
            "time_to_first_value_days": ttv,
            "renewal_date": profile.renewal_date,
            "days_to_renewal": _days(profile.renewal_date, as_of) if profile.renewal_date else None,
            "regular_users": None if regular is None else regular[0],
            "regular_weeks": 0 if regular is None else regular[1],
            "champion": champion.user_id if champion else None,
            "champion_source": champion.source if champion else None,
            "champion_last_active": champion.last_active if champion else None,
            "champion_days_since_active": _days(as_of, champion.last_active) if champion else None,
            "champion_weeks_active": champion.weeks_active if champion else 0,
            "champion_weeks_observed": champion.weeks_observed if champion else 0,
            "users_weekly_rate": typical_weekly_rate(activity.users, lived_weeks),
            "top_user": champion.user_id if champion else None,
            "top_user_last_login": champion_login,
            "top_user_days_since_login": _days(as_of, champion_login),
        },
    )


def week_range(as_of: date, weeks_back: int) -> tuple[date, date]:
    """First and last day of the week ``weeks_back`` weeks before the one ending on ``as_of``."""
    end = as_of - timedelta(days=7 * weeks_back)
    return end - timedelta(days=6), end

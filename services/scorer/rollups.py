"""A chunk of accounts' daily rollups held in memory, giving the same
:class:`~services.scorer.activity.AccountActivity` as
:meth:`ScoringRepository.load_activity <services.scorer.repository.ScoringRepository.load_activity>`
for any day (the backtest's replay: one read per chunk instead of nine queries per day).

It follows ``load_activity`` step by step (the numbered steps there); tests/backtest's parity
test compares both on every day of a simulated year, so the two cannot drift apart silently.
Everything is read up to the replay's last day; windows end on ``as_of`` inclusive.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scorer.activity import (
    DAILY_DAYS,
    MONTH_DAYS,
    WEEKS,
    AccountActivity,
    AccountProfile,
    FeatureActivity,
    UserWeeks,
)
from services.scorer.repository import ACCOUNTS, _as_date, _chunks, profile_of
from shared.account_fields import ACCOUNT_FIELDS
from shared.db.models import AccountDay, FeatureDay, FeatureUserDay, UserDay

__all__ = ["RollupMemory", "load_rollups"]


def _last_on_or_before(days: Sequence[date], as_of: date) -> date | None:
    i = bisect_right(days, as_of)
    return days[i - 1] if i else None


@dataclass(slots=True)
class _Account:
    profile: AccountProfile
    first_seen: date | None
    start: date | None
    """``coalesce(created_at, first_seen)``: the first week's logins count from it."""
    days: dict[date, tuple[int, int]] = field(default_factory=dict)
    """account_days: day -> (logins, active_users)."""
    active_days: list[date] = field(default_factory=list)
    login_days: list[date] = field(default_factory=list)
    users: dict[date, list[tuple[str, int, int]]] = field(default_factory=dict)
    """user_days: day -> [(user, events, logins)]."""
    user_firsts: list[date] = field(default_factory=list)
    """Each user's first active day (sorted): users ever active up to a day."""
    user_days: dict[str, list[date]] = field(default_factory=dict)
    user_logins: dict[str, list[date]] = field(default_factory=dict)
    features: dict[str, dict[date, int]] = field(default_factory=dict)
    feature_days: dict[str, list[date]] = field(default_factory=dict)
    feature_users: dict[str, dict[date, list[str]]] = field(default_factory=dict)


class RollupMemory:
    """The rollups of some accounts up to a last day; :meth:`activity` answers any day."""

    def __init__(self, accounts: dict[str, _Account], key_features: Sequence[str]) -> None:
        self._accounts = accounts
        self.keys = list(dict.fromkeys(key_features))

    def activity(self, account_ids: Sequence[str], as_of: date) -> list[AccountActivity]:
        return [self._one(a, as_of) for a in dict.fromkeys(account_ids)]

    def _one(self, account_id: str, as_of: date) -> AccountActivity:
        acc = self._accounts.get(account_id)
        if acc is None:
            return AccountActivity(profile=AccountProfile(account_id=account_id), as_of=as_of)
        month_start = as_of - timedelta(days=MONTH_DAYS - 1)
        daily_start = as_of - timedelta(days=DAILY_DAYS - 1)
        week_start = as_of - timedelta(days=6)
        weeks_start = as_of - timedelta(days=7 * WEEKS - 1)
        profile = acc.profile
        seen = acc.first_seen if acc.first_seen is not None and acc.first_seen <= as_of else None

        # 2. Last activity, last login, the first week's logins (all time up to as_of).
        first_week = 0
        if acc.start is not None:
            for i in range(7):
                d = acc.start + timedelta(days=i)
                if d <= as_of and d in acc.days:
                    first_week += acc.days[d][0]

        # 3, 5, 8: the 12 weeks, day by day.
        weekly_logins = [0] * WEEKS
        daily: dict[date, int] = {}
        week_users: set[str] = set()
        month_users: set[str] = set()
        per_user: dict[str, dict[str, list[int]]] = {}
        feature_uses: dict[str, int] = defaultdict(int)
        feature_users: dict[str, set[str]] = defaultdict(set)
        for i in range(7 * WEEKS):
            d = weeks_start + timedelta(days=i)
            week = i // 7
            ad = acc.days.get(d)
            if ad is not None:
                weekly_logins[week] += ad[0]
                if d >= daily_start:
                    daily[d] = ad[1]
            for user, events, _logins in acc.users.get(d, ()):
                if d >= month_start:
                    month_users.add(user)
                    if d >= week_start:
                        week_users.add(user)
                u = per_user.get(user)
                if u is None:
                    u = per_user[user] = {"days": [0] * WEEKS, "events": [0] * WEEKS}
                u["days"][week] += 1
                u["events"][week] += events
            if d >= month_start:
                for key in self.keys:
                    uses = acc.features.get(key, {}).get(d)
                    if uses is not None:
                        feature_uses[key] += uses
                    for user in acc.feature_users.get(key, {}).get(d, ()):
                        feature_users[key].add(user)

        # 6-7. Key features.
        features = []
        for key in self.keys:
            days = acc.feature_days.get(key, [])
            last_used = _last_on_or_before(days, as_of)
            kw: dict[str, object] = {}
            if last_used is not None:
                kw = {"first_used": days[0], "last_used": last_used, "uses_28d": feature_uses[key]}
            if feature_users.get(key):
                kw["users_28d"] = len(feature_users[key])
            features.append(FeatureActivity(feature=key, **kw))  # type: ignore[arg-type]

        # 8-9. Users of the 12 weeks (their last day and login within them), and a named
        # champion quiet for longer (their last day and login ever).
        users = {}
        for user, u in per_user.items():
            login = _last_on_or_before(acc.user_logins.get(user, []), as_of)
            users[user] = UserWeeks(
                user_id=user,
                active_days=tuple(u["days"]),
                events=tuple(u["events"]),
                last_active=_last_on_or_before(acc.user_days[user], as_of),
                last_login=login if login is not None and login >= weeks_start else None,
            )
        champion = profile.champion
        if champion and champion not in users:
            users[champion] = UserWeeks(
                user_id=champion,
                last_active=_last_on_or_before(acc.user_days.get(champion, []), as_of),
                last_login=_last_on_or_before(acc.user_logins.get(champion, []), as_of),
            )

        known = [d for d in (profile.created_at, seen) if d is not None]
        origin = min(known) if known else None
        series: tuple[int, ...] = ()
        if origin is not None and origin <= as_of:
            first_day = max(daily_start, origin)
            series = tuple(
                daily.get(first_day + timedelta(days=i), 0)
                for i in range((as_of - first_day).days + 1)
            )
        return AccountActivity(
            profile=profile,
            as_of=as_of,
            first_seen=seen,
            last_active=_last_on_or_before(acc.active_days, as_of),
            last_login=_last_on_or_before(acc.login_days, as_of),
            daily_active_users=series,
            wau=len(week_users),
            mau=len(month_users),
            weekly_active_users=tuple(
                sum(1 for u in per_user.values() if u["days"][w]) for w in range(WEEKS)
            ),
            weekly_logins=tuple(weekly_logins),
            features=tuple(features),
            activated_users=bisect_right(acc.user_firsts, as_of),
            first_week_logins=first_week,
            users=tuple(users[k] for k in sorted(users)),
        )


async def load_rollups(
    session: AsyncSession, account_ids: Sequence[str], last: date, key_features: Sequence[str]
) -> RollupMemory:
    """Profiles and every rollup row of ``account_ids`` dated on or before ``last``."""
    ids = list(dict.fromkeys(account_ids))
    keys = list(dict.fromkeys(key_features))
    ac = ACCOUNTS.c
    accounts: dict[str, _Account] = {}
    for chunk in _chunks(ids):
        result = await session.execute(
            select(
                ac.account_id, ac.first_seen, ac.champion, *(ac[c] for c in ACCOUNT_FIELDS)
            ).where(ac.account_id.in_(list(chunk)))
        )
        for row in result:
            profile = profile_of(row._mapping)
            seen = _as_date(row.first_seen)
            start = profile.created_at if profile.created_at is not None else seen
            accounts[row.account_id] = _Account(profile, seen, start)
        ad, ud = AccountDay, UserDay
        for account_id, raw, logins, active in await session.execute(
            select(ad.account_id, ad.day, ad.logins, ad.active_users).where(
                ad.account_id.in_(list(chunk)), ad.day <= last
            )
        ):
            if (acc := accounts.get(account_id)) is not None:
                acc.days[_day(raw)] = (int(logins), int(active))
        for account_id, user, raw, events, logins in await session.execute(
            select(ud.account_id, ud.user_id, ud.day, ud.events, ud.logins).where(
                ud.account_id.in_(list(chunk)), ud.day <= last
            )
        ):
            if (acc := accounts.get(account_id)) is not None:
                day = _day(raw)
                acc.users.setdefault(day, []).append((user, int(events), int(logins)))
                acc.user_days.setdefault(user, []).append(day)
                if logins > 0:
                    acc.user_logins.setdefault(user, []).append(day)
        if keys:
            fd, fud = FeatureDay, FeatureUserDay
            for account_id, feature, raw, uses in await session.execute(
                select(fd.account_id, fd.feature, fd.day, fd.uses).where(
                    fd.account_id.in_(list(chunk)), fd.feature.in_(keys), fd.day <= last
                )
            ):
                if (acc := accounts.get(account_id)) is not None:
                    acc.features.setdefault(feature, {})[_day(raw)] = int(uses)
            for account_id, feature, user, raw in await session.execute(
                select(fud.account_id, fud.feature, fud.user_id, fud.day).where(
                    fud.account_id.in_(list(chunk)), fud.feature.in_(keys), fud.day <= last
                )
            ):
                if (acc := accounts.get(account_id)) is not None:
                    acc.feature_users.setdefault(feature, {}).setdefault(_day(raw), []).append(user)
    for acc in accounts.values():
        acc.active_days = sorted(acc.days)
        acc.login_days = sorted(d for d, (logins, _) in acc.days.items() if logins > 0)
        for days in acc.user_days.values():
            days.sort()
        for days in acc.user_logins.values():
            days.sort()
        acc.user_firsts = sorted(days[0] for days in acc.user_days.values())
        acc.feature_days = {f: sorted(d) for f, d in acc.features.items()}
    return RollupMemory(accounts, keys)


def _day(raw: object) -> date:
    day = _as_date(raw)
    assert day is not None
    return day

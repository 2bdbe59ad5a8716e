"""A chunk of accounts' daily rollups held in memory, giving the same
:class:`~services.scorer.activity.AccountActivity` as
:meth:`ScoringRepository.load_activity <services.scorer.repository.ScoringRepository.load_activity>`
for any day (the backtest's replay: one read per chunk instead of nine queries per day).

It follows ``load_activity`` step by step (the numbered steps of
:func:`~services.scorer.activity_reads.load_activity_portable`); tests/backtest's parity
test compares both on every day of a simulated year, so the two cannot drift apart silently.
Everything is read up to the replay's last day; windows end on ``as_of`` inclusive.

A day is answered in one of two ways with the same result: *indexed* from rolling counts per
day (:mod:`services.scorer.rollup_index`, built once per account: the backtest's way, a slice
per series instead of bisections per user and week) for the days those cover, else *counted*
from the rows. tests/backtest compares the two on every day of a random portfolio.

One module of about 510 lines on purpose: both ways answer the same question from the same
memory, side by side, and are compared by one test.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from itertools import accumulate, pairwise

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
from services.scorer.activity_reads import ACCOUNTS, _as_date, _chunks, profile_of
from services.scorer.aliases import identities, merged_people
from services.scorer.rollup_index import DenseAccount, dense_account
from shared.account_fields import ACCOUNT_FIELDS
from shared.db.models import AccountDay, FeatureDay, FeatureUserDay, UserAlias, UserDay

__all__ = ["RollupMemory", "load_rollups"]


def _last_on_or_before(days: Sequence[date], as_of: date) -> date | None:
    i = bisect_right(days, as_of)
    return days[i - 1] if i else None


def _prefix(values: Sequence[int]) -> list[int]:
    """Running sums with a leading 0: ``sum(values[i:j]) == out[j] - out[i]``."""
    return [0, *accumulate(values)]


@dataclass(slots=True)
class _Series:
    """Sorted days with a count per day, summed over any range of days by two bisections."""

    days: list[date] = field(default_factory=list)
    sums: list[int] = field(default_factory=lambda: [0])

    @classmethod
    def of(cls, by_day: dict[date, int]) -> _Series:
        days = sorted(by_day)
        return cls(days, _prefix([by_day[d] for d in days]))

    def between(self, first: date, stop: date) -> int:
        """The sum over ``first <= day < stop``."""
        return self.sums[bisect_left(self.days, stop)] - self.sums[bisect_left(self.days, first)]


@dataclass(slots=True)
class _User:
    activity: _Series
    """Active days and the events of each."""
    logins: list[date]


@dataclass(slots=True)
class _Feature:
    uses: _Series
    users: list[list[date]]
    """Each user's days with this feature, sorted."""


@dataclass(slots=True)
class _Account:
    profile: AccountProfile
    first_seen: date | None
    start: date | None
    """``coalesce(created_at, first_seen)``: the first week's logins count from it."""
    days: dict[date, tuple[int, int]] = field(default_factory=dict)
    """account_days: day -> (logins, active_users)."""
    logins: _Series = field(default_factory=_Series)
    login_days: list[date] = field(default_factory=list)
    users: dict[str, _User] = field(default_factory=dict)
    user_firsts: list[date] = field(default_factory=list)
    """Each user's first active day (sorted): users ever active up to a day."""
    features: dict[str, _Feature] = field(default_factory=dict)
    # Per account, what does not change per day (filled once the rollups are read):
    active: list[int] = field(default_factory=list)
    """Active users per day from ``origin`` (0 on a day without a row)."""
    origin: int = 0
    """The ordinal of ``active[0]``."""
    first_week_total: int = 0
    """The first week's logins once the week is over (``as_of >= start + 6``)."""
    aliases: list[tuple[str, str, date]] = field(default_factory=list)
    """(previous id, user id, day) of its alias calls; only for an account with any:"""
    user_rows: list[tuple[str, date, int, int]] = field(default_factory=list)
    """its user-days (user, day, events, logins), and"""
    feature_rows: list[tuple[str, str, date]] = field(default_factory=list)
    """its key features' user-days (feature, user, day), which step 10 merges."""
    dense: DenseAccount | None = None
    """The same rollups as rolling counts per day (:mod:`services.scorer.rollup_index`); None
    for an account with aliases (step 10 merges its people: counted from the rows)."""

    def first_week_logins(self, as_of: date) -> int:
        """Logins of the 7 days from the start, up to ``as_of``."""
        if self.start is None:
            return 0
        if as_of >= self.start + timedelta(days=6):
            return self.first_week_total
        week = (self.start + timedelta(days=i) for i in range(7))
        return sum(self.days[d][0] for d in week if d <= as_of and d in self.days)

    def active_users(self, first: date, last: date) -> tuple[int, ...]:
        """Active users of each day ``first .. last`` (0 where there is no row)."""
        lo, hi = first.toordinal() - self.origin, last.toordinal() - self.origin + 1
        if lo >= 0 and hi <= len(self.active):
            return tuple(self.active[lo:hi])
        inside = self.active[max(lo, 0) : max(min(hi, len(self.active)), 0)]
        before = min(max(0, -lo), hi - lo)
        return (0,) * before + tuple(inside) + (0,) * (hi - lo - before - len(inside))


def _quiet_champion(acc: _Account, champion: str, as_of: date) -> UserWeeks:
    """A named champion with no weeks in the window: their last day and login ever."""
    named = acc.users.get(champion)
    return UserWeeks(
        user_id=champion,
        last_active=_last_on_or_before(named.activity.days, as_of) if named else None,
        last_login=_last_on_or_before(named.logins, as_of) if named else None,
    )


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
        dense = acc.dense
        if dense is not None and dense.covers(as_of):
            return self._indexed(acc, dense, as_of)
        return self._counted(acc, as_of)

    def _counted(self, acc: _Account, as_of: date) -> AccountActivity:
        """The activity as of ``as_of``, counted from the rows (any day)."""
        month_start = as_of - timedelta(days=MONTH_DAYS - 1)
        daily_start = as_of - timedelta(days=DAILY_DAYS - 1)
        week_start = as_of - timedelta(days=6)
        weeks_start = as_of - timedelta(days=7 * WEEKS - 1)
        # Week w of the 12 covers bounds[w] <= day < bounds[w + 1]; bounds[12] is as_of + 1.
        bounds = [weeks_start + timedelta(days=7 * w) for w in range(WEEKS + 1)]
        after = bounds[WEEKS]
        profile = acc.profile
        seen = acc.first_seen if acc.first_seen is not None and acc.first_seen <= as_of else None

        # 2. The first week's logins (from the start, up to as_of).
        first_week = acc.first_week_logins(as_of)

        # 5. Logins per week of the 12, daily active users of the last 35 days.
        login_days, login_sums = acc.logins.days, acc.logins.sums
        at = [bisect_left(login_days, b) for b in bounds]
        weekly_logins = tuple(login_sums[at[w + 1]] - login_sums[at[w]] for w in range(WEEKS))

        # 3, 8. Users: active days and events per week of the 12, WAU, MAU; their last day and
        # last login within the 12 weeks.
        users: dict[str, UserWeeks] = {}
        wau = mau = 0
        weekly_users = [0] * WEEKS
        for user_id, user in acc.users.items():
            days = user.activity.days
            hi = bisect_left(days, after)
            if hi == 0 or days[hi - 1] < weeks_start:
                continue
            last = days[hi - 1]
            wau += last >= week_start
            mau += last >= month_start
            idx = [bisect_left(days, b, 0, hi) for b in bounds[:WEEKS]] + [hi]
            sums = user.activity.sums
            active = tuple(idx[w + 1] - idx[w] for w in range(WEEKS))
            for w in range(WEEKS):
                weekly_users[w] += active[w] > 0
            login = _last_on_or_before(user.logins, as_of)
            users[user_id] = UserWeeks(
                user_id=user_id,
                active_days=active,
                events=tuple(sums[idx[w + 1]] - sums[idx[w]] for w in range(WEEKS)),
                last_active=last,
                last_login=login if login is not None and login >= weeks_start else None,
            )
        # 9. A named champion quiet for longer: their last day and login ever.
        champion = profile.champion
        if champion and champion not in users:
            users[champion] = _quiet_champion(acc, champion, as_of)

        # 6-7. Key features: first and last use ever, uses and distinct users in 28 days.
        features = []
        for key in self.keys:
            f = acc.features.get(key)
            if f is None:
                features.append(FeatureActivity(feature=key))
                continue
            hi = bisect_left(f.uses.days, after)
            users_28d = 0
            for user_days in f.users:
                i = bisect_left(user_days, month_start)
                users_28d += i < len(user_days) and user_days[i] <= as_of
            if hi:
                features.append(
                    FeatureActivity(
                        feature=key,
                        first_used=f.uses.days[0],
                        last_used=f.uses.days[hi - 1],
                        uses_28d=f.uses.between(month_start, after),
                        users_28d=users_28d,
                    )
                )
            else:
                features.append(FeatureActivity(feature=key, users_28d=users_28d))

        known = [d for d in (profile.created_at, seen) if d is not None]
        origin = min(known) if known else None
        series: tuple[int, ...] = ()
        if origin is not None and origin <= as_of:
            series = acc.active_users(max(daily_start, origin), as_of)
        activated = bisect_right(acc.user_firsts, as_of)

        # 10. Aliased ids count as one user (services.scorer.aliases).
        ids = identities(acc.aliases, as_of) if acc.aliases else {}
        if ids:
            merged = merged_people(
                ids,
                [u for u, user in acc.users.items() if user.activity.days[0] <= as_of],
                acc.user_rows,
                [(f, u) for f, u, d in acc.feature_rows if month_start <= d <= as_of],
                as_of,
            )
            activated, wau, mau = merged.activated, merged.wau, merged.mau
            weekly_users = merged.weekly_users
            users = {u: UserWeeks.from_row(u, row) for u, row in merged.per_user.items()}
            if champion and champion not in users:
                users[champion] = _quiet_champion(acc, champion, as_of)
            features = [
                replace(f, users_28d=merged.feature_users.get(f.feature, 0)) for f in features
            ]
            if series:
                first = as_of - timedelta(days=len(series) - 1)
                series = tuple(
                    merged.daily.get(first + timedelta(days=i), 0) for i in range(len(series))
                )
        return AccountActivity(
            profile=profile,
            as_of=as_of,
            first_seen=seen,
            last_active=_last_on_or_before(acc.logins.days, as_of),
            last_login=_last_on_or_before(acc.login_days, as_of),
            daily_active_users=series,
            wau=wau,
            mau=mau,
            weekly_active_users=tuple(weekly_users),
            weekly_logins=weekly_logins,
            features=tuple(features),
            activated_users=activated,
            first_week_logins=first_week,
            users=tuple(users[k] for k in sorted(users)),
        )

    def _indexed(self, acc: _Account, dense: DenseAccount, as_of: date) -> AccountActivity:
        """The activity as of ``as_of`` read from the rolling counts: the same values as
        :meth:`_counted` (the steps' numbers refer to ``load_activity_portable``), for a day the
        arrays cover (from 12 weeks before the first row through the last day read)."""
        i = as_of.toordinal() - dense.origin
        profile = acc.profile
        weeks = slice(i - 7 * (WEEKS - 1), i + 1, 7)
        seen = acc.first_seen if acc.first_seen is not None and acc.first_seen <= as_of else None
        # 2. The first week's logins.
        first_week = acc.first_week_logins(as_of)
        # 3, 8, 9. Users active in the 12 weeks (and a named champion quiet for longer), in
        # the order of their ids (the arrays keep the users sorted).
        weeks_first = as_of - timedelta(days=7 * WEEKS - 1)
        users: list[UserWeeks] = []
        for user_id, u in dense.users.items():
            last = u.last[i]
            if last is None or last < weeks_first:
                continue
            login = u.last_login[i]
            users.append(
                UserWeeks(
                    user_id,
                    u.days7[weeks],
                    u.events7[weeks],
                    last,
                    login if login is not None and login >= weeks_first else None,
                )
            )
        champion = profile.champion
        if champion and all(u.user_id != champion for u in users):
            named = dense.users.get(champion)
            quiet = UserWeeks(
                user_id=champion,
                last_active=named.last[i] if named else None,
                last_login=named.last_login[i] if named else None,
            )
            users.insert(bisect_left([u.user_id for u in users], champion), quiet)
        # 6-7. Key features.
        features = []
        for key in self.keys:
            f = dense.features.get(key)
            if f is None:
                features.append(FeatureActivity(feature=key))
            elif (last_used := f.last[i]) is not None:
                features.append(
                    FeatureActivity(
                        feature=key,
                        first_used=f.first_used,
                        last_used=last_used,
                        uses_28d=f.uses28[i],
                        users_28d=f.users28[i],
                    )
                )
            else:
                features.append(FeatureActivity(feature=key, users_28d=f.users28[i]))
        known = [d for d in (profile.created_at, seen) if d is not None]
        origin = min(known) if known else None
        series: tuple[int, ...] = ()
        if origin is not None and origin <= as_of:
            daily_start = as_of - timedelta(days=DAILY_DAYS - 1)
            series = acc.active_users(max(daily_start, origin), as_of)
        return AccountActivity(
            profile=profile,
            as_of=as_of,
            first_seen=seen,
            last_active=dense.last_active[i],
            last_login=dense.last_login[i],
            daily_active_users=series,
            wau=dense.users7[i],
            mau=dense.users28[i],
            weekly_active_users=dense.users7[weeks],
            weekly_logins=dense.logins7[weeks],
            features=tuple(features),
            activated_users=dense.activated[i],
            first_week_logins=first_week,
            users=tuple(users),
        )


async def load_rollups(
    session: AsyncSession, account_ids: Sequence[str], last: date, key_features: Sequence[str]
) -> RollupMemory:
    """Profiles and every rollup row of ``account_ids`` dated on or before ``last``."""
    ids = list(dict.fromkeys(account_ids))
    keys = list(dict.fromkeys(key_features))
    ac = ACCOUNTS.c
    accounts: dict[str, _Account] = {}
    # Plain rows from the connection: the ORM's row loading (it builds each row through
    # its entity machinery) was about a sixth of the read, for the same tuples.
    connection = await session.connection()
    for chunk in _chunks(ids):
        result = await connection.execute(
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
        for account_id, raw, logins, active in await connection.execute(
            select(ad.account_id, ad.day, ad.logins, ad.active_users).where(
                ad.account_id.in_(list(chunk)), ad.day <= last
            )
        ):
            if (acc := accounts.get(account_id)) is not None:
                acc.days[_day(raw)] = (int(logins), int(active))
        al = UserAlias
        for account_id, previous, user, raw in await connection.execute(
            select(al.account_id, al.previous_id, al.user_id, al.day).where(
                al.account_id.in_(list(chunk)), al.day <= last
            )
        ):
            if (acc := accounts.get(account_id)) is not None:
                acc.aliases.append((previous, user, _day(raw)))
        # The loops below run once per row (thousands an account): what they look up per
        # row is kept to the least (the accounts with aliases in a set, dates as they come).
        aliased = {a for a, acc in accounts.items() if acc.aliases}
        user_days: dict[tuple[str, str], dict[date, int]] = defaultdict(dict)
        user_logins: dict[tuple[str, str], list[date]] = defaultdict(list)
        for account_id, user, raw, events, logins in await connection.execute(
            select(ud.account_id, ud.user_id, ud.day, ud.events, ud.logins).where(
                ud.account_id.in_(list(chunk)), ud.day <= last
            )
        ):
            day = raw if type(raw) is date else _day(raw)
            key = (account_id, user)
            user_days[key][day] = int(events)
            if logins > 0:
                user_logins[key].append(day)
            if account_id in aliased:
                accounts[account_id].user_rows.append((user, day, int(events), int(logins)))
        for (account_id, user), by_day in user_days.items():
            if (acc := accounts.get(account_id)) is not None:
                acc.users[user] = _User(
                    _Series.of(by_day), sorted(user_logins.get((account_id, user), []))
                )
        if keys:
            fd, fud = FeatureDay, FeatureUserDay
            uses: dict[tuple[str, str], dict[date, int]] = defaultdict(dict)
            for account_id, feature, raw, n in await connection.execute(
                select(fd.account_id, fd.feature, fd.day, fd.uses).where(
                    fd.account_id.in_(list(chunk)), fd.feature.in_(keys), fd.day <= last
                )
            ):
                uses[(account_id, feature)][raw if type(raw) is date else _day(raw)] = int(n)
            feature_users: dict[tuple[str, str], dict[str, list[date]]] = defaultdict(
                lambda: defaultdict(list)
            )
            for account_id, feature, user, raw in await connection.execute(
                select(fud.account_id, fud.feature, fud.user_id, fud.day).where(
                    fud.account_id.in_(list(chunk)), fud.feature.in_(keys), fud.day <= last
                )
            ):
                day = raw if type(raw) is date else _day(raw)
                feature_users[(account_id, feature)][user].append(day)
                if account_id in aliased:
                    accounts[account_id].feature_rows.append((feature, user, day))
            for key in uses.keys() | feature_users.keys():
                if (acc := accounts.get(key[0])) is not None:
                    acc.features[key[1]] = _Feature(
                        _Series.of(uses.get(key, {})),
                        [sorted(d) for d in feature_users.get(key, {}).values()],
                    )
    for acc in accounts.values():
        finish(acc, keys, last)
    return RollupMemory(accounts, keys)


def finish(acc: _Account, keys: Sequence[str], last: date) -> None:
    """What an account's memory keeps besides its rows, once they are all read (through
    ``last``)."""
    acc.logins = _Series.of({d: logins for d, (logins, _) in acc.days.items()})
    acc.login_days = sorted(d for d, (logins, _) in acc.days.items() if logins > 0)
    acc.user_firsts = sorted(u.activity.days[0] for u in acc.users.values())
    if acc.days:
        first, final = min(acc.days), max(acc.days)
        acc.origin = first.toordinal()
        acc.active = [0] * (final.toordinal() - acc.origin + 1)
        for d, (_, active) in acc.days.items():
            acc.active[d.toordinal() - acc.origin] = active
    if acc.start is not None:
        week = (acc.start + timedelta(days=i) for i in range(7))
        acc.first_week_total = sum(acc.days[d][0] for d in week if d in acc.days)
    acc.dense = None if acc.aliases else _dense(acc, keys, last)


def _dense(acc: _Account, keys: Sequence[str], last: date) -> DenseAccount | None:
    """The rolling counts from 12 weeks before the account's first row through ``last``."""
    firsts = [min(acc.days)] if acc.days else []
    firsts += [u.activity.days[0] for u in acc.users.values() if u.activity.days]
    firsts += [u.logins[0] for u in acc.users.values() if u.logins]
    for f in acc.features.values():
        firsts += f.uses.days[:1] + [days[0] for days in f.users if days]
    if not firsts or min(firsts) > last:
        return None
    users = {
        user_id: (dict(zip(u.activity.days, _counts(u.activity.sums), strict=True)), u.logins)
        for user_id, u in acc.users.items()
    }
    features = {
        key: (dict(zip(f.uses.days, _counts(f.uses.sums), strict=True)), f.users)
        for key, f in acc.features.items()
        if key in keys
    }
    origin = min(firsts) - timedelta(days=7 * (WEEKS + 1))
    return dense_account(origin, last, acc.days, users, features)


def _counts(sums: Sequence[int]) -> list[int]:
    """The values back from running sums with a leading 0."""
    return [b - a for a, b in pairwise(sums)]


def _day(raw: object) -> date:
    if type(raw) is date:  # what the drivers return for a Date column: nothing to convert
        return raw
    day = _as_date(raw)
    assert day is not None
    return day

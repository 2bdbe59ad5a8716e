"""The scorer's activity reads on any database: nine GROUP BY queries per chunk of accounts.

:func:`load_activity_portable` is what ``ScoringRepository.load_activity`` runs on SQLite, and on
PostgreSQL the reference that :mod:`services.scorer.activity_arrays` (one statement per chunk)
is tested against. Its steps are numbered; :mod:`services.scorer.rollups` and
:mod:`services.scorer.aliases` refer to them. A fixed number of queries per chunk, whatever the
chunk's size, so scoring 100,000 accounts is a few queries per chunk, not per account. Nothing
here commits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, Integer, Table, and_, case, distinct, func, literal_column, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from services.scorer.activity import (
    DAILY_DAYS,
    MONTH_DAYS,
    WEEKS,
    AccountActivity,
    AccountProfile,
    FeatureActivity,
    UserWeeks,
)
from services.scorer.aliases import load_merged_people
from shared.account_fields import ACCOUNT_FIELDS
from shared.db.models import Account, AccountDay, FeatureDay, FeatureUserDay, UserDay

ACCOUNTS: Table = Account.__table__  # type: ignore[assignment]
ACCOUNT_DAYS: Table = AccountDay.__table__  # type: ignore[assignment]
USER_DAYS: Table = UserDay.__table__  # type: ignore[assignment]
FEATURE_DAYS: Table = FeatureDay.__table__  # type: ignore[assignment]
FEATURE_USER_DAYS: Table = FeatureUserDay.__table__  # type: ignore[assignment]

_IN_CHUNK = 5000


class _AddDays(FunctionElement[date]):
    """``expr + n days`` for a DATE expression, on PostgreSQL and SQLite."""

    type = Date()
    inherit_cache = True
    name = "add_days"


@compiles(_AddDays, "postgresql")
def _add_days_pg(element: _AddDays, compiler: SQLCompiler, **kw: Any) -> str:
    expr, days = list(element.clauses)
    return f"({compiler.process(expr, **kw)} + {compiler.process(days, **kw)})"


@compiles(_AddDays, "sqlite")
def _add_days_sqlite(element: _AddDays, compiler: SQLCompiler, **kw: Any) -> str:
    expr, days = list(element.clauses)
    return f"date({compiler.process(expr, **kw)}, {compiler.process(days, **kw)} || ' days')"


def _add_days(expr: ColumnElement[Any], days: int) -> _AddDays:
    # A literal, so PostgreSQL never has to guess the type of ``date + $1``.
    return _AddDays(expr, literal_column(str(int(days))))


class _WeekOf(FunctionElement[int]):
    """``(day - start) // 7`` for a DATE column and a date literal, on PostgreSQL and SQLite:
    arithmetic instead of a CASE of 11 branches per row."""

    type = Integer()
    inherit_cache = True
    name = "week_of"


@compiles(_WeekOf, "postgresql")
def _week_of_pg(element: _WeekOf, compiler: SQLCompiler, **kw: Any) -> str:
    day, start = list(element.clauses)
    return f"(({compiler.process(day, **kw)} - DATE {compiler.process(start, **kw)}) / 7)"


@compiles(_WeekOf, "sqlite")
def _week_of_sqlite(element: _WeekOf, compiler: SQLCompiler, **kw: Any) -> str:
    day, start = list(element.clauses)
    return (
        f"CAST((julianday({compiler.process(day, **kw)}) - "
        f"julianday({compiler.process(start, **kw)})) / 7 AS INTEGER)"
    )


def _week_of(expr: ColumnElement[Any], start: date) -> _WeekOf:
    # A literal (an ISO date: no quoting to escape), so PostgreSQL never has to guess the type
    # of ``date - $1``.
    return _WeekOf(expr, literal_column(f"'{start.isoformat()}'"))


def _as_date(value: Any) -> date | None:
    """A date from a query result (SQLite returns aggregates of dates as ISO text)."""
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(str(value)[:10])


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _user_weeks(
    users: Mapping[str, Mapping[str, Any]],
    champion: str | None,
    named_last: Mapping[tuple[str, str], tuple[date | None, date | None]],
    account_id: str,
) -> tuple[UserWeeks, ...]:
    out = {user_id: UserWeeks.from_row(user_id, u) for user_id, u in users.items()}
    if champion and champion not in out:
        last, login = named_last.get((account_id, champion), (None, None))
        out[champion] = UserWeeks(user_id=champion, last_active=last, last_login=login)
    return tuple(out[k] for k in sorted(out))


def profile_of(m: RowMapping) -> AccountProfile:
    """The profile in a row of ``accounts`` (``account_id``, ``champion`` and the
    ``ACCOUNT_FIELDS`` columns)."""
    return AccountProfile(
        account_id=m["account_id"],
        name=m["name"],
        plan=m["plan"],
        seats=m["seats"],
        mrr=None if m["mrr"] is None else float(m["mrr"]),
        renewal_date=_as_date(m["renewal_date"]),
        lifecycle_stage=m["lifecycle_stage"],
        created_at=_as_date(m["created_at"]),
        csm_email=m["csm_email"],
        csm_slack=m["csm_slack"],
        champion=m["champion"],
    )


async def load_activity_portable(
    session: AsyncSession, ids: list[str], as_of: date, keys: list[str]
) -> list[AccountActivity]:
    """:meth:`ScoringRepository.load_activity
    <services.scorer.repository.ScoringRepository.load_activity>` on any database (``ids``
    and ``keys`` without duplicates): SQLite's reads, and on PostgreSQL the reference the
    array reads (:mod:`services.scorer.activity_arrays`) are tested against."""
    month_start = as_of - timedelta(days=MONTH_DAYS - 1)
    daily_start = as_of - timedelta(days=DAILY_DAYS - 1)
    week_start = as_of - timedelta(days=6)
    weeks_start = as_of - timedelta(days=7 * WEEKS - 1)

    # 1. Profiles.
    ac = ACCOUNTS.c
    profiles: dict[str, AccountProfile] = {}
    first_seen: dict[str, date | None] = {}
    result = await session.execute(
        select(ac.account_id, ac.first_seen, ac.champion, *(ac[c] for c in ACCOUNT_FIELDS)).where(
            ac.account_id.in_(ids)
        )
    )
    for row in result:
        profiles[row.account_id] = profile_of(row._mapping)
        seen = _as_date(row.first_seen)
        first_seen[row.account_id] = seen if seen is not None and seen <= as_of else None

    # 2. All-time account-day facts up to as_of: last activity, last login, first week.
    ad = ACCOUNT_DAYS.c
    start = func.coalesce(ac.created_at, ac.first_seen)
    in_first_week = and_(ad.day >= start, ad.day <= _add_days(start, 6))
    last_active: dict[str, date | None] = {}
    last_login: dict[str, date | None] = {}
    first_week: dict[str, int] = {}
    result = await session.execute(
        select(
            ad.account_id,
            func.max(ad.day),
            func.max(case((ad.logins > 0, ad.day))),
            func.coalesce(func.sum(case((in_first_week, ad.logins), else_=0)), 0),
        )
        .select_from(ACCOUNT_DAYS.outerjoin(ACCOUNTS, ac.account_id == ad.account_id))
        .where(ad.account_id.in_(ids), ad.day <= as_of)
        .group_by(ad.account_id)
    )
    for account_id, active, login, fwl in result:
        last_active[account_id] = _as_date(active)
        last_login[account_id] = _as_date(login)
        first_week[account_id] = int(fwl or 0)

    # 3. Distinct users: ever (activated), last 7 days (WAU), last 28 days (MAU).
    ud = USER_DAYS.c
    activated: dict[str, int] = {}
    wau: dict[str, int] = {}
    mau: dict[str, int] = {}
    result = await session.execute(
        select(
            ud.account_id,
            func.count(distinct(ud.user_id)),
            func.count(distinct(case((ud.day >= week_start, ud.user_id)))),
            func.count(distinct(case((ud.day >= month_start, ud.user_id)))),
        )
        .where(ud.account_id.in_(ids), ud.day <= as_of)
        .group_by(ud.account_id)
    )
    for account_id, ever, week, month in result:
        activated[account_id], wau[account_id], mau[account_id] = ever, week, month

    # 4. The week (0..11) of a day of the 12 weeks; distinct users per week come from the
    # per-user weeks of step 8.
    week_index = _week_of(ud.day, weeks_start).label("week")

    # 5. Account days of the 12 weeks: logins per week, daily active users (35 days).
    weekly_logins: dict[str, list[int]] = defaultdict(lambda: [0] * WEEKS)
    daily: dict[str, dict[date, int]] = defaultdict(dict)
    result = await session.execute(
        select(ad.account_id, ad.day, ad.logins, ad.active_users).where(
            ad.account_id.in_(ids), ad.day >= weeks_start, ad.day <= as_of
        )
    )
    for account_id, raw_day, logins, users in result:
        day = _as_date(raw_day)
        assert day is not None
        weekly_logins[account_id][(day - weeks_start).days // 7] += int(logins)
        if day >= daily_start:
            daily[account_id][day] = int(users)

    # 6-7. Key features: first/last use ever, uses and distinct users in 28 days.
    fd, fud = FEATURE_DAYS.c, FEATURE_USER_DAYS.c
    features: dict[tuple[str, str], dict[str, Any]] = {}
    if keys:
        result = await session.execute(
            select(
                fd.account_id,
                fd.feature,
                func.min(fd.day),
                func.max(fd.day),
                func.coalesce(func.sum(case((fd.day >= month_start, fd.uses), else_=0)), 0),
            )
            .where(fd.account_id.in_(ids), fd.feature.in_(keys), fd.day <= as_of)
            .group_by(fd.account_id, fd.feature)
        )
        for account_id, feature, first, last, uses in result:
            features[(account_id, feature)] = {
                "first_used": _as_date(first),
                "last_used": _as_date(last),
                "uses_28d": int(uses),
            }
        result = await session.execute(
            select(fud.account_id, fud.feature, func.count(distinct(fud.user_id)))
            .where(
                fud.account_id.in_(ids),
                fud.feature.in_(keys),
                fud.day >= month_start,
                fud.day <= as_of,
            )
            .group_by(fud.account_id, fud.feature)
        )
        for account_id, feature, users in result:
            features.setdefault((account_id, feature), {})["users_28d"] = int(users)

    # 8. Per user and week of the 12: active days, events, last active day, last login. The
    # champion and the regular users are derived from these (services.scorer.people).
    per_user: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    result = await session.execute(
        select(
            ud.account_id,
            ud.user_id,
            week_index,
            func.count(),
            func.coalesce(func.sum(ud.events), 0),
            func.max(ud.day),
            func.max(case((ud.logins > 0, ud.day))),
        )
        .where(ud.account_id.in_(ids), ud.day >= weeks_start, ud.day <= as_of)
        .group_by(ud.account_id, ud.user_id, week_index)
    )
    # A row is one user active in one week (count() >= 1): the week's distinct users are
    # its rows.
    weekly_users: dict[str, list[int]] = defaultdict(lambda: [0] * WEEKS)
    for account_id, user_id, week, days_active, events, raw_last, raw_login in result:
        u = per_user[account_id].setdefault(
            user_id, {"days": [0] * WEEKS, "events": [0] * WEEKS, "last": None, "login": None}
        )
        w = int(week)
        u["days"][w] = int(days_active)
        u["events"][w] = int(events)
        weekly_users[account_id][w] += 1
        last, login = _as_date(raw_last), _as_date(raw_login)
        if last is not None and (u["last"] is None or last > u["last"]):
            u["last"] = last
        if login is not None and (u["login"] is None or login > u["login"]):
            u["login"] = login

    # 9. A named champion may have been quiet for longer than the 12 weeks: their last
    # activity and login ever (up to as_of).
    named = [(a, p.champion) for a, p in profiles.items() if p.champion]
    named_last: dict[tuple[str, str], tuple[date | None, date | None]] = {}
    for chunk in _chunks(named):
        result = await session.execute(
            select(
                ud.account_id,
                ud.user_id,
                func.max(ud.day),
                func.max(case((ud.logins > 0, ud.day))),
            )
            .where(
                ud.account_id.in_([a for a, _ in chunk]),
                ud.user_id.in_({c for _, c in chunk if c}),
                ud.day <= as_of,
            )
            .group_by(ud.account_id, ud.user_id)
        )
        for account_id, user_id, last, login in result:
            named_last[(account_id, user_id)] = (_as_date(last), _as_date(login))

    # 10. Accounts with alias calls (on or before as_of): the per-user counts of steps 3, 5,
    # 6-7 and 8 again, with each user's aliased ids counted as one (services.scorer.aliases).
    for account_id, merged in (await load_merged_people(session, ids, as_of, keys)).items():
        activated[account_id] = merged.activated
        wau[account_id], mau[account_id] = merged.wau, merged.mau
        daily[account_id] = merged.daily
        per_user[account_id] = merged.per_user
        weekly_users[account_id] = merged.weekly_users
        for k in keys:
            features.setdefault((account_id, k), {})["users_28d"] = merged.feature_users.get(k, 0)

    window_days = [daily_start + timedelta(days=i) for i in range(DAILY_DAYS)]
    out: list[AccountActivity] = []
    for account_id in ids:
        profile = profiles.get(account_id, AccountProfile(account_id=account_id))
        seen = first_seen.get(account_id)
        known = [d for d in (profile.created_at, seen) if d is not None]
        origin = min(known) if known else None
        series: tuple[int, ...] = ()
        if origin is not None and origin <= as_of:
            first_day = max(daily_start, origin)
            days = daily.get(account_id, {})
            series = tuple(days.get(d, 0) for d in window_days[(first_day - daily_start).days :])
        out.append(
            AccountActivity(
                profile=profile,
                as_of=as_of,
                first_seen=seen,
                last_active=last_active.get(account_id),
                last_login=last_login.get(account_id),
                daily_active_users=series,
                wau=wau.get(account_id, 0),
                mau=mau.get(account_id, 0),
                weekly_active_users=tuple(weekly_users.get(account_id, [0] * WEEKS)),
                weekly_logins=tuple(weekly_logins.get(account_id, [0] * WEEKS)),
                features=tuple(
                    FeatureActivity(feature=k, **features.get((account_id, k), {})) for k in keys
                ),
                activated_users=activated.get(account_id, 0),
                first_week_logins=first_week.get(account_id, 0),
                users=_user_weeks(
                    per_user.get(account_id, {}), profile.champion, named_last, account_id
                ),
            )
        )
    return out

"""The scorer's queries: activity for a chunk of accounts, score history, work lists.

:class:`ScoringRepository` never commits; the caller's unit of work does. Its reads run a
fixed number of GROUP BY queries per chunk of accounts, whatever the chunk's size, so scoring
100,000 accounts is a few queries per chunk, not per account.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    Integer,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    distinct,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
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
from services.scorer.bulk import columns, is_postgresql, unnest
from shared.account_fields import ACCOUNT_FIELDS
from shared.bus.base import TopicPartition
from shared.db.models import (
    Account,
    AccountDay,
    ConsumerOffset,
    FeatureDay,
    FeatureUserDay,
    HealthScore,
    UserDay,
)
from shared.db.offsets import load_offsets
from shared.db.types import utcnow
from shared.db.upsert import insert_for

ACCOUNTS: Table = Account.__table__  # type: ignore[assignment]
ACCOUNT_DAYS: Table = AccountDay.__table__  # type: ignore[assignment]
USER_DAYS: Table = UserDay.__table__  # type: ignore[assignment]
FEATURE_DAYS: Table = FeatureDay.__table__  # type: ignore[assignment]
FEATURE_USER_DAYS: Table = FeatureUserDay.__table__  # type: ignore[assignment]
HEALTH_SCORES: Table = HealthScore.__table__  # type: ignore[assignment]
OFFSETS: Table = ConsumerOffset.__table__  # type: ignore[assignment]

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


@dataclass(frozen=True, slots=True)
class ScoreRow:
    """One ``health_scores`` row: an account's score as of a day, with its explanation."""

    account_id: str
    as_of: date
    score: float | None
    """None when there was nothing to judge."""
    band: str
    components: dict[str, Any] = field(default_factory=dict)
    left_out: list[Any] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    moved: dict[str, Any] = field(default_factory=dict)
    previous_score: float | None = None
    previous_band: str | None = None
    computed_at: datetime | None = None
    """Defaults to now when saved."""
    provisional: bool = False
    """A score of today, whose day is not complete yet."""

    def same_score(self, other: ScoreRow) -> bool:
        """Whether ``other`` says the same as this row (when it was computed aside)."""
        return all(getattr(self, f) == getattr(other, f) for f in _SCORE_FIELDS)

    def encoded(self) -> EncodedScore:
        """This row with its JSON parts encoded as the engine encodes them (``json.dumps``)."""
        return EncodedScore(
            account_id=self.account_id,
            as_of=self.as_of,
            score=self.score,
            band=self.band,
            components=json.dumps(self.components),
            left_out=json.dumps(list(self.left_out)),
            metrics=json.dumps(self.metrics),
            moved=json.dumps(self.moved),
            previous_score=self.previous_score,
            previous_band=self.previous_band,
            computed_at=self.computed_at,
            provisional=self.provisional,
        )


_SCORE_FIELDS = (
    "score",
    "band",
    "components",
    "left_out",
    "metrics",
    "moved",
    "previous_score",
    "previous_band",
    "provisional",
)


@dataclass(frozen=True, slots=True)
class EncodedScore:
    """A ``health_scores`` row whose JSON parts are JSON texts already (cut out of the
    published message by :func:`shared.scores.row_parts`): saved without encoding them again,
    and compared with a stored row without decoding either while the texts are the same."""

    account_id: str
    as_of: date
    score: float | None
    band: str
    components: str
    left_out: str
    metrics: str
    moved: str
    previous_score: float | None = None
    previous_band: str | None = None
    computed_at: datetime | None = None
    """Defaults to now when saved."""
    provisional: bool = False

    def same_score(self, other: EncodedScore) -> bool:
        """Whether ``other`` says the same as this row: the same values, as
        :meth:`ScoreRow.same_score` compares them (a text written by an older version may
        differ in spacing, number format or key order: then the decoded values decide)."""
        if any(getattr(self, f) != getattr(other, f) for f in _SCALAR_FIELDS):
            return False
        for f in _JSON_PARTS:
            mine, theirs = getattr(self, f), getattr(other, f)
            if mine != theirs and json.loads(mine) != json.loads(theirs):
                return False
        return True

    def decoded(self) -> ScoreRow:
        return ScoreRow(
            account_id=self.account_id,
            as_of=self.as_of,
            score=self.score,
            band=self.band,
            components=json.loads(self.components),
            left_out=json.loads(self.left_out),
            metrics=json.loads(self.metrics),
            moved=json.loads(self.moved),
            previous_score=self.previous_score,
            previous_band=self.previous_band,
            computed_at=self.computed_at,
            provisional=self.provisional,
        )


_JSON_PARTS = ("components", "left_out", "metrics", "moved")
_SCALAR_FIELDS = tuple(f for f in _SCORE_FIELDS if f not in _JSON_PARTS)


@dataclass(frozen=True, slots=True)
class StaleMark:
    """An account's re-score mark as read inside a re-score transaction."""

    rescore_from: date | None
    updated_at: datetime
    """The writer stamps this on every batch: a different value later means new events."""
    dirty: bool = True


class ScoringRepository:
    """Reads and writes of the re-scorer. Never commits; never one query per account.

    ``load_activity`` honours the window conventions of :mod:`services.scorer.activity`
    exactly and only looks at days up to ``as_of``, so scoring a past date (``tend rescore
    --as-of``) sees what was known of that date's window.
    """

    async def load_activity(
        self,
        session: AsyncSession,
        account_ids: Sequence[str],
        as_of: date,
        key_features: Sequence[str],
    ) -> list[AccountActivity]:
        """One :class:`AccountActivity` per id, in the order given (an account without a row
        gets a bare profile). A constant number of queries per call: keep chunks to a few
        thousand ids."""
        ids = list(dict.fromkeys(account_ids))
        if not ids:
            return []
        keys = list(dict.fromkeys(key_features))
        if is_postgresql(session):
            return await self._load_activity_arrays(session, ids, as_of, keys)
        return await self.load_activity_portable(session, ids, as_of, keys)

    async def load_activity_portable(
        self, session: AsyncSession, ids: list[str], as_of: date, keys: list[str]
    ) -> list[AccountActivity]:
        """:meth:`load_activity` on any database (``ids`` and ``keys`` without duplicates):
        SQLite's reads, and on PostgreSQL the reference the array reads are tested against."""
        month_start = as_of - timedelta(days=MONTH_DAYS - 1)
        daily_start = as_of - timedelta(days=DAILY_DAYS - 1)
        week_start = as_of - timedelta(days=6)
        weeks_start = as_of - timedelta(days=7 * WEEKS - 1)

        # 1. Profiles.
        ac = ACCOUNTS.c
        profiles: dict[str, AccountProfile] = {}
        first_seen: dict[str, date | None] = {}
        result = await session.execute(
            select(
                ac.account_id, ac.first_seen, ac.champion, *(ac[c] for c in ACCOUNT_FIELDS)
            ).where(ac.account_id.in_(ids))
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
                features.setdefault((account_id, k), {})["users_28d"] = merged.feature_users.get(
                    k, 0
                )

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
                series = tuple(
                    days.get(d, 0) for d in window_days[(first_day - daily_start).days :]
                )
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
                        FeatureActivity(feature=k, **features.get((account_id, k), {}))
                        for k in keys
                    ),
                    activated_users=activated.get(account_id, 0),
                    first_week_logins=first_week.get(account_id, 0),
                    users=_user_weeks(
                        per_user.get(account_id, {}), profile.champion, named_last, account_id
                    ),
                )
            )
        return out

    async def _load_activity_arrays(
        self, session: AsyncSession, ids: list[str], as_of: date, keys: list[str]
    ) -> list[AccountActivity]:
        """:meth:`load_activity` on PostgreSQL: one statement returning one row per account,
        its day and user-week rows as arrays (decoded by the driver, not row by row)."""
        weeks_start = as_of - timedelta(days=7 * WEEKS - 1)
        daily_start = as_of - timedelta(days=DAILY_DAYS - 1)
        week_start = as_of - timedelta(days=6)
        month_start = as_of - timedelta(days=MONTH_DAYS - 1)
        connection = await session.connection()
        # The planner cannot tell that each aggregate has one row per id, overestimates the
        # joins a thousandfold and would JIT-compile the plan: seconds for a query of 0.1 s.
        await connection.exec_driver_sql("SET LOCAL jit = off")
        result = await connection.exec_driver_sql(
            _ACTIVITY_SQL,
            (
                ids,
                as_of,
                weeks_start,
                month_start,
                keys,
            ),
        )
        rows = result.all()
        merged = await load_merged_people(session, ids, as_of, keys)
        window_days = [daily_start + timedelta(days=i) for i in range(DAILY_DAYS)]
        # The 12 weeks' day offsets (from weeks_start) of the daily series' first day.
        daily_from = (daily_start - weeks_start).days
        out: list[AccountActivity] = []
        for row in rows:
            account_id = row.account_id
            if row.known:
                profile = profile_of(row._mapping)
                seen = (
                    row.first_seen
                    if row.first_seen is not None and row.first_seen <= as_of
                    else None
                )
            else:
                profile = AccountProfile(account_id=account_id)
                seen = None
            weekly_logins = [0] * WEEKS
            daily = [0] * DAILY_DAYS
            if row.d_offsets:
                for offset, logins, users in zip(
                    row.d_offsets, row.d_logins, row.d_users, strict=True
                ):
                    weekly_logins[offset // 7] += logins
                    if offset >= daily_from:
                        daily[offset - daily_from] = users
            per_user: dict[str, list[Any]] = {}
            weekly_users = [0] * WEEKS
            # Each user's last day on or before as_of: the distinct users ever, in 7 and 28 days.
            last_days: dict[str, date] = {}
            if row.u_ids:
                for user_id, week, days, events, last, login in zip(
                    row.u_ids,
                    row.u_weeks,
                    row.u_days,
                    row.u_events,
                    row.u_last,
                    row.u_login,
                    strict=True,
                ):
                    known_last = last_days.get(user_id)
                    if known_last is None or last > known_last:
                        last_days[user_id] = last
                    if week is None:  # before the 12 weeks
                        continue
                    u = per_user.get(user_id)
                    if u is None:
                        u = per_user[user_id] = [[0] * WEEKS, [0] * WEEKS, last, login]
                    u[0][week] = days
                    u[1][week] = events
                    weekly_users[week] += 1
                    if last > u[2]:
                        u[2] = last
                    if login is not None and (u[3] is None or login > u[3]):
                        u[3] = login
            features: dict[str, list[Any]] = {}
            if row.f_names:
                for name, first, last, uses, users in zip(
                    row.f_names, row.f_first, row.f_last, row.f_uses, row.f_users, strict=True
                ):
                    features[name] = [first, last, uses or 0, users or 0]
            activated = len(last_days)
            wau = len([d for d in last_days.values() if d >= week_start])
            mau = len([d for d in last_days.values() if d >= month_start])
            people = merged.get(account_id)
            if people is not None:
                activated, wau, mau = people.activated, people.wau, people.mau
                daily = [people.daily.get(d, 0) for d in window_days]
                per_user = {
                    user_id: [u["days"], u["events"], u["last"], u["login"]]
                    for user_id, u in people.per_user.items()
                }
                weekly_users = people.weekly_users
                for k in keys:
                    features.setdefault(k, [None, None, 0, 0])[3] = people.feature_users.get(k, 0)
            users = [
                UserWeeks(user_id, tuple(u[0]), tuple(u[1]), u[2], u[3])
                for user_id, u in per_user.items()
            ]
            champion = profile.champion
            if champion and champion not in per_user:
                users.append(UserWeeks(champion, last_active=row.c_last, last_login=row.c_login))
            users.sort(key=_user_key)
            known = [d for d in (profile.created_at, seen) if d is not None]
            origin = min(known) if known else None
            series: tuple[int, ...] = ()
            if origin is not None and origin <= as_of:
                series = tuple(daily[max(0, (origin - daily_start).days) :])
            out.append(
                AccountActivity(
                    profile=profile,
                    as_of=as_of,
                    first_seen=seen,
                    last_active=row.last_active,
                    last_login=row.last_login,
                    daily_active_users=series,
                    wau=wau,
                    mau=mau,
                    weekly_active_users=tuple(weekly_users),
                    weekly_logins=tuple(weekly_logins),
                    features=tuple(
                        FeatureActivity(k, *features[k]) if k in features else FeatureActivity(k)
                        for k in keys
                    ),
                    activated_users=activated,
                    first_week_logins=row.first_week or 0,
                    users=tuple(users),
                )
            )
        return out

    async def load_scores(
        self, session: AsyncSession, account_ids: Sequence[str], as_of: date
    ) -> dict[str, ScoreRow]:
        """The stored scores of ``account_ids`` as of ``as_of`` (accounts without one are
        absent)."""
        out: dict[str, ScoreRow] = {}
        hs = HEALTH_SCORES.c
        for chunk in _chunks(list(dict.fromkeys(account_ids))):
            result = await session.execute(
                select(HEALTH_SCORES).where(hs.account_id.in_(list(chunk)), hs.as_of == as_of)
            )
            for row in result:
                out[row.account_id] = _score_row(dict(row._mapping))
        return out

    async def load_encoded_scores(
        self, session: AsyncSession, account_ids: Sequence[str], as_of: date
    ) -> dict[str, EncodedScore]:
        """:meth:`load_scores` with the JSON parts as stored, undecoded."""
        out: dict[str, EncodedScore] = {}
        hs = HEALTH_SCORES.c
        columns_ = [
            hs.account_id,
            hs.as_of,
            hs.score,
            hs.band,
            *(cast(hs[name], Text) for name in _JSON_PARTS),
            hs.previous_score,
            hs.previous_band,
            hs.computed_at,
            hs.provisional,
        ]
        for chunk in _chunks(list(dict.fromkeys(account_ids))):
            result = await session.execute(
                select(*columns_).where(hs.account_id.in_(list(chunk)), hs.as_of == as_of)
            )
            for row in result:
                day = _as_date(row[1])
                assert day is not None
                out[row[0]] = EncodedScore(
                    account_id=row[0],
                    as_of=day,
                    score=None if row[2] is None else float(row[2]),
                    band=row[3],
                    components=row[4],
                    left_out=row[5],
                    metrics=row[6],
                    moved=row[7],
                    previous_score=row[8],
                    previous_band=row[9],
                    computed_at=row[10],
                    provisional=bool(row[11]),
                )
        return out

    async def load_marks(
        self, session: AsyncSession, account_ids: Sequence[str]
    ) -> dict[str, StaleMark]:
        """Each account's re-score mark, read before its activity in the same transaction."""
        ac = ACCOUNTS.c
        out: dict[str, StaleMark] = {}
        for chunk in _chunks(list(dict.fromkeys(account_ids))):
            result = await session.execute(
                select(ac.account_id, ac.rescore_from, ac.updated_at, ac.dirty).where(
                    ac.account_id.in_(list(chunk))
                )
            )
            for account_id, rescore_from, updated_at, dirty in result:
                out[account_id] = StaleMark(_as_date(rescore_from), updated_at, bool(dirty))
        return out

    async def advance_marks(
        self, session: AsyncSession, advances: Mapping[str, tuple[StaleMark, date | None]]
    ) -> None:
        """Move each account's mark from what was read to the given day (None: clear it and
        the dirty flag), unless the writer touched the account since the mark was read (then
        the mark stays, and the days are scored again: repeated, never lost)."""
        if not advances:
            return
        ac = ACCOUNTS.c
        stmt = (
            update(ACCOUNTS)
            .where(
                ac.account_id == bindparam("b_account_id"),
                ac.updated_at == bindparam("b_updated_at"),
                or_(
                    and_(ac.rescore_from.is_(None), bindparam("b_unmarked", type_=Boolean)),
                    ac.rescore_from == bindparam("b_read", type_=Date),
                ),
            )
            .values(
                rescore_from=bindparam("b_next", type_=Date),
                dirty=case((bindparam("b_clear", type_=Boolean), False), else_=ac.dirty),
            )
        )
        await session.execute(
            stmt,
            [
                {
                    "b_account_id": account_id,
                    "b_updated_at": mark.updated_at,
                    "b_unmarked": mark.rescore_from is None,
                    "b_read": mark.rescore_from,
                    "b_next": day,
                    "b_clear": day is None,
                }
                for account_id, (mark, day) in sorted(advances.items())
            ],
        )

    async def dirty_accounts(
        self, session: AsyncSession, limit: int, after: str | None = None
    ) -> list[str]:
        """The next ``limit`` accounts after ``after`` (by id, keyset pagination) touched since
        they were last scored."""
        stmt = (
            select(ACCOUNTS.c.account_id)
            .where(ACCOUNTS.c.dirty.is_(True))
            .order_by(ACCOUNTS.c.account_id)
            .limit(limit)
        )
        if after is not None:
            stmt = stmt.where(ACCOUNTS.c.account_id > after)
        return list(await session.scalars(stmt))

    async def all_account_ids(
        self, session: AsyncSession, after: str | None, limit: int
    ) -> list[str]:
        """The next ``limit`` account ids after ``after`` (keyset pagination for the sweep)."""
        stmt = select(ACCOUNTS.c.account_id).order_by(ACCOUNTS.c.account_id).limit(limit)
        if after is not None:
            stmt = stmt.where(ACCOUNTS.c.account_id > after)
        return list(await session.scalars(stmt))

    async def load_previous(
        self, session: AsyncSession, account_ids: Sequence[str], before: date
    ) -> dict[str, ScoreRow]:
        """Each account's latest score strictly before ``before`` (accounts without one are
        absent). One query."""
        ids = list(dict.fromkeys(account_ids))
        out: dict[str, ScoreRow] = {}
        hs = HEALTH_SCORES.c
        for chunk in _chunks(ids):
            latest = (
                select(hs.account_id, func.max(hs.as_of).label("as_of"))
                .where(hs.account_id.in_(list(chunk)), hs.as_of < before)
                .group_by(hs.account_id)
                .subquery()
            )
            result = await session.execute(
                select(HEALTH_SCORES).join(
                    latest,
                    and_(hs.account_id == latest.c.account_id, hs.as_of == latest.c.as_of),
                )
            )
            for row in result:
                out[row.account_id] = _score_row(dict(row._mapping))
        return out

    async def save_scores(self, session: AsyncSession, rows: Sequence[ScoreRow]) -> None:
        """Upsert ``health_scores`` rows and make them the accounts' current score.

        An account's current score only moves forward in time: a score as of an earlier date
        than the account's ``scored_as_of`` is kept in history but does not replace it. The
        re-score marks are left alone (see :meth:`advance_marks`)."""
        await self.save_history(session, rows)
        await self.set_current(session, rows)

    async def save_history(self, session: AsyncSession, rows: Sequence[ScoreRow]) -> None:
        """Upsert ``health_scores`` rows (a row replaces the stored one of its day)."""
        if not rows:
            return
        if is_postgresql(session):
            await self.save_encoded(session, [r.encoded() for r in rows])
            return
        now = utcnow()
        values = [
            {
                "account_id": r.account_id,
                "as_of": r.as_of,
                "score": r.score,
                "band": r.band,
                "components": r.components,
                "left_out": list(r.left_out),
                "metrics": r.metrics,
                "moved": r.moved,
                "previous_score": r.previous_score,
                "previous_band": r.previous_band,
                "computed_at": r.computed_at or now,
                "provisional": r.provisional,
            }
            for r in sorted(
                {(r.account_id, r.as_of): r for r in rows}.values(),
                key=lambda r: (r.account_id, r.as_of),
            )
        ]
        # executemany of one statement: compiled once and cached, whatever the number of rows
        # (a multi-row VALUES would be compiled again for every chunk).
        stmt = insert_for(session, HEALTH_SCORES)
        stmt = stmt.on_conflict_do_update(
            index_elements=["account_id", "as_of"],
            set_={c: stmt.excluded[c] for c in values[0] if c not in ("account_id", "as_of")},
        )
        await session.execute(stmt, values)

    async def save_encoded(self, session: AsyncSession, rows: Sequence[EncodedScore]) -> None:
        """:meth:`save_history` of rows whose JSON parts are encoded already: on PostgreSQL
        the texts are stored as they are."""
        if not rows:
            return
        if not is_postgresql(session):
            await self.save_history(session, [r.decoded() for r in rows])
            return
        now = utcnow()
        unique = sorted(
            {(r.account_id, r.as_of): r for r in rows}.values(),
            key=lambda r: (r.account_id, r.as_of),
        )
        for r in unique:
            if r.computed_at is not None and r.computed_at.tzinfo is None:
                # Refused as the column type refuses it in the row-per-row upsert.
                raise ValueError("naive computed_at; pass an aware datetime")
        await session.execute(
            _HISTORY_UPSERT,
            columns(
                _HISTORY,
                (
                    (
                        r.account_id,
                        r.as_of,
                        r.score,
                        r.band,
                        r.components,
                        r.left_out,
                        r.metrics,
                        r.moved,
                        r.previous_score,
                        r.previous_band,
                        r.computed_at or now,
                        r.provisional,
                    )
                    for r in unique
                ),
            ),
        )

    async def set_current(
        self, session: AsyncSession, rows: Sequence[ScoreRow | EncodedScore]
    ) -> None:
        """Make each account's latest row of ``rows`` its current score, unless the account
        already has a current score of a later day."""
        if not rows:
            return
        ac = ACCOUNTS.c
        stmt_current = (
            update(ACCOUNTS)
            .where(
                ac.account_id == bindparam("b_account_id"),
                or_(ac.scored_as_of.is_(None), ac.scored_as_of <= bindparam("b_as_of", type_=Date)),
            )
            .values(
                score=bindparam("b_score"),
                band=bindparam("b_band"),
                scored_as_of=bindparam("b_as_of", type_=Date),
            )
        )
        latest: dict[str, ScoreRow | EncodedScore] = {}
        for r in rows:
            if r.account_id not in latest or r.as_of >= latest[r.account_id].as_of:
                latest[r.account_id] = r
        if is_postgresql(session):
            ordered = sorted(latest.values(), key=lambda r: r.account_id)
            await session.execute(_CURRENT_LOCK, {"account_id": [r.account_id for r in ordered]})
            await session.execute(
                _CURRENT_UPDATE,
                columns(_CURRENT, ((r.account_id, r.as_of, r.score, r.band) for r in ordered)),
            )
            return
        await session.execute(
            stmt_current,
            [
                {
                    "b_account_id": r.account_id,
                    "b_as_of": r.as_of,
                    "b_score": r.score,
                    "b_band": r.band,
                }
                for r in sorted(latest.values(), key=lambda r: r.account_id)
            ],
        )

    async def get_offsets(
        self,
        session: AsyncSession,
        group_id: str,
        tps: Iterable[tuple[str, int]],
    ) -> dict[tuple[str, int], int]:
        """The stored next offsets of ``tps`` ((topic, partition) pairs) for ``group_id``;
        partitions never flushed are absent."""
        stored = await load_offsets(session, group_id, (TopicPartition(t, p) for t, p in tps))
        return {(tp.topic, tp.partition): o for tp, o in stored.items()}


_HISTORY = (
    "account_id",
    "as_of",
    "score",
    "band",
    "components",
    "left_out",
    "metrics",
    "moved",
    "previous_score",
    "previous_band",
    "computed_at",
    "provisional",
)
_HISTORY_UPSERT = text(
    f"INSERT INTO {HEALTH_SCORES.name} ({', '.join(_HISTORY)}) SELECT "
    + ", ".join(f"CAST({c} AS JSON)" if c in _JSON_PARTS else c for c in _HISTORY)
    + f" FROM {unnest(HEALTH_SCORES, _HISTORY, ordinality=True)} ORDER BY n "
    "ON CONFLICT (account_id, as_of) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _HISTORY[2:])
)
"""PostgreSQL: a chunk's score rows in one statement, in key order (JSON parts as text)."""

_CURRENT = ("account_id", "as_of", "score", "band")
_CURRENT_LOCK = text(
    f"SELECT account_id FROM {ACCOUNTS.name} WHERE account_id = ANY(CAST(:account_id AS TEXT[])) "
    "ORDER BY account_id FOR UPDATE"
)
"""PostgreSQL: lock the accounts of a chunk in key order, as the row-per-row updates did (the
rollup writer's transactions take them in that order too), before one update takes them all."""
_CURRENT_UPDATE = text(
    f"UPDATE {ACCOUNTS.name} SET score = batch.score, band = batch.band, "
    "scored_as_of = batch.as_of FROM unnest(CAST(:account_id AS TEXT[]), "
    "CAST(:as_of AS DATE[]), CAST(:score AS FLOAT[]), CAST(:band AS TEXT[])) "
    f"AS batch(account_id, as_of, score, band) WHERE {ACCOUNTS.name}.account_id = batch.account_id "
    f"AND ({ACCOUNTS.name}.scored_as_of IS NULL OR {ACCOUNTS.name}.scored_as_of <= batch.as_of)"
)
"""PostgreSQL: each account's latest row of a chunk as its current score, in one statement."""


def _user_key(u: UserWeeks) -> str:
    return u.user_id


_ACTIVITY_SQL = f"""
WITH ids AS (
    SELECT account_id, n FROM unnest($1::text[]) WITH ORDINALITY AS t(account_id, n)
),
starts AS (
    SELECT account_id, coalesce(created_at, first_seen) AS start
    FROM accounts WHERE account_id = ANY($1::text[])
),
account_facts AS (
    SELECT d.account_id,
           max(d.day) AS last_active,
           max(d.day) FILTER (WHERE d.logins > 0) AS last_login,
           sum(d.logins) FILTER (
               WHERE d.day >= s.start AND d.day <= s.start + 6
           ) AS first_week,
           array_agg(d.day - $3::date) FILTER (WHERE d.day >= $3::date)
               AS d_offsets,
           array_agg(d.logins) FILTER (WHERE d.day >= $3::date) AS d_logins,
           array_agg(d.active_users) FILTER (WHERE d.day >= $3::date) AS d_users
    FROM account_days d LEFT JOIN starts s ON s.account_id = d.account_id
    WHERE d.account_id = ANY($1::text[]) AND d.day <= $2::date
    GROUP BY d.account_id
),
user_weeks AS (
    -- Per user and week of the 12 (NULL: before them), over every day up to as_of.
    SELECT account_id, user_id,
           CASE WHEN day >= $3::date THEN (day - $3::date) / 7 END AS week,
           count(*) AS days, sum(events) AS events, max(day) AS last,
           max(day) FILTER (WHERE logins > 0) AS login
    FROM user_days
    WHERE account_id = ANY($1::text[]) AND day <= $2::date
    GROUP BY account_id, user_id, week
),
people AS (
    -- Every user-week row (the distinct users and their last days are counted in Python).
    SELECT account_id,
           array_agg(user_id) AS u_ids, array_agg(week) AS u_weeks, array_agg(days) AS u_days,
           array_agg(events) AS u_events, array_agg(last) AS u_last, array_agg(login) AS u_login
    FROM user_weeks
    GROUP BY account_id
),
feature_facts AS (
    SELECT account_id, feature, min(day) AS first, max(day) AS last,
           sum(uses) FILTER (WHERE day >= $4::date) AS uses
    FROM feature_days
    WHERE account_id = ANY($1::text[]) AND feature = ANY($5::text[]) AND day <= $2::date
    GROUP BY account_id, feature
),
feature_users AS (
    -- Distinct users by grouping (hashed), not count(DISTINCT) (a sort per group).
    SELECT account_id, feature, count(*) AS users
    FROM (
        SELECT account_id, feature, user_id
        FROM feature_user_days
        WHERE account_id = ANY($1::text[]) AND feature = ANY($5::text[])
          AND day >= $4::date AND day <= $2::date
        GROUP BY account_id, feature, user_id
    ) used
    GROUP BY account_id, feature
),
features AS (
    SELECT account_id, array_agg(feature) AS f_names, array_agg(first) AS f_first,
           array_agg(last) AS f_last, array_agg(uses) AS f_uses, array_agg(users) AS f_users
    FROM feature_facts FULL JOIN feature_users USING (account_id, feature)
    GROUP BY account_id
)
SELECT ids.account_id, a.account_id IS NOT NULL AS known, a.first_seen, a.champion,
       {", ".join(f"a.{c}" for c in ACCOUNT_FIELDS)},
       f.last_active, f.last_login, f.first_week, f.d_offsets, f.d_logins, f.d_users,
       p.u_ids, p.u_weeks, p.u_days, p.u_events, p.u_last, p.u_login,
       fe.f_names, fe.f_first, fe.f_last, fe.f_uses, fe.f_users,
       c.last AS c_last, c.login AS c_login
FROM ids
LEFT JOIN accounts a ON a.account_id = ids.account_id
LEFT JOIN account_facts f ON f.account_id = ids.account_id
LEFT JOIN people p ON p.account_id = ids.account_id
LEFT JOIN features fe ON fe.account_id = ids.account_id
LEFT JOIN LATERAL (
    -- A named champion may have been quiet for longer than the 12 weeks.
    SELECT max(day) AS last, max(day) FILTER (WHERE logins > 0) AS login
    FROM user_days
    WHERE a.champion IS NOT NULL AND account_id = a.account_id AND user_id = a.champion
      AND day <= $2::date
) c ON true
ORDER BY ids.n
"""


def _score_row(m: Mapping[str, Any]) -> ScoreRow:
    as_of = _as_date(m["as_of"])
    assert as_of is not None
    return ScoreRow(
        account_id=m["account_id"],
        as_of=as_of,
        score=None if m["score"] is None else float(m["score"]),
        band=m["band"],
        components=dict(m["components"] or {}),
        left_out=list(m["left_out"] or []),
        metrics=dict(m["metrics"] or {}),
        moved=dict(m["moved"] or {}),
        previous_score=m["previous_score"],
        previous_band=m["previous_band"],
        computed_at=m["computed_at"],
        provisional=bool(m.get("provisional", False)),
    )

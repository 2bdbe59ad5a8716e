"""The scorer's activity reads on PostgreSQL: one statement per chunk of accounts.

:func:`load_activity_arrays` returns one row per account, its day, user-week and feature rows
aggregated into arrays that the driver decodes, and counts the rest in Python. It must agree
exactly with :func:`services.scorer.activity_reads.load_activity_portable` (the numbered steps
there); tests/scorer/test_repository.py compares the two. Nothing here commits.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

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
from services.scorer.activity_reads import _as_date
from services.scorer.aliases import load_merged_people
from shared.account_fields import ACCOUNT_FIELDS


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


async def load_activity_arrays(
    session: AsyncSession, ids: list[str], as_of: date, keys: list[str]
) -> list[AccountActivity]:
    """:meth:`ScoringRepository.load_activity
    <services.scorer.repository.ScoringRepository.load_activity>` on PostgreSQL: one statement
    returning one row per account, its day and user-week rows as arrays (decoded by the
    driver, not row by row)."""
    weeks_start = as_of - timedelta(days=7 * WEEKS - 1)
    daily_start = as_of - timedelta(days=DAILY_DAYS - 1)
    week_start = as_of - timedelta(days=6)
    month_start = as_of - timedelta(days=MONTH_DAYS - 1)
    connection = await session.connection()
    # The planner cannot tell that each aggregate has one row per id, overestimates the
    # joins a thousandfold and would JIT-compile the plan: seconds for a query of 0.1 s.
    # (Also the transaction's first statement: the driver's fetch below runs inside it.)
    await connection.exec_driver_sql("SET LOCAL jit = off")
    # The driver's own fetch: its records hold the decoded arrays, read by position below;
    # through Core the rows cost twice the fetch's CPU again (a third of this read).
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    rows = await driver.fetch(_ACTIVITY_SQL, ids, as_of, weeks_start, month_start, keys)
    merged = await load_merged_people(session, ids, as_of, keys)
    window_days = [daily_start + timedelta(days=i) for i in range(DAILY_DAYS)]
    # The 12 weeks' day offsets (from weeks_start) of the daily series' first day.
    daily_from = (daily_start - weeks_start).days
    out: list[AccountActivity] = []
    for row in rows:
        (
            account_id,
            known_account,
            first_seen,
            champion,
            *traits,
            last_active,
            last_login,
            first_week,
            d_offsets,
            d_logins,
            d_users,
            u_ids,
            u_weeks,
            u_days,
            u_events,
            u_last,
            u_login,
            f_names,
            f_first,
            f_last,
            f_uses,
            f_users,
            c_last,
            c_login,
        ) = row
        if known_account:
            # The columns of ACCOUNT_FIELDS, in its order (as profile_of reads them by name).
            name, plan, seats, mrr, renewal, stage, created, csm_email, csm_slack = traits
            profile = AccountProfile(
                account_id=account_id,
                name=name,
                plan=plan,
                seats=seats,
                mrr=None if mrr is None else float(mrr),
                renewal_date=_as_date(renewal),
                lifecycle_stage=stage,
                created_at=_as_date(created),
                csm_email=csm_email,
                csm_slack=csm_slack,
                champion=champion,
            )
            seen = first_seen if first_seen is not None and first_seen <= as_of else None
        else:
            profile = AccountProfile(account_id=account_id)
            seen = None
        weekly_logins = [0] * WEEKS
        daily = [0] * DAILY_DAYS
        if d_offsets:
            for offset, logins, users in zip(d_offsets, d_logins, d_users, strict=True):
                weekly_logins[offset // 7] += logins
                if offset >= daily_from:
                    daily[offset - daily_from] = users
        per_user: dict[str, list[Any]] = {}
        weekly_users = [0] * WEEKS
        # Each user's last day on or before as_of: the distinct users ever, in 7 and 28 days.
        last_days: dict[str, date] = {}
        if u_ids:
            for user_id, week, days, events, last, login in zip(
                u_ids, u_weeks, u_days, u_events, u_last, u_login, strict=True
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
        if f_names:
            for name, first, last, uses, users in zip(
                f_names, f_first, f_last, f_uses, f_users, strict=True
            ):
                features[name] = [first, last, uses or 0, users or 0]
        activated = len(last_days)
        wau = mau = 0
        for d in last_days.values():
            if d >= month_start:
                mau += 1
                if d >= week_start:
                    wau += 1
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
            users.append(UserWeeks(champion, last_active=c_last, last_login=c_login))
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
                last_active=last_active,
                last_login=last_login,
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
                first_week_logins=first_week or 0,
                users=tuple(users),
            )
        )
    return out

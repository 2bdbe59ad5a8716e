"""Aliased users count as one: the scorer's user counts for accounts with ``alias`` calls.

An ``alias`` call says its ``previous_id`` and ``user_id`` are one person. For a score as of
day D, every alias dated on or before D joins the two ids (and, through chains, every id
aliased to either) into one identity; an alias dated after D changes nothing about D. The
identity's id is a function of the set of those aliases alone (never of the order they
arrived in), so re-scoring a day after late events gives the same numbers as scoring it once
with every event in place:

- within one group of joined ids, the ids that were never a ``previous_id`` are the current
  ones; the identity is the one named by the latest alias among them (by day, then id);
- a group with no current id (aliases in a circle) is named by its smallest id.

:func:`merged_people` recounts what :meth:`ScoringRepository.load_activity
<services.scorer.repository.ScoringRepository.load_activity>` counts per user (steps 3, 5, 6-7
and 8 of :func:`~services.scorer.activity_reads.load_activity_portable`) from the account's
user-days with the ids merged; :func:`load_merged_people` reads those rows, for the accounts
that have aliases only (the others keep the aggregate queries' answers, which need no
merging).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scorer.activity import DAILY_DAYS, MONTH_DAYS, WEEKS
from shared.db.models import FeatureUserDay, UserAlias, UserDay

__all__ = ["MergedPeople", "identities", "load_merged_people", "merged_people"]

USER_ALIASES: Table = UserAlias.__table__  # type: ignore[assignment]
USER_DAYS: Table = UserDay.__table__  # type: ignore[assignment]
FEATURE_USER_DAYS: Table = FeatureUserDay.__table__  # type: ignore[assignment]


def identities(aliases: Iterable[tuple[str, str, date]], as_of: date) -> dict[str, str]:
    """id -> the identity it counts as, for every id named by an alias (previous id, user id,
    day) dated on or before ``as_of``; ids named by none are left out (they are themselves)."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    edges = sorted((day, user, previous) for previous, user, day in aliases if day <= as_of)
    for _, user, previous in edges:
        for x in (user, previous):
            parent.setdefault(x, x)
        a, b = root(user), root(previous)
        if a != b:
            parent[max(a, b)] = min(a, b)
    previous_ids = {previous for _, _, previous in edges}
    # The latest alias naming a current id wins: edges are sorted, so later ones overwrite.
    named: dict[str, str] = {}
    for _, user, _ in edges:
        if user not in previous_ids:
            named[root(user)] = user
    return {x: named.get(root(x), root(x)) for x in parent}


@dataclass(slots=True)
class _Person:
    days: list[int] = field(default_factory=lambda: [0] * WEEKS)
    events: list[int] = field(default_factory=lambda: [0] * WEEKS)
    last: date | None = None
    login: date | None = None

    def as_row(self) -> dict[str, Any]:
        return {"days": self.days, "events": self.events, "last": self.last, "login": self.login}


@dataclass(frozen=True, slots=True)
class MergedPeople:
    """One account's per-user counts with aliased ids merged (as of one day)."""

    activated: int
    wau: int
    mau: int
    daily: dict[date, int]
    """Distinct users per day of the last ``DAILY_DAYS`` days (days with any)."""
    per_user: dict[str, dict[str, Any]]
    """identity -> the repository's per-user weeks (``days``, ``events``, ``last``, ``login``)."""
    weekly_users: list[int]
    feature_users: dict[str, int]
    """key feature -> distinct users in the last 28 days."""


def merged_people(
    ids: Mapping[str, str],
    ever: Iterable[str],
    user_days: Iterable[tuple[str, date, int, int]],
    feature_users: Iterable[tuple[str, str]],
    as_of: date,
) -> MergedPeople:
    """The counts of one account from its rows, ids merged by ``ids`` (:func:`identities`).

    ``ever``: every user id with activity on or before ``as_of``; ``user_days``: (user, day,
    events, logins) of the 12 weeks ending on ``as_of``; ``feature_users``: (key feature,
    user) of the 28 days ending on ``as_of``."""
    weeks_start = as_of - timedelta(days=7 * WEEKS - 1)
    week_start = as_of - timedelta(days=6)
    month_start = as_of - timedelta(days=MONTH_DAYS - 1)
    daily_start = as_of - timedelta(days=DAILY_DAYS - 1)

    merged: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0])
    for user, day, events, logins in user_days:
        if weeks_start <= day <= as_of:
            counts = merged[(ids.get(user, user), day)]
            counts[0] += events
            counts[1] += logins
    people: dict[str, _Person] = defaultdict(_Person)
    daily: dict[date, set[str]] = defaultdict(set)
    wau: set[str] = set()
    mau: set[str] = set()
    for (person, day), (events, logins) in merged.items():
        p = people[person]
        week = (day - weeks_start).days // 7
        p.days[week] += 1
        p.events[week] += events
        p.last = day if p.last is None else max(p.last, day)
        if logins > 0:
            p.login = day if p.login is None else max(p.login, day)
        if day >= daily_start:
            daily[day].add(person)
        if day >= month_start:
            mau.add(person)
        if day >= week_start:
            wau.add(person)
    by_feature: dict[str, set[str]] = defaultdict(set)
    for feature, user in feature_users:
        by_feature[feature].add(ids.get(user, user))
    return MergedPeople(
        activated=len({ids.get(u, u) for u in ever}),
        wau=len(wau),
        mau=len(mau),
        daily={day: len(users) for day, users in daily.items()},
        per_user={person: p.as_row() for person, p in people.items()},
        weekly_users=[sum(1 for p in people.values() if p.days[w]) for w in range(WEEKS)],
        feature_users={f: len(users) for f, users in by_feature.items()},
    )


async def load_merged_people(
    session: AsyncSession, account_ids: Sequence[str], as_of: date, key_features: Sequence[str]
) -> dict[str, MergedPeople]:
    """:class:`MergedPeople` of each of ``account_ids`` that has an alias dated on or before
    ``as_of``; the others are left out. Four queries, whatever the number of accounts."""
    al = USER_ALIASES.c
    found = await session.execute(
        select(al.account_id, al.previous_id, al.user_id, al.day).where(
            al.account_id.in_(account_ids), al.day <= as_of
        )
    )
    edges: dict[str, list[tuple[str, str, date]]] = defaultdict(list)
    for account_id, previous_id, user_id, day in found:
        edges[account_id].append((previous_id, user_id, _date(day)))
    if not edges:
        return {}
    aliased = sorted(edges)
    ud, fud = USER_DAYS.c, FEATURE_USER_DAYS.c
    ever: dict[str, list[str]] = defaultdict(list)
    users = await session.execute(
        select(ud.account_id, ud.user_id)
        .where(ud.account_id.in_(aliased), ud.day <= as_of)
        .group_by(ud.account_id, ud.user_id)
    )
    for account_id, user_id in users:
        ever[account_id].append(user_id)
    rows: dict[str, list[tuple[str, date, int, int]]] = defaultdict(list)
    days = await session.execute(
        select(ud.account_id, ud.user_id, ud.day, ud.events, ud.logins).where(
            ud.account_id.in_(aliased),
            ud.day >= as_of - timedelta(days=7 * WEEKS - 1),
            ud.day <= as_of,
        )
    )
    for account_id, user_id, day, events, logins in days:
        rows[account_id].append((user_id, _date(day), int(events), int(logins)))
    features: dict[str, list[tuple[str, str]]] = defaultdict(list)
    if key_features:
        used = await session.execute(
            select(fud.account_id, fud.feature, fud.user_id)
            .where(
                fud.account_id.in_(aliased),
                fud.feature.in_(list(key_features)),
                fud.day >= as_of - timedelta(days=MONTH_DAYS - 1),
                fud.day <= as_of,
            )
            .group_by(fud.account_id, fud.feature, fud.user_id)
        )
        for account_id, feature, user_id in used:
            features[account_id].append((feature, user_id))
    return {
        a: merged_people(identities(edges[a], as_of), ever[a], rows[a], features[a], as_of)
        for a in aliased
    }


def _date(value: Any) -> date:
    # SQLite hands dates back as ISO strings.
    return value if isinstance(value, date) else date.fromisoformat(str(value))

"""Who uses an account: its champion and its regular users (pure, from :class:`UserWeeks`).

Both are functions of the 12-week window ending on ``as_of`` only (never of what an earlier
score picked), so re-scoring a day after late events gives the same answer as scoring it once
with every event in place.

The champion, unless the operator named one, is the user who leads the *older* part of the
window (every week but the last ``recent_weeks``) by a stable measure: most weeks active, then
most active days, then most events, then the smallest user id. That incumbent stays champion
until a challenger leads it in *each* of the last ``recent_weeks`` weeks (by active days) and by
``margin`` over those weeks together: one busy week, or a champion on holiday, changes nothing;
a new person clearly taking over for a month does.

A regular user was active in at least ``regular_min_weeks`` of the last ``regular_weeks`` whole
weeks; a user seen once in 28 days is not one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

from services.scorer.activity import WEEKS, UserWeeks

__all__ = ["ChampionPick", "champion_of", "regular_users", "typical_weekly_rate"]

ChampionSource = Literal["named", "inferred"]


@dataclass(frozen=True, slots=True)
class ChampionPick:
    user_id: str
    source: ChampionSource
    last_active: date | None
    last_login: date | None
    weeks_active: int
    """Weeks with activity among ``weeks_observed``."""
    weeks_observed: int
    """Whole weeks of the window the account lived through before the champion's current quiet
    run: what their regularity is judged on."""


def _active(weeks: tuple[int, ...]) -> int:
    """How many of ``weeks`` (counts of active days, never negative) are above 0."""
    return len(weeks) - weeks.count(0)


def _leader(users: Sequence[UserWeeks], start: int, stop: int) -> UserWeeks | None:
    """The user with the best standing in weeks ``start .. stop-1``: most weeks active, then
    most active days, then most events, then the smallest id; None if nobody was active."""
    best: UserWeeks | None = None
    best_key = (0, 0, 0)
    for u in users:
        days = u.active_days[start:stop]
        weeks = _active(days)
        if weeks <= 0 or weeks < best_key[0]:
            # Fewer weeks than the best so far: behind it whatever the rest.
            continue
        key = (weeks, sum(days), sum(u.events[start:stop]))
        if best is None or key > best_key or (key == best_key and u.user_id < best.user_id):
            best, best_key = u, key
    return best


def _inferred(
    users: Sequence[UserWeeks], lived_weeks: int, recent_weeks: int, margin: float
) -> UserWeeks | None:
    first = WEEKS - min(WEEKS, lived_weeks)
    split = WEEKS - recent_weeks
    if first >= split:
        # Too young to have an incumbent: the leader of what there is.
        return _leader(users, first, WEEKS)
    incumbent = _leader(users, first, split)
    challenger = _leader(users, split, WEEKS)
    if incumbent is None:
        return challenger
    if challenger is None or challenger.user_id == incumbent.user_id:
        return incumbent
    recent = range(split, WEEKS)
    leads_each_week = all(challenger.active_days[w] > incumbent.active_days[w] for w in recent)
    challenger_days = sum(challenger.active_days[w] for w in recent)
    incumbent_days = sum(incumbent.active_days[w] for w in recent)
    if leads_each_week and challenger_days >= (1 + margin) * incumbent_days:
        return challenger
    return incumbent


def champion_of(
    users: Sequence[UserWeeks],
    as_of: date,
    lived_weeks: int,
    *,
    named: str | None = None,
    recent_weeks: int = 4,
    margin: float = 0.25,
) -> ChampionPick | None:
    """The named champion if there is one, else the inferred one; None without activity."""
    source: ChampionSource
    if named:
        found = next((u for u in users if u.user_id == named), None)
        pick = found or UserWeeks(user_id=named)
        source = "named"
    else:
        inferred = _inferred(users, lived_weeks, recent_weeks, margin)
        if inferred is None:
            return None
        pick, source = inferred, "inferred"
    lived = min(WEEKS, max(0, lived_weeks))
    quiet = (as_of - pick.last_active).days // 7 if pick.last_active is not None else lived
    observed = range(WEEKS - lived, WEEKS - min(lived, max(0, quiet)))
    return ChampionPick(
        user_id=pick.user_id,
        source=source,
        last_active=pick.last_active,
        last_login=pick.last_login,
        weeks_active=_active(pick.active_days[observed.start : observed.stop]),
        weeks_observed=len(observed),
    )


def regular_users(
    users: Sequence[UserWeeks],
    lived_weeks: int,
    *,
    regular_weeks: int = 4,
    regular_min_weeks: int = 3,
) -> tuple[int, int] | None:
    """(regular users, weeks judged); None before the account's first whole week.

    A younger account is judged on the weeks it has, with the same share of them required
    (3 of 4 becomes 1 of 1, 2 of 2, 3 of 3)."""
    weeks = min(regular_weeks, lived_weeks, WEEKS)
    if weeks <= 0:
        return None
    need = max(1, math.ceil(regular_min_weeks * weeks / regular_weeks))
    first = WEEKS - weeks
    count = sum(1 for u in users if _active(u.active_days[first:WEEKS]) >= need)
    return count, weeks


def typical_weekly_rate(users: Sequence[UserWeeks], lived_weeks: int) -> float | None:
    """The median share of the lived weeks a user of the account was active in (users active in
    at least one of them): how often people here skip a week. None without lived weeks or
    users. A champion's silence is judged against the lower of this and their own rate, because
    the champion is picked as the most regular of many, so their own past overstates it."""
    lived = min(WEEKS, lived_weeks)
    if lived <= 0:
        return None
    first = WEEKS - lived
    # Weeks active per user, sorted: n / lived sorts the same way, and only the middle ones
    # are divided (the same floats).
    weeks = sorted(n for u in users if (n := _active(u.active_days[first:WEEKS])) > 0)
    if not weeks:
        return None
    mid = len(weeks) // 2
    return (
        weeks[mid] / lived if len(weeks) % 2 else (weeks[mid - 1] / lived + weeks[mid] / lived) / 2
    )

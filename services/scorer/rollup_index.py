"""One account's rollups as dense per-day arrays: rolling counts read by index (pure).

:mod:`services.scorer.rollups` answers "the activity as of day D" for every day of a backtest.
Counted from the rows each day, the 12 weekly windows cost a dozen bisections per user and
day; here each count is computed once per day of the range as a rolling sum (the 7 days, or
the 28 days, ending on that day), so a day's 12 weeks are one slice with a step of 7 and a
"last day on or before D" is one index. Index ``i`` is the day ``origin + i`` (ordinals); the
arrays run from ``origin`` through the last day read. The same numbers as the bisections,
checked day by day by tests/backtest (the memory against the scorer's own queries).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import accumulate

from services.scorer.activity import WEEKS

__all__ = ["DenseAccount", "DenseFeature", "DenseUser", "dense_account"]


@dataclass(frozen=True, slots=True)
class DenseUser:
    days7: tuple[int, ...]
    """Active days in the 7 days ending on each day (tuples: a day's weeks are a slice of them,
    itself a tuple, with no list in between)."""
    events7: tuple[int, ...]
    last: list[date | None]
    """The last active day on or before each day."""
    last_login: list[date | None]


@dataclass(frozen=True, slots=True)
class DenseFeature:
    first_used: date | None
    last: list[date | None]
    uses28: list[int]
    """Uses in the 28 days ending on each day."""
    users28: list[int]
    """Distinct users of the feature in those 28 days."""


@dataclass(frozen=True, slots=True)
class DenseAccount:
    origin: int
    logins7: tuple[int, ...]
    """The account's logins in the 7 days ending on each day."""
    users7: tuple[int, ...]
    """Distinct users active in those 7 days."""
    users28: list[int]
    last_active: list[date | None]
    """The last day with an account row on or before each day."""
    last_login: list[date | None]
    activated: list[int]
    """Users ever active up to each day."""
    users: dict[str, DenseUser]
    """By user id, in the order of the ids."""
    features: dict[str, DenseFeature]

    def covers(self, as_of: date) -> bool:
        """Whether the arrays hold the 12 weeks ending on ``as_of``."""
        return WEEKS * 7 - 7 <= as_of.toordinal() - self.origin < len(self.logins7)


def _rolling(by_day: Mapping[int, int], origin: int, n: int, width: int) -> list[int]:
    """The sum of ``by_day`` (ordinal -> count) over the ``width`` days ending on each day."""
    daily = [0] * n
    for o, v in by_day.items():
        daily[o - origin] = v
    # Running sums behind ``width`` zeros: day i's window is sums[i + width] - sums[i].
    sums = [0] * width + list(accumulate(daily))
    return [a - b for a, b in zip(sums[width:], sums, strict=False)]


def _last_on_or_before(days: Iterable[date], origin: int, n: int) -> list[date | None]:
    marks: list[date | None] = [None] * n
    for d in days:
        marks[d.toordinal() - origin] = d
    last: date | None = None
    out: list[date | None] = []
    for mark in marks:
        if mark is not None:
            last = mark
        out.append(last)
    return out


def _positive(counts: Sequence[Sequence[int]], n: int) -> list[int]:
    """How many of the series (counts: never below 0) are above 0 on each day."""
    if not counts:
        return [0] * n
    k = len(counts)
    return [k - day.count(0) for day in zip(*counts, strict=True)]


def dense_account(
    origin: date,
    last: date,
    days: Mapping[date, tuple[int, int]],
    users: Mapping[str, tuple[Mapping[date, int], Sequence[date]]],
    features: Mapping[str, tuple[Mapping[date, int], Sequence[Sequence[date]]]],
) -> DenseAccount:
    """The arrays of one account from ``origin`` through ``last``: ``days`` is its account rows
    (day -> (logins, active users)), ``users`` each user's (events by active day, login days),
    ``features`` each key feature's (uses by day, each user's days); all dated ``origin ..
    last``."""
    o0 = origin.toordinal()
    n = last.toordinal() - o0 + 1
    dense_users: dict[str, DenseUser] = {}
    users28: list[list[int]] = []
    firsts: dict[int, int] = {}
    for user_id, (events, logins) in sorted(users.items()):
        ordinals = {d.toordinal(): 1 for d in events}
        dense_users[user_id] = DenseUser(
            days7=tuple(_rolling(ordinals, o0, n, 7)),
            events7=tuple(_rolling({d.toordinal(): v for d, v in events.items()}, o0, n, 7)),
            last=_last_on_or_before(events, o0, n),
            last_login=_last_on_or_before(logins, o0, n),
        )
        users28.append(_rolling(ordinals, o0, n, 28))
        if ordinals:
            first = min(ordinals)
            firsts[first] = firsts.get(first, 0) + 1
    dense_features = {}
    for key, (uses, user_days) in features.items():
        seen = [_rolling({d.toordinal(): 1 for d in ds}, o0, n, 28) for ds in user_days]
        dense_features[key] = DenseFeature(
            first_used=min(uses) if uses else None,
            last=_last_on_or_before(uses, o0, n),
            uses28=_rolling({d.toordinal(): v for d, v in uses.items()}, o0, n, 28),
            users28=_positive(seen, n),
        )
    return DenseAccount(
        origin=o0,
        logins7=tuple(_rolling({d.toordinal(): v[0] for d, v in days.items()}, o0, n, 7)),
        users7=tuple(_positive([u.days7 for u in dense_users.values()], n)),
        users28=_positive(users28, n),
        last_active=_last_on_or_before(days, o0, n),
        last_login=_last_on_or_before((d for d, v in days.items() if v[0] > 0), o0, n),
        activated=list(accumulate(firsts.get(o0 + i, 0) for i in range(n))),
        users=dense_users,
        features=dense_features,
    )

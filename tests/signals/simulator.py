"""A simulated customer portfolio for the signals test and ``bench/signals.py`` (issue 10).

Pure and seeded: :func:`build_portfolio` picks the accounts (ten behaviours, sizes from 5 to
500 seats), :meth:`Portfolio.calls` yields the Segment calls of every day, oldest first, and
:meth:`Portfolio.accounts_csv` is the operator's ``tend accounts import`` file for them.

How usage is simulated:

- Each account has ``seats`` licensed seats and a pool of users; a behaviour says, per day,
  which share of the pool is "in play" and how often those users come (:meth:`SimAccount.day`).
- Each user has their own habit (about ``1..4.5`` weekdays a week, seeded), so two accounts of
  the same behaviour and size still differ; on Saturdays and Sundays people mostly stay away.
- An active user-day is one login (``Signed In``) and one or two key-feature events a few
  minutes later, now and then a search; a user's first active day starts with ``identify``,
  and the first day of the history starts with the account's ``group`` call.

Each account knows the day its behaviour changes (``change``) and the rule expected to flag it
(``expected_rule``; none for steady, growing and seasonal ones). Change days are the day the
usage changes: the first silent day of a dormant account, the first day without the abandoned
feature, the first day the champion stays away; for a plateau, the first day of its flat part;
for a near-seat-limit account, the day every seat is in use.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Final

from services.cli.demo_plan import FEATURE_EVENTS, KEY_FEATURES
from tests.scorer.synthetic import DEFAULT_END

WEEKS: Final = 26
WEEKEND_FACTOR: Final = 0.08
"""How likely a user who comes on a weekday is to come on a Saturday or Sunday."""
ABANDONED_FEATURE: Final = "integrations"


class Behaviour(StrEnum):
    STEADY = "steady"
    GROWING = "growing"
    SEASONAL = "seasonal_dip"
    PLATEAU = "plateau_low_use"
    DECLINE = "decline"
    DORMANT = "dormant"
    ABANDONED = "abandoned_feature"
    NEVER_ADOPTED = "never_adopted"
    LOST_CHAMPION = "lost_champion"
    NEAR_SEAT_LIMIT = "near_seat_limit"


BEHAVIOURS: Final = tuple(Behaviour)
HEALTHY: Final = frozenset({Behaviour.STEADY, Behaviour.GROWING, Behaviour.SEASONAL})
"""No risk alert may ever open on these."""


@dataclass(frozen=True, slots=True)
class Shape:
    """What a behaviour looks like: the rule expected to flag it (with its feature, if any) and
    the day (from the start of the history) its behaviour changes, before a per-account jitter
    of up to ``jitter`` days either way."""

    expected_rule: str | None
    change_day: int
    feature: str = ""
    jitter: int = 7


SHAPES: Final[Mapping[Behaviour, Shape]] = {
    Behaviour.STEADY: Shape(None, 0, jitter=0),
    Behaviour.GROWING: Shape(None, 0, jitter=0),
    Behaviour.SEASONAL: Shape(None, 140),  # one holiday week at half the usage
    Behaviour.PLATEAU: Shape("login_plateau", 42),  # ramps for 6 weeks, then flat
    Behaviour.DECLINE: Shape("login_decline", 119),
    Behaviour.DORMANT: Shape("dormant", 147),
    Behaviour.ABANDONED: Shape("feature_unused", 105, ABANDONED_FEATURE),
    Behaviour.NEVER_ADOPTED: Shape("feature_unused", 0, ABANDONED_FEATURE, jitter=0),
    Behaviour.LOST_CHAMPION: Shape("champion_lost", 133),
    Behaviour.NEAR_SEAT_LIMIT: Shape("upsell_seats", 119),
}

SizeMap = Mapping[Behaviour, tuple[int, ...]]
DEFAULT_SIZES: Final[SizeMap] = {
    Behaviour.STEADY: (25, 5, 250),
    Behaviour.GROWING: (50, 10),
    Behaviour.SEASONAL: (10, 100),
    Behaviour.PLATEAU: (500, 25),
    Behaviour.DECLINE: (100, 10),
    Behaviour.DORMANT: (5, 50),
    Behaviour.ABANDONED: (25, 5),
    Behaviour.NEVER_ADOPTED: (10, 25),
    Behaviour.LOST_CHAMPION: (50, 10),
    Behaviour.NEAR_SEAT_LIMIT: (5, 25),
}
"""Seats of the n-th account of each behaviour (round-robin): 5 to 500 across the portfolio,
the largest where a seat costs few events (a plateau at low use), so a run stays short."""
SMALL_SIZES: Final[SizeMap] = {
    Behaviour.STEADY: (10,),
    Behaviour.GROWING: (25,),
    Behaviour.SEASONAL: (5,),
    Behaviour.PLATEAU: (500,),
    Behaviour.DECLINE: (50,),
    Behaviour.DORMANT: (5,),
    Behaviour.ABANDONED: (10,),
    Behaviour.NEVER_ADOPTED: (5,),
    Behaviour.LOST_CHAMPION: (25,),
    Behaviour.NEAR_SEAT_LIMIT: (10,),
}
"""One account per behaviour, 5 to 500 seats, for the portfolio test."""

PLATEAU_DAILY: Final = 0.075
"""A plateau account's users come on a weekday with this chance: about 30% of its seats are
active in any week, about 80% within 28 days."""
DECLINE_DAYS: Final = 35
"""A declining account loses users and visits over this many days, then stays low."""


@dataclass(frozen=True, slots=True)
class Day:
    """How an account is used on one day: the first ``in_play`` users may come, each with
    their own weekday chance times ``rate``; ``away`` users do not come at all."""

    in_play: int
    rate: float = 1.0
    features: tuple[str, ...] = KEY_FEATURES
    away: frozenset[int] = frozenset()
    fixed_chance: float | None = None
    """When set, every user's weekday chance (instead of their own habit)."""


@dataclass(frozen=True, slots=True)
class SimAccount:
    account_id: str
    name: str
    behaviour: Behaviour
    seats: int
    users: tuple[str, ...]
    habits: tuple[float, ...]
    """Per user: the weekdays a week they come, on average (user 0 is the most regular)."""
    change: date
    expected_rule: str | None
    expected_feature: str
    renewal_date: date
    csm_email: str
    start: date

    @property
    def healthy(self) -> bool:
        return self.behaviour in HEALTHY

    def day(self, day: date) -> Day:
        """The usage plan of ``day`` (pure)."""
        t = (day - self.start).days
        since = (day - self.change).days
        n = len(self.users)
        b = self.behaviour
        if b is Behaviour.GROWING:
            # From just over half the seats (clear of low utilization) to nearly all of them.
            return Day(round(n * (0.55 + 0.4 * t / (WEEKS * 7 - 1))))
        if b is Behaviour.SEASONAL:
            return Day(round(n * 0.85), rate=0.5 if 0 <= since < 7 else 1.0)
        if b is Behaviour.PLATEAU:
            ramp = min(1.0, 0.25 + 0.75 * t / max(1, (self.change - self.start).days))
            return Day(round(n * ramp), fixed_chance=PLATEAU_DAILY)
        if b is Behaviour.DECLINE:
            fall = min(1.0, max(0.0, since / DECLINE_DAYS))
            return Day(round(n * (0.85 - 0.55 * fall)), rate=1.0 - 0.5 * fall)
        if b is Behaviour.DORMANT:
            return Day(0 if since >= 0 else round(n * 0.8))
        if b is Behaviour.ABANDONED:
            features = KEY_FEATURES if since < 0 else _without(ABANDONED_FEATURE)
            return Day(round(n * 0.85), features=features)
        if b is Behaviour.NEVER_ADOPTED:
            return Day(round(n * 0.85), features=_without(ABANDONED_FEATURE))
        if b is Behaviour.LOST_CHAMPION:
            return Day(round(n * 0.85), away=frozenset({0}) if since >= 0 else frozenset())
        if b is Behaviour.NEAR_SEAT_LIMIT:
            # Every seat taken from the change day on; before it, a steady climb from 60%.
            full = (self.change - self.start).days
            return Day(round(n * min(1.0, 0.6 + 0.4 * t / max(1, full))))
        return Day(round(n * 0.85))  # steady

    def traits(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "plan": "business" if self.seats >= 50 else "team",
            "seats": self.seats,
            "mrr": float(30 * self.seats),
            "renewal_date": self.renewal_date.isoformat(),
            "created_at": self.start.isoformat(),
            "csm_email": self.csm_email,
        }


def _without(feature: str) -> tuple[str, ...]:
    return tuple(f for f in KEY_FEATURES if f != feature)


@dataclass(frozen=True, slots=True)
class Portfolio:
    seed: int
    start: date
    end: date
    accounts: tuple[SimAccount, ...]

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def account(self, account_id: str) -> SimAccount:
        return next(a for a in self.accounts if a.account_id == account_id)

    def calls(self) -> Iterator[tuple[date, list[dict[str, Any]]]]:
        """Segment calls per day, oldest day first, each day's calls in time order. Same
        portfolio, same calls (message ids included)."""
        states = [_State(a, random.Random(f"{self.seed}:{a.account_id}")) for a in self.accounts]
        for offset in range(self.days):
            day = self.start + timedelta(days=offset)
            timed: list[tuple[datetime, dict[str, Any]]] = []
            for state in states:
                timed.extend(state.calls_of(day, first=offset == 0))
            timed.sort(key=lambda c: (c[0], c[1]["messageId"]))
            yield day, [c for _, c in timed]

    def all_calls(self) -> list[dict[str, Any]]:
        return [c for _, calls in self.calls() for c in calls]

    def accounts_csv(self) -> list[str]:
        """The operator's accounts file (``tend accounts import``), one line per account."""
        columns = ("name", "plan", "seats", "mrr", "renewal_date", "created_at", "csm_email")
        lines = [",".join(("account_id", *columns))]
        for a in self.accounts:
            traits = a.traits()
            lines.append(",".join([a.account_id, *(str(traits[c]) for c in columns)]))
        return lines


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class _State:
    account: SimAccount
    rng: random.Random
    identified: set[str] = field(default_factory=set)
    seq: int = 0

    def call(self, at: datetime, **fields: Any) -> tuple[datetime, dict[str, Any]]:
        self.seq += 1
        a = self.account
        return at, {
            "messageId": f"sim-{a.account_id}-{self.seq}",
            "timestamp": _iso(at),
            "context": {"groupId": a.account_id, "library": {"name": "tend-sim", "version": "1"}},
            **fields,
        }

    def calls_of(self, day: date, *, first: bool) -> list[tuple[datetime, dict[str, Any]]]:
        a, rng = self.account, self.rng
        midnight = datetime.combine(day, time(0), tzinfo=UTC)
        out: list[tuple[datetime, dict[str, Any]]] = []
        if first:
            at = midnight + timedelta(hours=6)
            out.append(
                self.call(at, type="group", userId=a.users[0], groupId=a.account_id,
                          traits=a.traits())
            )  # fmt: skip
        plan = a.day(day)
        weekend = day.weekday() >= 5
        for i, user in enumerate(a.users[: plan.in_play]):
            chance = a.habits[i] / 5 if plan.fixed_chance is None else plan.fixed_chance
            chance *= plan.rate * (WEEKEND_FACTOR if weekend else 1.0)
            # Draw for every user in play, away or not, so one user's absence does not
            # reshuffle everyone else's days.
            if rng.random() >= chance or i in plan.away:
                continue
            out.extend(self.user_day(user, midnight, plan.features))
        return out

    def user_day(
        self, user: str, midnight: datetime, features: tuple[str, ...]
    ) -> list[tuple[datetime, dict[str, Any]]]:
        a, rng = self.account, self.rng
        at = midnight + timedelta(seconds=rng.randrange(7 * 3600, 19 * 3600))
        out = []
        if user not in self.identified:
            self.identified.add(user)
            out.append(
                self.call(at - timedelta(seconds=2), type="identify", userId=user,
                          traits={"email": f"{user}@{a.account_id}.example"})
            )  # fmt: skip
        props = {"account_id": a.account_id}
        out.append(self.call(at, type="track", userId=user, event="Signed In", properties=props))
        for _ in range(rng.randrange(1, 3)):
            at += timedelta(seconds=rng.randrange(30, 900))
            feature = rng.choice(features)
            out.append(
                self.call(at, type="track", userId=user, event=FEATURE_EVENTS[feature],
                          properties={**props, "feature": feature})
            )  # fmt: skip
        if rng.random() < 0.15:
            at += timedelta(seconds=rng.randrange(30, 600))
            out.append(
                self.call(at, type="track", userId=user, event="Search Used",
                          properties={**props, "feature": "search"})
            )  # fmt: skip
        return out


def build_portfolio(
    per_behaviour: int = 1,
    *,
    seed: int = 10,
    end: date = DEFAULT_END,
    behaviours: tuple[Behaviour, ...] = BEHAVIOURS,
    sizes: SizeMap = DEFAULT_SIZES,
    max_seats: int = 500,
) -> Portfolio:
    """``per_behaviour`` accounts of each behaviour over :data:`WEEKS` weeks ending on ``end``,
    the n-th with ``sizes[behaviour][n]`` seats (round-robin, at most ``max_seats``)."""
    if per_behaviour < 1:
        raise ValueError("per_behaviour must be at least 1")
    rng = random.Random(seed)
    start = end - timedelta(days=WEEKS * 7 - 1)
    accounts = []
    for b_index, behaviour in enumerate(behaviours):
        shape = SHAPES[behaviour]
        choices = sizes[behaviour]
        for n in range(per_behaviour):
            seats = max(3, min(max_seats, choices[n % len(choices)]))
            account_id = f"{behaviour.value.replace('_', '-')}-{n}-{seats}s"
            # Near-seat-limit and plateau accounts have a user per seat; others leave a few
            # seats spare.
            full = behaviour in (Behaviour.NEAR_SEAT_LIMIT, Behaviour.PLATEAU)
            n_users = seats if full else max(3, round(seats * 0.95))
            users = tuple(f"{account_id}-u{u:03d}" for u in range(n_users))
            habits = [min(4.5, max(1.0, rng.gauss(2.6, 0.9))) for _ in users]
            habits[0] = 4.8  # the champion: the most regular user by far
            jitter = rng.randint(-shape.jitter, shape.jitter) if shape.jitter else 0
            accounts.append(
                SimAccount(
                    account_id=account_id,
                    name=f"{behaviour.value.replace('_', ' ').title()} {n} ({seats} seats)",
                    behaviour=behaviour,
                    seats=seats,
                    users=users,
                    habits=tuple(habits),
                    change=start + timedelta(days=shape.change_day + jitter),
                    expected_rule=shape.expected_rule,
                    expected_feature=shape.feature,
                    renewal_date=end + timedelta(days=120 + rng.randrange(0, 240)),
                    csm_email=f"csm{(b_index + n) % 3}@vendor.example",
                    start=start,
                )
            )
    return Portfolio(seed, start, end, tuple(accounts))

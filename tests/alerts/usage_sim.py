"""A small, pure usage simulator for the noise tests of the alert rules (no database, no broker).

An account of ``seats`` users; each user comes on a weekday with their own chance (their habit
times the day's ``rate``), rarely at weekends. :func:`run_rules` scores every day from the
simulated days with the scorer's own pure code (activity -> metrics) and evaluates the given
rules on it, then counts alert episodes the way the life cycle would (fire after ``for_days``
holding days, resolve after ``keep_firing_for_days`` clear days, a return within the cool-down
is the same alert).
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from services.alerts.rules import RULES, ScoreHistory
from services.scorer.activity import (
    DAILY_DAYS,
    WEEKS,
    AccountActivity,
    AccountProfile,
    UserWeeks,
)
from services.scorer.usage import compute_metrics
from shared.alert_rules import RuleName, RulesConfig
from shared.scores import ScoreMessage

START = date(2025, 1, 6)  # a Monday
WEEKEND = 0.05

Chance = Callable[[int, int], float]
"""(day index, user index) -> the chance the user comes that day, before weekends."""


@dataclass(slots=True)
class SimUsage:
    seats: int
    days: int
    user_days: list[list[int]] = field(default_factory=list)
    """Per user, the sorted day indexes they were active."""
    user_events: list[list[int]] = field(default_factory=list)
    """Per user, events per day index (a prefix sum, length days + 1)."""
    active_prefix: list[list[int]] = field(default_factory=list)
    daily: list[int] = field(default_factory=list)
    named_champion: str | None = None
    dates: list[date] = field(default_factory=list)
    """The date of each day index."""

    def day(self, i: int) -> date:
        return START + timedelta(days=i)


def simulate(seats: int, weeks: int, chance: Chance, seed: int) -> SimUsage:
    rng = random.Random(seed)
    days = weeks * 7
    usage = SimUsage(seats=seats, days=days, daily=[0] * days)
    usage.dates = [START + timedelta(days=i) for i in range(days)]
    for u in range(seats):
        active: list[int] = []
        events = [0] * (days + 1)
        prefix = [0] * (days + 1)
        for d in range(days):
            p = chance(d, u) * (WEEKEND if d % 7 >= 5 else 1.0)
            n = 0
            if p > 0 and rng.random() < p:
                n = 1 + rng.randrange(3)
                active.append(d)
                usage.daily[d] += 1
            events[d + 1] = events[d] + n
            prefix[d + 1] = prefix[d] + (1 if n else 0)
        usage.user_days.append(active)
        usage.user_events.append(events)
        usage.active_prefix.append(prefix)
    return usage


def habits(seats: int, seed: int, low: float = 0.2, high: float = 0.9) -> list[float]:
    """Per user, their weekday chance (about 1 to 4.5 weekdays a week)."""
    rng = random.Random(seed)
    return [rng.uniform(low, high) for _ in range(seats)]


def activity_on(usage: SimUsage, d: int) -> AccountActivity:
    """What the repository would load as of day index ``d`` (every window ends on it)."""
    first = d - 7 * WEEKS + 1
    # (start, end) day indexes of each of the WEEKS weeks, clipped at the simulation's start.
    spans = [(max(0, first + 7 * w), max(0, first + 7 * w + 7)) for w in range(WEEKS)]
    users: list[UserWeeks] = []
    weekly = [0] * WEEKS
    logins = [0] * WEEKS
    for u in range(usage.seats):
        active, events = usage.active_prefix[u], usage.user_events[u]
        days_active = tuple([active[hi] - active[lo] for lo, hi in spans])
        k = bisect_right(usage.user_days[u], d)
        last = usage.dates[usage.user_days[u][k - 1]] if k else None
        if any(days_active) or (f"u{u}" == usage.named_champion and last is not None):
            user_events = tuple([events[hi] - events[lo] for lo, hi in spans])
            for w in range(WEEKS):
                if days_active[w]:
                    weekly[w] += 1
                logins[w] += user_events[w]
            users.append(
                UserWeeks(
                    user_id=f"u{u}",
                    active_days=days_active,
                    events=user_events,
                    last_active=last,
                    last_login=last,
                )
            )
    month = [usage.daily[i] if i >= 0 else 0 for i in range(d - DAILY_DAYS + 1, d + 1)]
    last_active = max((x.last_active for x in users if x.last_active), default=None)
    return AccountActivity(
        profile=AccountProfile(
            account_id="sim",
            seats=usage.seats,
            created_at=START,
            champion=usage.named_champion,
        ),
        as_of=usage.dates[d],
        first_seen=START,
        last_active=last_active,
        last_login=last_active,
        daily_active_users=tuple(month[-min(len(month), d + 1) :]),
        wau=weekly[-1],
        mau=sum(1 for x in users if any(x.active_days[-4:])),
        weekly_active_users=tuple(weekly),
        weekly_logins=tuple(logins),
        activated_users=len(users),
        users=tuple(users),
    )


def snapshot(usage: SimUsage, d: int) -> ScoreMessage:
    m = compute_metrics(activity_on(usage, d), ())
    return ScoreMessage(
        account_id="sim",
        as_of=m.as_of,
        computed_at=datetime(2025, 1, 1, tzinfo=UTC),
        scorecard="health",
        score=None,
        band="unknown",
        metrics=m,
        seats=usage.seats,
    )


@dataclass(frozen=True, slots=True)
class Episode:
    rule: RuleName
    opened: int
    """Day index the alert fired."""
    started: int
    """Day index its condition began."""


def run_rules(
    usage: SimUsage,
    rules: Sequence[RuleName],
    config: RulesConfig,
    first_day: int,
) -> tuple[list[Episode], dict[RuleName, list[int]]]:
    """Alert episodes of ``rules`` from ``first_day`` on, and each rule's holding days."""
    holding: dict[RuleName, list[int]] = {r: [] for r in rules}
    for d in range(first_day, usage.days):
        s = snapshot(usage, d)
        for rule in rules:
            found = RULES[rule](s, ScoreHistory(), config.rule(rule))
            if any(f.holds for f in found):
                holding[rule].append(d)
    episodes: list[Episode] = []
    for rule in rules:
        episodes.extend(_episodes(rule, holding[rule], config))
    return episodes, holding


def _episodes(rule: RuleName, days: Sequence[int], config: RulesConfig) -> list[Episode]:
    policy = config.policy(rule)
    held = set(days)
    out: list[Episode] = []
    run_start: int | None = None
    firing = False
    clear = 0
    resolved_at: int | None = None
    for d in range(min(days, default=0), max(days, default=-1) + policy.keep_firing_for_days + 2):
        if d in held:
            clear = 0
            run_start = d if run_start is None else run_start
            if not firing and d - run_start + 1 >= policy.for_days:
                firing = True
                returning = (
                    resolved_at is not None
                    and run_start - resolved_at <= policy.reopen_cooldown_days
                )
                if not returning:
                    out.append(Episode(rule, d, run_start))
        else:
            run_start = None
            if firing:
                clear += 1
                if clear >= policy.keep_firing_for_days:
                    firing, resolved_at = False, d
    return out

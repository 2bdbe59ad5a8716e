"""``tend demo``'s data: realistic accounts and their usage, as Segment calls (pure, seeded).

A client of the public API, like any SDK: it imports no service. Two parts here, the third in
:mod:`services.cli.demo_send`:

1. :func:`plan_demo` (pure, seeded) picks the accounts: names, plans, seats, MRR, renewal dates,
   CSMs, and one archetype each, round-robin, so any ``--accounts`` >= 8 has every archetype.
2. :func:`generate` (pure, seeded) yields Segment calls day by day, oldest first: one ``group``
   call per account with its traits, an ``identify`` per user at first use, then per active
   user-day a login, key-feature uses and now and then a search or a page view. Each user in play
   in a week is active on a fixed number of weekdays, so weekly actives follow the archetype's
   shape exactly and the trend signals are crisp, not noise.
3. :class:`~services.cli.demo_send.DemoSender` posts them to ``/v1/batch`` (see there).

The key features are ``reports``, ``dashboards`` and ``integrations``: the feature catalog and
key features of ``deploy/tend.yaml``. Every feature event also carries ``properties.feature``, so
the rollups are right whatever the catalog; but feature breadth and the "key feature unused"
alerts need ``key_features`` configured: run ``TEND_CONFIG=deploy/tend.yaml tend up``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

KEY_FEATURES: Final = ("reports", "dashboards", "integrations")
FEATURE_EVENTS: Final = {
    "reports": "Report Exported",
    "dashboards": "Dashboard Viewed",
    "integrations": "Integration Connected",
}
"""Event names of the key features, as in deploy/tend.yaml's feature catalog."""


class Archetype(StrEnum):
    GROWING = "growing"
    STEADY = "healthy_steady"
    PLATEAUING = "plateauing"
    DECLINING = "declining"
    DORMANT = "going_dormant"
    ABANDONS_FEATURE = "abandons_feature"
    NEVER_ADOPTS = "never_adopts"
    OUT_OF_SEATS = "out_of_seats"


ARCHETYPES: Final = tuple(Archetype)

EXPECTED: Final[dict[Archetype, tuple[str, str]]] = {
    Archetype.GROWING: ("green", "adoption rising week over week"),
    Archetype.STEADY: ("green", "most seats in use, every key feature"),
    Archetype.PLATEAUING: ("yellow", "login_plateau, low_seat_utilization"),
    Archetype.DECLINING: ("yellow", "login_decline, feature_unused, renewal_risk if near"),
    Archetype.DORMANT: ("red", "dormant, health_red"),
    Archetype.ABANDONS_FEATURE: ("green", "feature_unused: integrations (abandoned)"),
    Archetype.NEVER_ADOPTS: ("green", "feature_unused: integrations (never adopted)"),
    Archetype.OUT_OF_SEATS: ("green", "upsell_seats (opportunity)"),
}
"""The band each archetype ends in under deploy/tend.yaml's model, and the alerts it shows."""


@dataclass(frozen=True, slots=True)
class Week:
    """How an account is used in one week: the first ``share`` of its seats are in play, each
    active on about ``days`` days (``spread`` = how much users differ), using ``features``."""

    share: float
    days: float
    features: tuple[str, ...] = KEY_FEATURES
    spread: float = 0.3


def week_plan(archetype: Archetype, back: int, weeks: int) -> Week:
    """Week ``back`` (0 = the 7 days ending today) of ``weeks``. Shapes are anchored at the end,
    so the last 28 days and the trend baseline look alike for any ``weeks`` >= 6."""
    age = weeks - 1 - back  # 0 = the oldest week
    if archetype is Archetype.GROWING:
        return Week(0.30 + 0.55 * age / max(1, weeks - 1), 3)
    if archetype is Archetype.STEADY:
        return Week(0.85, 3)
    if archetype is Archetype.PLATEAUING:
        # A quick start, then the same fifth of the seats once a week, on reports only.
        share = 0.20 if back < 6 else min(0.20, 0.10 + 0.05 * age)  # flat over the slope weeks
        return Week(share, 1, ("reports",), spread=0.0)
    if archetype is Archetype.DECLINING:
        # Loses users and visits over the last six weeks; integrations stop five weeks ago.
        share = 0.85 if back >= 6 else (0.10, 0.20, 0.30, 0.40, 0.55, 0.70)[back]
        features = KEY_FEATURES if back >= 5 else ("reports", "dashboards")
        return Week(share, 3 if back >= 4 else 1 + back / 2, features)
    if archetype is Archetype.DORMANT:
        return Week(0.60, 2)  # cut off 30 days before today by generate()
    if archetype is Archetype.ABANDONS_FEATURE:
        return Week(0.80, 3)  # integrations cut off 35 days before today by generate()
    if archetype is Archetype.NEVER_ADOPTS:
        return Week(0.80, 3, ("reports", "dashboards"))
    if archetype is Archetype.OUT_OF_SEATS:
        return Week(1.0, 3)
    raise AssertionError(archetype)


DORMANT_DAYS: Final = 30
"""A going-dormant account's last activity is this many days before today."""
ABANDONED_DAYS: Final = 35
"""An abandoning account last used integrations this many days before today."""

PLANS: Final = (
    # plan, seats, MRR
    ("starter", 10, 490.0),
    ("team", 20, 1_400.0),
    ("business", 40, 3_600.0),
    ("enterprise", 80, 9_500.0),
)
CSMS: Final = (
    ("Dana Whitfield", "dana.whitfield@vendor.example", "@dana"),
    ("Sam Okafor", "sam.okafor@vendor.example", "@sam"),
    ("Priya Raman", "priya.raman@vendor.example", "@priya"),
)
_NAMES: Final = (
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Wonka",
    "Soylent", "Tyrell", "Cyberdyne", "Aperture", "Pied Piper", "Oscorp", "Nakatomi", "Monarch",
    "Gekko", "Duff", "Sterling",
)  # fmt: skip
_SUFFIXES: Final = (
    "Analytics", "Logistics", "Health", "Labs", "Foods", "Media", "Robotics", "Finance",
)  # fmt: skip
_FIRST: Final = (
    "Ada", "Ben", "Chen", "Dee", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lea", "Max",
    "Nia", "Oli", "Pia", "Raj", "Sol", "Tea", "Uma", "Vic", "Wen", "Xin", "Yara", "Zoe",
)  # fmt: skip
_ROLES: Final = ("admin", "analyst", "manager", "engineer", "viewer")


@dataclass(frozen=True, slots=True)
class DemoAccount:
    account_id: str
    name: str
    archetype: Archetype
    plan: str
    seats: int
    mrr: float
    renewal_date: date
    created_at: date
    csm_name: str
    csm_email: str
    csm_slack: str
    lifecycle_stage: str
    users: tuple[str, ...]

    def traits(self) -> dict[str, Any]:
        """What the product's group call says (a write key cannot route alerts: no CSM
        destinations here, see :meth:`profile`)."""
        return {
            "name": self.name,
            "plan": self.plan,
            "seats": self.seats,
            "mrr": self.mrr,
            "renewal_date": self.renewal_date.isoformat(),
            "lifecycle_stage": self.lifecycle_stage,
            "created_at": self.created_at.isoformat(),
            "csm_name": self.csm_name,
        }

    def profile(self) -> dict[str, Any]:
        """What the operator sets (``PATCH /v1/accounts/{id}``): the CSM's destinations too."""
        traits = self.traits()
        del traits["csm_name"]
        return {**traits, "csm_email": self.csm_email, "csm_slack": self.csm_slack}


@dataclass(frozen=True, slots=True)
class DemoPlan:
    seed: int
    weeks: int
    today: date
    accounts: tuple[DemoAccount, ...]

    @property
    def start(self) -> date:
        return self.today - timedelta(days=self.weeks * 7 - 1)

    def by_archetype(self) -> dict[Archetype, list[DemoAccount]]:
        out: dict[Archetype, list[DemoAccount]] = {a: [] for a in ARCHETYPES}
        for account in self.accounts:
            out[account.archetype].append(account)
        return out


def _slug(text: str) -> str:
    return "-".join(text.lower().split())


def plan_demo(accounts: int, weeks: int, seed: int, today: date) -> DemoPlan:
    """``accounts`` accounts, archetypes round-robin; the same arguments give the same plan."""
    if accounts < 1 or weeks < 6:
        raise ValueError("the demo needs at least 1 account and 6 weeks")
    rng = random.Random(seed)
    names = [f"{n} {s}" for n in _NAMES for s in _SUFFIXES]
    rng.shuffle(names)
    out: list[DemoAccount] = []
    for i in range(accounts):
        archetype = ARCHETYPES[i % len(ARCHETYPES)]
        name = names[i % len(names)] + (f" {i // len(names) + 1}" if i >= len(names) else "")
        if archetype is Archetype.OUT_OF_SEATS:
            plan, seats, mrr = PLANS[rng.randrange(2)]
        elif archetype is Archetype.PLATEAUING:  # idle seats are the story: a large block
            plan, seats, mrr = PLANS[2 + rng.randrange(2)]
        else:
            plan, seats, mrr = PLANS[rng.randrange(len(PLANS))]
        # Renewals within 90 days for a third of the accounts, and always for the first
        # declining and plateauing ones: they show "renewal near with poor health".
        near = rng.random() < 0.33 or (
            i < len(ARCHETYPES) and archetype in (Archetype.DECLINING, Archetype.PLATEAUING)
        )
        renewal = today + timedelta(days=rng.randrange(14, 90) if near else rng.randrange(95, 360))
        # The trend baseline counts every whole week since the contract started, so a
        # contract older than a short history would add weeks of zeros to it.
        start = today - timedelta(days=weeks * 7 - 1)
        created = start - timedelta(days=rng.randrange(30, 400) if weeks >= 12 else 0)
        csm_name, csm_email, csm_slack = CSMS[i % len(CSMS)]
        top_share = max(week_plan(archetype, b, weeks).share for b in range(weeks))
        account_id = _slug(name)
        n_users = max(2, round(seats * top_share))
        out.append(
            DemoAccount(
                account_id=account_id,
                name=name,
                archetype=archetype,
                plan=plan,
                seats=seats,
                mrr=mrr,
                renewal_date=renewal,
                created_at=created,
                csm_name=csm_name,
                csm_email=csm_email,
                csm_slack=csm_slack,
                lifecycle_stage="renewal" if near else "growing",
                users=tuple(f"{account_id}-u{u:03d}" for u in range(n_users)),
            )
        )
    return DemoPlan(seed, weeks, today, tuple(out))


# -- events -------------------------------------------------------------------------------------


def iso_timestamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class _AccountState:
    account: DemoAccount
    rng: random.Random
    engagement: dict[str, float]
    identified: set[str] = field(default_factory=set)
    schedule: dict[str, set[int]] = field(default_factory=dict)
    """user -> weekdays (0..6 of the current week) the user is active on."""
    seq: int = 0


def _user_name(user: str, rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {user[-3:]}"


def generate(plan: DemoPlan, now: datetime) -> Iterator[tuple[date, list[dict[str, Any]]]]:
    """Segment calls per day, oldest day first, each day's calls in time order. Nothing later
    than ``now`` is generated. Same plan and ``now``, same calls (message ids included)."""
    states = []
    for index, account in enumerate(plan.accounts):
        rng = random.Random(f"{plan.seed}:{index}:{account.account_id}")
        engagement = {u: rng.uniform(0.6, 1.4) for u in account.users}
        states.append(_AccountState(account, rng, engagement))

    def call(state: _AccountState, **fields: Any) -> dict[str, Any]:
        state.seq += 1
        return {"messageId": f"demo-{plan.seed}-{state.account.account_id}-{state.seq}", **fields}

    for offset in range(plan.weeks * 7):
        day = plan.start + timedelta(days=offset)
        back_days = (plan.today - day).days
        week_back = back_days // 7
        weekday = 6 - back_days % 7  # 0 = the first day of this (today-anchored) week
        calls: list[tuple[datetime, dict[str, Any]]] = []
        for state in states:
            a = state.account
            if offset == 0:
                at = datetime.combine(day, datetime.min.time(), UTC).replace(hour=6)
                calls.append(
                    (
                        at,
                        call(
                            state,
                            type="group",
                            userId=a.users[0],
                            groupId=a.account_id,
                            traits=a.traits(),
                            timestamp=iso_timestamp(at),
                        ),
                    )
                )
            week = week_plan(a.archetype, week_back, plan.weeks)
            if weekday == 0 or offset == 0:
                _schedule_week(state, week)
            if a.archetype is Archetype.DORMANT and back_days < DORMANT_DAYS:
                continue
            features = week.features
            if a.archetype is Archetype.ABANDONS_FEATURE and back_days < ABANDONED_DAYS:
                features = tuple(f for f in features if f != "integrations")
            for user, days in state.schedule.items():
                if weekday not in days:
                    continue
                calls.extend(_user_day(state, call, user, day, features, now))
        calls.sort(key=lambda c: c[0])
        yield day, [c for _, c in calls]


def _schedule_week(state: _AccountState, week: Week) -> None:
    rng, a = state.rng, state.account
    in_play = a.users[: max(1, round(a.seats * week.share))] if week.share > 0 else ()
    state.schedule = {}
    for user in in_play:
        # Power users come most days, occasional ones once or twice; everyone in play comes
        # at least once, so weekly actives are exactly the users in play.
        mean = week.days * (1 + (state.engagement[user] - 1) * week.spread / 0.4)
        n = min(5, max(1, round(mean)))
        state.schedule[user] = set(rng.sample(range(7), n))


def _user_day(
    state: _AccountState,
    call: Callable[..., dict[str, Any]],
    user: str,
    day: date,
    features: tuple[str, ...],
    now: datetime,
) -> list[tuple[datetime, dict[str, Any]]]:
    rng, a = state.rng, state.account
    midnight = datetime.combine(day, datetime.min.time(), UTC)
    offset = rng.randrange(7 * 3600, 19 * 3600)
    if midnight.date() == now.date():
        # Today's visits happen in the hours gone by, so this week's actives are all there.
        elapsed = int((now - midnight).total_seconds())
        offset = offset * max(1, elapsed - 3600) // (19 * 3600)
    start = midnight + timedelta(seconds=offset)
    if start > now:
        return []
    context = {"groupId": a.account_id, "library": {"name": "tend-demo", "version": "1"}}
    out: list[tuple[datetime, dict[str, Any]]] = []

    def add(at: datetime, **fields: Any) -> None:
        if at <= now:
            out.append((at, call(state, timestamp=iso_timestamp(at), context=context, **fields)))

    if user not in state.identified:
        state.identified.add(user)
        add(
            start - timedelta(seconds=2),
            type="identify",
            userId=user,
            traits={
                "name": _user_name(user, rng),
                "email": f"{user}@{a.account_id}.example",
                "role": _ROLES[0] if user == a.users[0] else rng.choice(_ROLES[1:]),
            },
        )
    props = {"account_id": a.account_id}
    add(start, type="track", userId=user, event="Signed In", properties=props)
    at = start
    for _ in range(rng.randrange(1, 4)):
        at += timedelta(seconds=rng.randrange(30, 900))
        feature = rng.choice(features)
        add(
            at,
            type="track",
            userId=user,
            event=FEATURE_EVENTS[feature],
            properties={**props, "feature": feature},
        )
    if rng.random() < 0.3:
        at += timedelta(seconds=rng.randrange(30, 600))
        add(
            at,
            type="track",
            userId=user,
            event="Search Used",
            properties={**props, "feature": "search", "results": rng.randrange(0, 40)},
        )
    if rng.random() < 0.2:
        at += timedelta(seconds=rng.randrange(30, 600))
        add(at, type="page", userId=user, name="Settings", properties={"path": "/settings"})
    return out

"""Synthetic usage for end-to-end scorer tests and the benchmark.

:func:`generate` builds a deterministic (seeded) stream of canonical events for account
archetypes over N weeks: a ``group`` call per account, an ``identify`` per user, then per
active user-day a login, a few key-feature uses and now and then a page view; a few events
arrive late (out of order). :func:`expected_rollups` computes, independently of the scorer,
the exact rows the daily rollup tables must hold for those events.

The second half holds what the end-to-end tests share to drive the real components: publish
to the bus, wait for the consumer's stored offsets to reach the end of the topic, read the
rollup tables back.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.consumer import ScorerService
from shared import topics
from shared.accounts_csv import AccountRow, import_accounts
from shared.bus import Bus, TopicSpec
from shared.bus.base import Delivery, Message, Producer
from shared.bus.kafka import KafkaBus
from shared.bus.memory import InProcessBus
from shared.clock import FixedClock
from shared.config import TendConfig
from shared.db.models import AccountDay, ConsumerOffset, FeatureDay, FeatureUserDay, UserDay
from shared.db.session import create_engine, create_sessionmaker
from shared.events import CanonicalEvent
from shared.settings import KafkaSettings

KEY_FEATURES = ("reports", "dashboards", "exports")
CONFIG = TendConfig(key_features=KEY_FEATURES)
"""The model defaults with the synthetic product's three key features."""

DEFAULT_END = date(2026, 11, 15)
"""The last day of the synthetic history (the replay scores as of this day)."""


class Archetype(StrEnum):
    HEALTHY_GROWING = "healthy_growing"
    HEALTHY_STEADY = "healthy_steady"
    PLATEAUING = "plateauing"
    DECLINING = "declining"
    DORMANT = "dormant"
    ABANDONS_FEATURE = "abandons_feature"
    NEVER_ADOPTS = "never_adopts"


@dataclass(frozen=True, slots=True)
class WeekPlan:
    """How an account is used in one week: the first ``users`` of its users are in play, each
    active on a day with probability ``p``, using ``features``."""

    users: int
    p: float
    features: tuple[str, ...]


def _plan(archetype: Archetype, week: int, weeks: int) -> WeekPlan:
    """Week ``week`` (0 = oldest) of ``weeks``. Shapes are relative to the end, so the last
    28 days and the trend baseline look the same whatever ``weeks`` is (>= 8)."""
    back = weeks - 1 - week  # 0 = the week ending on the last day
    allf = KEY_FEATURES
    if archetype is Archetype.HEALTHY_GROWING:
        return WeekPlan(round(6 + 12 * week / max(1, weeks - 1)), 0.6, allf)
    if archetype is Archetype.HEALTHY_STEADY:
        return WeekPlan(13, 0.6, allf)
    if archetype is Archetype.PLATEAUING:
        # Ramps up for four weeks, then holds at a fifth of its seats on one key feature.
        return WeekPlan(min(10, 2 + 2 * week), 0.6, ("reports",))
    if archetype is Archetype.DECLINING:
        # Steady at 16 users, then loses users over the last 6 weeks; exports stop a month ago.
        users = 16 if back >= 6 else (14, 11, 9, 7, 4, 2)[5 - back]
        return WeekPlan(users, 0.5, allf if back >= 4 else ("reports", "dashboards"))
    if archetype is Archetype.DORMANT:
        # Used normally, then nothing at all for the last 5 weeks.
        return WeekPlan(8 if back >= 5 else 0, 0.6, allf)
    if archetype is Archetype.ABANDONS_FEATURE:
        # Healthy, but nobody has used exports in the last 6 weeks.
        return WeekPlan(13, 0.6, allf if back >= 6 else ("reports", "dashboards"))
    if archetype is Archetype.NEVER_ADOPTS:
        return WeekPlan(13, 0.6, ("reports", "dashboards"))
    raise AssertionError(archetype)


SEATS = {
    Archetype.HEALTHY_GROWING: 20,
    Archetype.HEALTHY_STEADY: 15,
    Archetype.PLATEAUING: 50,
    Archetype.DECLINING: 20,
    Archetype.DORMANT: 10,
    Archetype.ABANDONS_FEATURE: 15,
    Archetype.NEVER_ADOPTS: 15,
}
USERS = {
    Archetype.HEALTHY_GROWING: 18,
    Archetype.HEALTHY_STEADY: 13,
    Archetype.PLATEAUING: 10,
    Archetype.DECLINING: 16,
    Archetype.DORMANT: 8,
    Archetype.ABANDONS_FEATURE: 13,
    Archetype.NEVER_ADOPTS: 13,
}


@dataclass(frozen=True, slots=True)
class SyntheticAccount:
    account_id: str
    archetype: Archetype
    seats: int
    users: tuple[str, ...]
    csm_email: str
    mrr: float
    renewal_date: date


@dataclass(slots=True)
class Replay:
    """The generated stream, in publish order, and what it describes."""

    start: date
    end: date
    accounts: list[SyntheticAccount]
    events: list[CanonicalEvent] = field(default_factory=list)

    def by_archetype(self) -> dict[Archetype, list[str]]:
        out: dict[Archetype, list[str]] = defaultdict(list)
        for a in self.accounts:
            out[a.archetype].append(a.account_id)
        return dict(out)

    @property
    def account_ids(self) -> list[str]:
        return [a.account_id for a in self.accounts]

    def as_of_datetime(self) -> datetime:
        """The end of the last day: the FixedClock time of the replay."""
        return datetime.combine(self.end, time(23, 59, 59), tzinfo=UTC)

    def messages(self) -> list[Message]:
        return [to_message(e) for e in self.events]


def to_message(event: CanonicalEvent) -> Message:
    """The record the ingest would publish: key = account id."""
    key = event.account_id.encode() if event.account_id else None
    return Message(value=event.to_bytes(), key=key)


def _at(day: date, rng: random.Random) -> datetime:
    seconds = rng.randrange(7 * 3600, 19 * 3600)
    return datetime.combine(day, time(0), tzinfo=UTC) + timedelta(seconds=seconds)


def generate(
    prefix: str,
    *,
    seed: int = 7,
    weeks: int = 12,
    end: date = DEFAULT_END,
    per_archetype: int = 1,
    archetypes: Sequence[Archetype] = tuple(Archetype),
    late_share: float = 0.01,
) -> Replay:
    """Events of ``per_archetype`` accounts of each archetype over ``weeks`` weeks ending on
    ``end``; ids start with ``prefix``. Same arguments, same events."""
    rng = random.Random(seed)
    days = weeks * 7
    start = end - timedelta(days=days - 1)
    replay = Replay(start=start, end=end, accounts=[])
    seq = 0

    def event(**kw: Any) -> CanonicalEvent:
        nonlocal seq
        seq += 1
        occurred: datetime = kw.pop("occurred_at")
        return CanonicalEvent(
            event_id=f"{prefix}-e{seq:07d}",
            occurred_at=occurred,
            received_at=occurred + timedelta(seconds=rng.randrange(1, 5)),
            **kw,
        )

    timed: list[CanonicalEvent] = []
    for archetype in archetypes:
        for n in range(per_archetype):
            account_id = f"{prefix}-{archetype.value}-{n}"
            users = tuple(f"{account_id}-u{i:02d}" for i in range(USERS[archetype]))
            account = SyntheticAccount(
                account_id=account_id,
                archetype=archetype,
                seats=SEATS[archetype],
                users=users,
                csm_email=f"csm{n % 2}@{prefix}.example",
                mrr=float(100 * SEATS[archetype]),
                renewal_date=end + timedelta(days=30 + 10 * n),
            )
            replay.accounts.append(account)
            first_day = datetime.combine(start, time(6), tzinfo=UTC)
            timed.append(
                event(
                    type="group",
                    account_id=account_id,
                    user_id=users[0],
                    occurred_at=first_day,
                    traits={
                        "name": f"{archetype.value.replace('_', ' ').title()} {n}",
                        "plan": "pro" if n % 2 == 0 else "team",
                        "seats": account.seats,
                        "mrr": account.mrr,
                        "renewal_date": account.renewal_date.isoformat(),
                        "created_at": start.isoformat(),
                        "csm_email": account.csm_email,
                    },
                )
            )
            identified: set[str] = set()
            for week in range(weeks):
                plan = _plan(archetype, week, weeks)
                for d in range(7):
                    day = start + timedelta(days=week * 7 + d)
                    for user in users[: plan.users]:
                        if rng.random() >= plan.p:
                            continue
                        at = _at(day, rng)
                        if user not in identified:
                            identified.add(user)
                            timed.append(
                                event(
                                    type="identify",
                                    account_id=account_id,
                                    user_id=user,
                                    occurred_at=at - timedelta(seconds=1),
                                    traits={"email": f"{user}@example.com"},
                                )
                            )
                        timed.append(
                            event(
                                type="track",
                                account_id=account_id,
                                user_id=user,
                                name="Signed In",
                                is_login=True,
                                occurred_at=at,
                            )
                        )
                        for i in range(rng.randrange(0, 4)):
                            feature = rng.choice(plan.features)
                            timed.append(
                                event(
                                    type="track",
                                    account_id=account_id,
                                    user_id=user,
                                    name=f"{feature.title()} Used",
                                    feature=feature,
                                    occurred_at=at + timedelta(minutes=5 + i),
                                )
                            )
                        if rng.random() < 0.2:
                            timed.append(
                                event(
                                    type="page",
                                    account_id=account_id,
                                    user_id=user,
                                    name="Settings",
                                    occurred_at=at + timedelta(minutes=30),
                                )
                            )
                    if plan.users and rng.random() < 0.1:
                        # An anonymous visitor: counts as an event, not as an active user.
                        timed.append(
                            event(
                                type="page",
                                account_id=account_id,
                                anonymous_id=f"anon-{rng.randrange(10**6)}",
                                name="Pricing",
                                occurred_at=_at(day, rng),
                            )
                        )
    timed.sort(key=lambda e: (e.occurred_at, e.event_id))
    # A few events arrive late: moved a hundred to a few thousand places down the stream.
    position = [float(i) for i in range(len(timed))]
    for i, e in enumerate(timed):
        if e.type == "track" and rng.random() < late_share:
            position[i] += rng.randrange(100, 3000) + 0.5
    order = sorted(range(len(timed)), key=position.__getitem__)
    replay.events = [timed[i] for i in order]
    return replay


# -- the rollups the events imply ----------------------------------------------------------


@dataclass(slots=True)
class Rollups:
    """Rows of the four rollup tables, keyed like their primary keys."""

    account_days: dict[tuple[str, date], tuple[int, int, int]] = field(default_factory=dict)
    """(account, day) -> (events, logins, active_users)"""
    user_days: dict[tuple[str, str, date], tuple[int, int]] = field(default_factory=dict)
    """(account, user, day) -> (events, logins)"""
    feature_days: dict[tuple[str, str, date], tuple[int, int]] = field(default_factory=dict)
    """(account, feature, day) -> (uses, users)"""
    feature_user_days: dict[tuple[str, str, str, date], int] = field(default_factory=dict)
    """(account, feature, user, day) -> uses"""

    def only(self, accounts: Iterable[str]) -> Rollups:
        keep = set(accounts)
        return Rollups(
            {k: v for k, v in self.account_days.items() if k[0] in keep},
            {k: v for k, v in self.user_days.items() if k[0] in keep},
            {k: v for k, v in self.feature_days.items() if k[0] in keep},
            {k: v for k, v in self.feature_user_days.items() if k[0] in keep},
        )

    def totals(self, account: str) -> dict[str, int]:
        days = [v for k, v in self.account_days.items() if k[0] == account]
        return {
            "events": sum(v[0] for v in days),
            "logins": sum(v[1] for v in days),
            "active_user_days": sum(v[2] for v in days),
            "distinct_users": len({k[1] for k in self.user_days if k[0] == account}),
        }


def expected_rollups(events: Iterable[CanonicalEvent]) -> Rollups:
    """The rollup rows for ``events``, by the rules of docs and the processor: ``track`` and
    ``page`` are activity, a ``track`` with ``is_login`` is a login, only identified users
    count as active users, an event id counts once, the day is the UTC date of occurred_at."""
    seen: set[str] = set()
    acc: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0])
    users: dict[tuple[str, str, date], list[int]] = defaultdict(lambda: [0, 0])
    fuses: dict[tuple[str, str, str, date], int] = defaultdict(int)
    fanon: dict[tuple[str, str, date], int] = defaultdict(int)
    for e in events:
        if e.event_id in seen:
            continue
        seen.add(e.event_id)
        if e.type not in ("track", "page") or not e.account_id:
            continue
        day = e.occurred_at.astimezone(UTC).date()
        login = int(e.type == "track" and e.is_login)
        acc[(e.account_id, day)][0] += 1
        acc[(e.account_id, day)][1] += login
        if e.user_id:
            users[(e.account_id, e.user_id, day)][0] += 1
            users[(e.account_id, e.user_id, day)][1] += login
        if e.feature:
            if e.user_id:
                fuses[(e.account_id, e.feature, e.user_id, day)] += 1
            else:
                fanon[(e.account_id, e.feature, day)] += 1
    out = Rollups()
    active: dict[tuple[str, date], int] = defaultdict(int)
    for a, _u, d in users:
        active[(a, d)] += 1
    out.account_days = {k: (v[0], v[1], active[k]) for k, v in acc.items()}
    out.user_days = {k: (v[0], v[1]) for k, v in users.items()}
    out.feature_user_days = dict(fuses)
    fdays: dict[tuple[str, str, date], list[int]] = defaultdict(lambda: [0, 0])
    for (a, f, _u, d), n in fuses.items():
        fdays[(a, f, d)][0] += n
        fdays[(a, f, d)][1] += 1
    for k, n in fanon.items():
        fdays[k][0] += n
    out.feature_days = {k: (v[0], v[1]) for k, v in fdays.items()}
    return out


# -- driving the real components -------------------------------------------------------------

Sessions = async_sessionmaker[AsyncSession]
PARTITIONS = 4
KAFKA = KafkaSettings(partitions=PARTITIONS, session_timeout_ms=6000, heartbeat_interval_ms=1000)
"""Short session timeout: a restarted group member joins in seconds, not tens of them."""


@dataclass
class Stack:
    bus: Bus
    sessions: Sessions
    producer: Producer
    kind: str


@contextlib.asynccontextmanager
async def kafka_stack(bootstrap: str, database_url: str) -> AsyncIterator[Stack]:
    engine = create_engine(database_url)
    bus = KafkaBus(bootstrap, KAFKA)
    producer = bus.producer()
    await producer.start()
    await producer.ensure_topics([TopicSpec(t, PARTITIONS) for t in topics.ALL])
    try:
        yield Stack(bus, create_sessionmaker(engine), producer, "kafka")
    finally:
        await bus.close()
        await engine.dispose()


@contextlib.asynccontextmanager
async def in_process_stack(database_url: str) -> AsyncIterator[Stack]:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    bus = InProcessBus(sessions, PARTITIONS)
    producer = bus.producer()
    await producer.start()
    try:
        yield Stack(bus, sessions, producer, "in-process")
    finally:
        await producer.stop()
        await bus.close()
        await engine.dispose()


async def run_scorer_until_consumed(
    stack: Stack, replay: Replay, ends: dict[tuple[str, int], int], group_id: str
) -> None:
    """Run ScorerService until the offsets stored in the database reach ``ends``."""
    clock = FixedClock(replay.as_of_datetime())
    service = ScorerService(
        stack.bus,
        stack.sessions,
        stack.producer,
        CONFIG,
        clock,
        group_id=group_id,
        max_records=500,
        max_wait_s=0.1,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))

    def alive() -> None:
        if task.done():
            raise AssertionError(f"the scorer stopped early: {task.exception()!r}")

    try:
        await wait_for_offsets(stack.sessions, group_id, ends, alive=alive)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def import_profiles(sessions: Sessions, replay: Replay) -> None:
    """The operator's part: each account's CSM (``tend accounts import``), since the scorer
    takes no routing from group traits."""
    rows = [AccountRow(a.account_id, {"csm_email": a.csm_email}) for a in replay.accounts]
    async with sessions() as session, session.begin():
        await import_accounts(session, rows)


async def publish(
    producer: Producer, topic: str, messages: Sequence[Message], chunk: int = 2000
) -> list[Delivery]:
    """Publish in order; where each message was stored, in the same order."""
    out: list[Delivery] = []
    for start in range(0, len(messages), chunk):
        out += await producer.publish(topic, messages[start : start + chunk], timeout_s=60)
    return out


def end_offsets(deliveries: Iterable[Delivery]) -> dict[tuple[str, int], int]:
    """The next offset of every partition written."""
    ends: dict[tuple[str, int], int] = {}
    for d in deliveries:
        key = (d.topic, d.partition)
        ends[key] = max(ends.get(key, 0), d.offset + 1)
    return ends


async def stored_offsets(sessions: Sessions, group_id: str) -> dict[tuple[str, int], int]:
    async with sessions() as session:
        rows = await session.execute(
            select(
                ConsumerOffset.topic, ConsumerOffset.partition, ConsumerOffset.next_offset
            ).where(ConsumerOffset.group_id == group_id)
        )
        return {(t, p): int(o) for t, p, o in rows}


async def wait_until(
    condition: Callable[[], Any],
    *,
    timeout_s: float = 120.0,
    interval_s: float = 0.2,
    what: str = "condition",
    describe: Callable[[], Any] | None = None,
) -> Any:
    """Poll the (async or sync) ``condition`` until it returns something truthy. The deadline
    is a safety net against hangs, never a performance assertion."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        got = condition()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if asyncio.get_running_loop().time() > deadline:
            extra = ""
            if describe is not None:
                d = describe()
                extra = f"; {await d if asyncio.iscoroutine(d) else d}"
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}{extra}")
        await asyncio.sleep(interval_s)


async def wait_for_offsets(
    sessions: Sessions,
    group_id: str,
    ends: Mapping[tuple[str, int], int],
    *,
    timeout_s: float = 180.0,
    alive: Callable[[], None] | None = None,
) -> None:
    """Until the group's offsets stored in the database reach ``ends`` on every partition.
    ``alive`` may raise to stop waiting early (the service under test died)."""

    async def reached() -> bool:
        if alive is not None:
            alive()
        stored = await stored_offsets(sessions, group_id)
        return all(stored.get(tp, 0) >= end for tp, end in ends.items())

    async def where() -> str:
        return f"stored {await stored_offsets(sessions, group_id)} vs end {dict(ends)}"

    await wait_until(reached, timeout_s=timeout_s, what="stored offsets", describe=where)


async def read_rollups(sessions: Sessions, accounts: Iterable[str] | None = None) -> Rollups:
    """The four rollup tables as :class:`Rollups` (of ``accounts`` only, when given)."""
    keep = list(accounts) if accounts is not None else None
    out = Rollups()
    async with sessions() as session:

        async def rows(model: Any, *cols: Any) -> list[Any]:
            stmt = select(*cols)
            if keep is not None:
                stmt = stmt.where(model.account_id.in_(keep))
            return list(await session.execute(stmt))

        for a, d, ev, lo, au in await rows(
            AccountDay,
            AccountDay.account_id,
            AccountDay.day,
            AccountDay.events,
            AccountDay.logins,
            AccountDay.active_users,
        ):
            out.account_days[(a, _day(d))] = (ev, lo, au)
        for a, u, d, ev, lo in await rows(
            UserDay,
            UserDay.account_id,
            UserDay.user_id,
            UserDay.day,
            UserDay.events,
            UserDay.logins,
        ):
            out.user_days[(a, u, _day(d))] = (ev, lo)
        for a, f, d, uses, users in await rows(
            FeatureDay,
            FeatureDay.account_id,
            FeatureDay.feature,
            FeatureDay.day,
            FeatureDay.uses,
            FeatureDay.users,
        ):
            out.feature_days[(a, f, _day(d))] = (uses, users)
        for a, f, u, d, uses in await rows(
            FeatureUserDay,
            FeatureUserDay.account_id,
            FeatureUserDay.feature,
            FeatureUserDay.user_id,
            FeatureUserDay.day,
            FeatureUserDay.uses,
        ):
            out.feature_user_days[(a, f, u, _day(d))] = uses
    return out


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


async def count_rows(sessions: Sessions, model: Any) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)

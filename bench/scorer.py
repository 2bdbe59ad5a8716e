"""Scorer throughput, re-scoring time and memory.

Run by hand (not in CI), from the repository root:

    .venv/bin/python bench/scorer.py [--mix worst|typical|both] [--events 200000] [--accounts 2000]
        [--rescore-accounts 100000] [--max-seconds 300]

It starts its own tansu broker and fresh PostgreSQL databases (on TEND_TEST_PG_DSN, default
the server at 127.0.0.1:5432), and measures:

(a) consume: ``--events`` canonical events over ``--accounts`` accounts are published to
    ``tend.events.v1``; a plain aiokafka consumer (no group, no processing) reads them all,
    then :class:`ScorerService` (the real runner: decode, one-transaction flush with the
    offsets in ``consumer_offsets``, bus commit, and its re-scorer of the dirty accounts)
    consumes them into the rollups. The scorer's rate is the records committed per second from
    its first committed batch until the offsets stored in the database reach the end (the
    group join, ~5 s on tansu, is printed apart). Target (issue 13): at least 0.10 of the raw rate
    with the re-scorer on. It also prints the CPU per committed event of this process and of
    the PostgreSQL backends of the bench's database (read from /proc, so only when the server
    runs on this machine): steadier than the rates on a shared machine.
(b) re-score: ``--rescore-accounts`` accounts with ``--rescore-weeks`` weeks of user, account
    and feature days, seeded with INSERT ... SELECT generate_series, then one
    ``Rescorer.sweep`` (publishing every score to the broker), with this process's CPU time
    per account (the sweep's Python; PostgreSQL's share is the rest of the wall time) and the
    load average. Target (issue 13): 100,000 accounts in under 30 s.
(c) memory: the process's peak RSS before and after each phase, so one can see that scoring
    100,000 accounts does not grow memory with the number of accounts (chunked sweep).
(d) with ``--soak-seconds N``: ScorerService (re-scorer on) under a steady ``--soak-rate`` of
    typical events for N seconds, its current RSS printed every 30 s; flat is the target.
    ``--memory-details`` adds to each sample glibc's heap, pymalloc's arenas and the cyclic
    collector's objects, counters and CPU; ``--tracemalloc`` also the allocation sites and
    object types that grew (bench/memwatch.py says how to read them; tracing slows the scorer
    several times over, so trace at a lower ``--soak-rate``); ``--malloc-trim-every`` gives
    glibc's free memory back every so often.

``--mix`` picks phase (a)'s events: ``worst`` (every event a user-day of its own: the most
rows per event), ``typical`` (10-50 events per user-day over 4-8 features, as analytics SDKs
send them; target 0.30 of raw) or ``both``, each on a broker of its own.

Every phase stops at ``--max-seconds``; the rates are over what was done.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import random
import resource
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
for _path in (ROOT, SCRIPT.parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from memwatch import MemoryWatch, malloc_trim  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402

from services.scorer.consumer import GROUP_ID, ScorerService  # noqa: E402
from services.scorer.rescorer import Rescorer  # noqa: E402
from shared import topics  # noqa: E402
from shared.bus import Message, TopicSpec  # noqa: E402
from shared.bus.kafka import KafkaBus  # noqa: E402
from shared.clock import FixedClock, SystemClock  # noqa: E402
from shared.config import TendConfig  # noqa: E402
from shared.db.migrate import upgrade_async  # noqa: E402
from shared.db.session import create_engine, create_sessionmaker  # noqa: E402
from shared.events import CanonicalEvent, decode_event  # noqa: E402
from shared.settings import KafkaSettings, ScorerSettings  # noqa: E402
from tests.support.broker import TansuBroker  # noqa: E402
from tests.support.postgres import create_database, drop_database  # noqa: E402
from tests.support.raw_kafka import raw_consume  # noqa: E402

KEY_FEATURES = ("reports", "dashboards", "exports")
FEATURES = [*KEY_FEATURES, "search", "settings", "invites", "billing", "alerts", "api", "sharing"]
CONCURRENT_SESSIONS = 300
"""Sessions (user-days) of the typical mix interleaved on the topic at any time."""
CONFIG = TendConfig(key_features=KEY_FEATURES)
PARTITIONS = 6
USERS_PER_ACCOUNT = 10
PUBLISH_CHUNK = 5000

STOP_S = 120.0
"""How long a stopped scorer may take to finish before the bench cancels it."""
SOAK_SAMPLE_S = 30.0
"""How often the soak (``--soak-seconds``) prints the process's memory."""

TARGETS = {"worst": 0.10, "typical": 0.30}
"""Issue 13: the scorer, re-scorer on, at these fractions of a raw consume of the same topic."""
RESCORE_TARGET_S = 30.0
"""Issue 13: re-score 100,000 accounts in under 30 s."""

Sessions = async_sessionmaker[AsyncSession]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def memory(label: str) -> None:
    print(
        f"  memory {label:<38} current {current_rss_mb():>7.1f} MB   peak {peak_rss_mb():>7.1f} MB"
    )


async def stop_within(task: asyncio.Task[None], seconds: float) -> None:
    """Wait for a stopped service; past ``seconds`` (a re-scoring that does not yield) cancel
    it and say so, keeping the figures measured before."""
    try:
        await asyncio.wait_for(task, seconds)
    except TimeoutError:
        print(f"  (the scorer took over {seconds:.0f} s to stop; cancelled)")


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def rate_line(label: str, n: int, seconds: float) -> str:
    per_s = n / seconds if seconds > 0 else 0.0
    return f"  {label:<44} {n:>8} records {seconds:>8.2f} s {per_s:>10,.0f}/s"


# -- (a) consume ---------------------------------------------------------------------------


def worst_events(n: int, accounts: int, today: date, seed: int = 1) -> Iterator[CanonicalEvent]:
    """The worst case for the writer: ``n`` events spread over ``accounts`` accounts (10 users
    each) and the last 28 days at random, so almost every event is a user-day of its own."""
    rng = random.Random(seed)
    start = datetime.combine(today - timedelta(days=27), dtime(0), tzinfo=UTC)
    for i in range(n):
        account = f"acct-{rng.randrange(accounts):05d}"
        user = f"{account}-u{rng.randrange(USERS_PER_ACCOUNT)}"
        at = start + timedelta(seconds=rng.randrange(28 * 86400))
        login = rng.random() < 0.15
        feature = None if login else rng.choice((*KEY_FEATURES, None))
        yield bench_event(seed, i, account, user, at, login, feature)


def typical_events(n: int, accounts: int, today: date, seed: int = 1) -> Iterator[CanonicalEvent]:
    """What analytics SDKs produce: each user-day is a session of 10-50 events over 4-8 of
    :data:`FEATURES` (a login first), and :data:`CONCURRENT_SESSIONS` sessions of random
    accounts, users and days interleave on the topic."""
    rng = random.Random(seed)
    start = datetime.combine(today - timedelta(days=27), dtime(0), tzinfo=UTC)

    def session() -> tuple[str, str, datetime, list[str], int]:
        account = f"acct-{rng.randrange(accounts):05d}"
        user = f"{account}-u{rng.randrange(USERS_PER_ACCOUNT)}"
        began = start + timedelta(days=rng.randrange(28), seconds=rng.randrange(43200))
        return account, user, began, rng.sample(FEATURES, rng.randint(4, 8)), rng.randint(10, 50)

    sessions = [session() for _ in range(CONCURRENT_SESSIONS)]
    left = [s[4] for s in sessions]
    for i in range(n):
        k = rng.randrange(CONCURRENT_SESSIONS)
        account, user, began, features, total = sessions[k]
        done = total - left[k]
        at = began + timedelta(seconds=60 * done + rng.randrange(60))
        feature = None if done == 0 else rng.choice(features)
        yield bench_event(seed, i, account, user, at, done == 0, feature)
        left[k] -= 1
        if not left[k]:
            sessions[k] = session()
            left[k] = sessions[k][4]


def bench_event(
    seed: int, i: int, account: str, user: str, at: datetime, login: bool, feature: str | None
) -> CanonicalEvent:
    return CanonicalEvent(
        event_id=f"bench-{seed}-{i}",
        type="track",
        account_id=account,
        user_id=user,
        name="Signed In" if login else f"{feature or 'page'} used",
        feature=feature,
        is_login=login,
        occurred_at=at,
        received_at=at + timedelta(seconds=1),
        properties={"source": "bench", "n": i % 1000},
    )


MIXES = {"worst": worst_events, "typical": typical_events}


async def publish_events(
    bus: KafkaBus, mix: str, n: int, accounts: int, today: date
) -> dict[int, int]:
    producer = bus.producer()
    await producer.start()
    await producer.ensure_topics([TopicSpec(t, PARTITIONS) for t in topics.ALL])
    ends: dict[int, int] = {}
    chunk: list[Message] = []
    started = time.perf_counter()

    async def flush() -> None:
        for d in await producer.publish(topics.EVENTS, chunk, timeout_s=120):
            ends[d.partition] = max(ends.get(d.partition, 0), d.offset + 1)
        chunk.clear()

    for e in MIXES[mix](n, accounts, today):
        chunk.append(Message(value=e.to_bytes(), key=(e.account_id or "").encode()))
        if len(chunk) >= PUBLISH_CHUNK:
            await flush()
    if chunk:
        await flush()
    await producer.stop()
    print(rate_line("published (KafkaBus producer, acks=all)", n, time.perf_counter() - started))
    return ends


async def stored_total(sessions: Sessions, group_id: str) -> int:
    async with sessions() as session:
        value = await session.scalar(
            text("SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE group_id = :g"),
            {"g": group_id},
        )
        return int(value or 0)


async def backend_cpu(sessions: Sessions) -> dict[int, float]:
    """CPU seconds (user + system) of each PostgreSQL backend on this bench's database, read
    from /proc (the server runs on this machine); empty where /proc cannot tell."""
    async with sessions() as session:
        pids = (
            await session.scalars(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            )
        ).all()
    found = {int(pid): process_cpu(int(pid)) for pid in pids}
    return {pid: cpu for pid, cpu in found.items() if cpu is not None}


def cpu_line(label: str, n: int, python_s: float, database_s: float) -> str:
    if not n:
        return f"  {label}: no events"
    py, db = python_s / n * 1e6, database_s / n * 1e6
    return (
        f"  {label} CPU per event: Python {py:.0f} us, PostgreSQL {db:.0f} us, "
        f"together {py + db:.0f} us"
    )


async def scorer_consume(
    bus: KafkaBus, sessions: Sessions, want: int, max_s: float, *, rescorer: bool = True
) -> tuple[float, int, float, float]:
    """Run ScorerService (or, without ``rescorer``, only its batch consumer and events handler)
    until its stored offsets reach ``want`` records. Returns (seconds to join and commit a
    first batch, records after that, seconds after that, seconds in all), and prints this
    process's CPU time and its database backends' per event committed."""
    producer = bus.producer()
    await producer.start()
    scorer = ScorerSettings()
    group_id = f"{GROUP_ID}-{uuid.uuid4().hex[:8]}"  # each run starts from the beginning
    service = ScorerService(
        bus,
        sessions,
        producer,
        CONFIG,
        SystemClock(),
        group_id=group_id,
        max_records=scorer.batch_max_records,
        max_wait_s=scorer.batch_max_wait_s,
    )
    run = service.run if rescorer else service.consumer.run
    if not rescorer:
        service.handler.rescorer = None
    stop = asyncio.Event()
    backends = await backend_cpu(sessions)
    cpu_started = time.process_time()
    started = time.perf_counter()
    task = asyncio.create_task(run(stop))
    first_at: float | None = None
    first_done = 0
    done = 0
    try:
        while done < want and time.perf_counter() - started < max_s:
            if task.done():
                raise RuntimeError(f"the scorer stopped: {task.exception()!r}")
            done = await stored_total(sessions, group_id)
            if first_at is None and done > 0:
                first_at, first_done = time.perf_counter(), done
            await asyncio.sleep(0.05)
        finished = time.perf_counter()
        python_s = time.process_time() - cpu_started
        database_s = sum(t - backends.get(p, 0.0) for p, t in (await backend_cpu(sessions)).items())
        print(
            cpu_line("ScorerService" if rescorer else "consumer alone", done, python_s, database_s)
        )
    finally:
        stop.set()
        await stop_within(task, STOP_S)
        await producer.stop()
    if first_at is None:
        return finished - started, 0, 0.0, finished - started
    return first_at - started, done - first_done, finished - first_at, finished - started


async def consume_into_fresh_db(
    bus: KafkaBus, want: int, max_s: float, *, rescorer: bool
) -> tuple[float, int, float, float]:
    url = await create_database("tend_bench")
    try:
        await upgrade_async(url)
        engine = create_engine(url)
        try:
            sessions = create_sessionmaker(engine)
            result = await scorer_consume(bus, sessions, want, max_s, rescorer=rescorer)
            async with sessions() as session:
                events, accounts = (
                    await session.execute(
                        text(
                            "SELECT (SELECT sum(events) FROM account_days), "
                            "(SELECT count(*) FROM accounts)"
                        )
                    )
                ).one()
            print(f"  check: account_days.events sum {events}, accounts {accounts}")
            return result
        finally:
            await engine.dispose()
    finally:
        await drop_database(url)


async def bench_consume(args: argparse.Namespace, mix: str) -> None:
    """Phase (a) for one mix, on a broker of its own (one events topic per mix)."""
    print(
        f"(a) consume, {mix} mix: {args.events} events over {args.accounts} accounts, "
        f"{PARTITIONS} partitions; load average {load_average()}"
    )
    broker = TansuBroker()
    broker.start()
    kafka = KafkaSettings(
        partitions=PARTITIONS, session_timeout_ms=6000, heartbeat_interval_ms=1000
    )
    bus = KafkaBus(broker.bootstrap, kafka)
    try:
        ends = await publish_events(bus, mix, args.events, args.accounts, date.today())
        memory("after publishing")
        want = sum(ends.values())
        raw_n, raw_s = await raw_consume(
            broker.bootstrap, topics.EVENTS, ends, want, args.max_seconds
        )
        print(rate_line("raw aiokafka consumer (no group, no work)", raw_n, raw_s))
        dec_n, dec_s = await raw_consume(
            broker.bootstrap,
            topics.EVENTS,
            ends,
            want,
            args.max_seconds,
            decode=CanonicalEvent.from_bytes,
        )
        print(rate_line("  ... and parsing each CanonicalEvent", dec_n, dec_s))
        fast_n, fast_s = await raw_consume(
            broker.bootstrap, topics.EVENTS, ends, want, args.max_seconds, decode=decode_event
        )
        print(rate_line("  ... and decode_event (msgspec, the scorer)", fast_n, fast_s))
        join_s, n, s, total_s = await consume_into_fresh_db(
            bus, want, args.max_seconds, rescorer=True
        )
        print(f"  scorer: joined the group and committed a first batch in {join_s:.2f} s")
        print(rate_line("ScorerService to committed rollups", n, s))
        print(rate_line("  ... including the group join", want, total_s))
        raw_rate = raw_n / raw_s if raw_s else 0.0
        scorer_rate = n / s if s else 0.0
        ratio = scorer_rate / raw_rate if raw_rate else 0.0
        target = TARGETS[mix]
        verdict = "meets" if ratio >= target else "MISSES"
        print(f"  ratio scorer/raw, {mix} mix: {ratio:.3f} ({verdict} the target of {target})")
        memory("after consuming")
        if not args.skip_consumer_only:
            _, n2, s2, _ = await consume_into_fresh_db(bus, want, args.max_seconds, rescorer=False)
            print(rate_line("its consumer alone (re-scorer off)", n2, s2))
            ratio2 = (n2 / s2) / raw_rate if s2 and raw_rate else 0.0
            print(f"  ratio consumer alone/raw: {ratio2:.3f}")
        print(f"  load average {load_average()}")
    finally:
        await bus.close()
        broker.stop()


# -- (d) memory under a steady load ---------------------------------------------------------


async def bench_soak(args: argparse.Namespace) -> None:
    """ScorerService (re-scorer on) under ``--soak-rate`` typical events a second for
    ``--soak-seconds``, the process's current RSS printed every :data:`SOAK_SAMPLE_S`."""
    print(
        f"(d) memory: {args.soak_rate} typical events/s for {args.soak_seconds} s; "
        f"load average {load_average()}"
    )
    broker = TansuBroker()
    broker.start()
    bus = KafkaBus(broker.bootstrap, KafkaSettings(partitions=PARTITIONS))
    url = await create_database("tend_bench_soak")
    try:
        await upgrade_async(url)
        engine = create_engine(url)
        sessions = create_sessionmaker(engine)
        producer = bus.producer()
        await producer.start()
        await producer.ensure_topics([TopicSpec(t, PARTITIONS) for t in topics.ALL])
        group_id = f"{GROUP_ID}-soak"
        watch = MemoryWatch(trace=args.tracemalloc, frames=args.tracemalloc_frames)
        watch.start()
        mark_at = min(args.tracemalloc_from, args.soak_seconds / 2)
        service = ScorerService(bus, sessions, producer, CONFIG, SystemClock(), group_id=group_id)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        stream = typical_events(10**12, args.accounts, date.today(), seed=7)
        samples: list[float] = []
        sent = 0
        started = time.perf_counter()
        next_sample = next_trim = started
        try:
            while (now := time.perf_counter()) - started < args.soak_seconds:
                if task.done():
                    raise RuntimeError(f"the scorer stopped: {task.exception()!r}")
                # At most a chunk a turn, so the samples stay on time when it falls behind.
                due = min(int((now - started) * args.soak_rate) - sent, PUBLISH_CHUNK)
                if due > 0:
                    chunk = [
                        Message(value=e.to_bytes(), key=(e.account_id or "").encode())
                        for e in itertools.islice(stream, due)
                    ]
                    await producer.publish(topics.EVENTS, chunk, timeout_s=120)
                    sent += len(chunk)
                if args.malloc_trim_every and now >= next_trim:
                    malloc_trim()  # what the process would hold if it gave glibc's free back
                    next_trim += args.malloc_trim_every
                if now >= next_sample:
                    samples.append(current_rss_mb())
                    committed = await stored_total(sessions, group_id)
                    print(
                        f"  {now - started:>6.0f} s  sent {sent:>9}  committed {committed:>9}  "
                        f"RSS {samples[-1]:>7.1f} MB  load {load_average()}"
                    )
                    if args.memory_details:
                        print(f"{'':10}{watch.sample()}")
                    if watch.trace and not watch.marked and now - started >= mark_at:
                        watch.mark(f"{now - started:.0f} s")
                    next_sample += SOAK_SAMPLE_S
                await asyncio.sleep(0.1)
            watch.report()
            if args.memory_details:
                watch.probe()
            watch.stop()
        finally:
            stop.set()
            await stop_within(task, STOP_S)
            await producer.stop()
            await engine.dispose()
        print(
            f"  RSS first {samples[0]:.1f} MB, last {samples[-1]:.1f} MB, "
            f"max {max(samples):.1f} MB over {len(samples)} samples"
        )
    finally:
        await bus.close()
        await drop_database(url)
        broker.stop()


# -- (b) re-score --------------------------------------------------------------------------

SEED_SQL = [
    # Accounts, created 120 days ago so they are scored on the health scorecard.
    """
    INSERT INTO accounts (account_id, name, plan, seats, mrr, created_at, traits, first_seen,
                          updated_at, dirty)
    SELECT 'r' || lpad(g::text, 6, '0'), 'Account ' || g, CASE WHEN g % 3 = 0 THEN 'pro'
           ELSE 'team' END, 5 + g % 40, 50.0 * (5 + g % 40), CAST(:start AS date) - 120, '{}'::json,
           CAST(:start AS date) - 120, now(), false
    FROM generate_series(1, :n) AS g
    """,
    # Users active on about 60% of the days, 1-3 events and sometimes a login each.
    """
    INSERT INTO user_days (account_id, user_id, day, events, logins)
    SELECT 'r' || lpad(g::text, 6, '0'), 'u' || u, CAST(:start AS date) + d, 1 + (g + u + d) % 3,
           CASE WHEN (g + d) % 2 = 0 THEN 1 ELSE 0 END
    FROM generate_series(1, :n) AS g, generate_series(1, :users) AS u,
         generate_series(0, :days - 1) AS d
    WHERE (g * 7 + u * 13 + d * 31) % 10 < 6
    """,
    """
    INSERT INTO account_days (account_id, day, events, logins, active_users)
    SELECT account_id, day, sum(events), sum(logins), count(*)
    FROM user_days WHERE account_id LIKE 'r%' GROUP BY account_id, day
    """,
    # Every other active user-day uses one key feature.
    """
    INSERT INTO feature_user_days (account_id, feature, user_id, day, uses)
    SELECT account_id, (ARRAY['reports', 'dashboards', 'exports'])[1 + (length(user_id)
           + extract(day FROM day)::int) % 3], user_id, day, 1 + events % 2
    FROM user_days WHERE account_id LIKE 'r%' AND extract(day FROM day)::int % 2 = 0
    """,
    """
    INSERT INTO feature_days (account_id, feature, day, uses, users)
    SELECT account_id, feature, day, sum(uses), count(*)
    FROM feature_user_days WHERE account_id LIKE 'r%' GROUP BY account_id, feature, day
    """,
]


async def seed(url: str, n: int, users: int, weeks: int, today: date) -> None:
    engine = create_engine(url)
    try:
        params = {
            "n": n,
            "users": users,
            "days": weeks * 7,
            "start": today - timedelta(days=weeks * 7 - 1),
        }
        async with engine.begin() as conn:
            for sql in SEED_SQL:
                used = {k: v for k, v in params.items() if f":{k}" in sql}
                await conn.execute(text(sql), used)
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
            rows = (
                await conn.execute(
                    text(
                        "SELECT (SELECT count(*) FROM user_days), (SELECT count(*) FROM "
                        "account_days), (SELECT count(*) FROM feature_user_days), "
                        "(SELECT count(*) FROM feature_days)"
                    )
                )
            ).one()
        print(
            f"  seeded {n} accounts: user_days {rows[0]}, account_days {rows[1]}, "
            f"feature_user_days {rows[2]}, feature_days {rows[3]}"
        )
    finally:
        await engine.dispose()


async def database_backends(engine: Any) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving ``engine``'s database (from
    /proc: the server must run on this machine; empty when it does not)."""
    async with engine.connect() as conn:
        pids = (
            await conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            )
        ).scalars()
        return {pid: cpu for pid in pids if (cpu := process_cpu(pid)) is not None}


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (None when it is not visible)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backends_cpu(after: dict[int, float], before: dict[int, float]) -> float | None:
    """CPU seconds the backends spent between two :func:`database_backends` (backends that
    exited in between are not counted: the sweep's pool keeps its connections)."""
    if not after:
        return None
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


async def timed_sweep(
    engine: Any, producer: Any, clock: FixedClock, today: date, overlap: bool
) -> None:
    """One more sweep of every account from no stored score, pipelined (``overlap``) or one
    chunk-day after the other, in this process on the same data: the steadier comparison on a
    shared machine (pairs run back to back see about the same load)."""
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE health_scores"))
        await conn.execute(
            text("UPDATE accounts SET score = NULL, band = NULL, scored_as_of = NULL")
        )
    rescorer = Rescorer(create_sessionmaker(engine), producer, CONFIG, clock, overlap=overlap)
    backends = await database_backends(engine)
    queued = run_delay()
    started, cpu = time.perf_counter(), time.process_time()
    scored = await rescorer.sweep(today)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    queued = run_delay() - queued
    pg_cpu = backends_cpu(await database_backends(engine), backends) or 0.0
    per = 1e3 / max(scored, 1)
    print(
        f"  {'pipelined' if overlap else 'one after the other'}: {scored} accounts in "
        f"{seconds:.1f} s ({scored / seconds:,.0f}/s); CPU an account {cpu * per:.3f} ms Python, "
        f"{pg_cpu * per:.3f} ms PostgreSQL; load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"    of the wall time: {queued:.1f} s waiting for a CPU (other processes' load), "
        f"{seconds - cpu - queued:.1f} s idle (awaiting PostgreSQL and the broker)"
    )


def run_delay() -> float:
    """Seconds this process's threads have waited for a CPU while runnable (schedstat), 0 where
    the kernel does not say."""
    total = 0.0
    with contextlib.suppress(OSError):
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/schedstat") as f:
                total += int(f.read().split()[1]) / 1e9
    return total


async def bench_rescore(args: argparse.Namespace, broker: TansuBroker) -> None:
    n = args.rescore_accounts
    print(f"(b) re-score: {n} accounts, {args.rescore_users} users, {args.rescore_weeks} weeks")
    today = date.today()
    url = await create_database("tend_bench_rescore")
    try:
        await upgrade_async(url)
        started = time.perf_counter()
        await seed(url, n, args.rescore_users, args.rescore_weeks, today)
        print(f"  seeding took {time.perf_counter() - started:.1f} s (not part of the target)")
        engine = create_engine(url)
        bus = KafkaBus(broker.bootstrap, KafkaSettings(partitions=PARTITIONS))
        producer = None
        try:
            if not args.no_publish:
                producer = bus.producer()
                await producer.start()
            clock = FixedClock(datetime.combine(today, dtime(23, 0), tzinfo=UTC))
            rescorer = Rescorer(create_sessionmaker(engine), producer, CONFIG, clock)
            if args.rescore_history:
                # The first sweep (no stored score): untimed for the target, its CPU printed
                # as the first sweep's figure (the one without --rescore-history).
                backends = await database_backends(engine)
                started, cpu = time.perf_counter(), time.process_time()
                first = await rescorer.sweep(today - timedelta(days=1))
                seconds = time.perf_counter() - started
                cpu = time.process_time() - cpu
                pg_cpu = backends_cpu(await database_backends(engine), backends)
                per = 1e3 / max(first, 1)
                print(
                    f"  scored yesterday first in {seconds:.1f} s (not part of the target): "
                    "every account has a previous score"
                )
                print(
                    f"    that first sweep's CPU an account: {cpu * per:.3f} ms Python"
                    + ("" if pg_cpu is None else f", {pg_cpu * per:.3f} ms PostgreSQL")
                    + f"; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
                )
            memory("before the sweep")
            backends = await database_backends(engine)
            started, cpu = time.perf_counter(), time.process_time()
            scored = await asyncio.wait_for(rescorer.sweep(today), args.max_seconds)
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu
            pg_cpu = backends_cpu(await database_backends(engine), backends)
            where = "published to tend.scores.v1" if producer else "not published"
            verdict = "meets" if seconds < RESCORE_TARGET_S else "MISSES"
            print(
                f"  Rescorer.sweep scored {scored} accounts in {seconds:.1f} s "
                f"({scored / seconds:,.0f}/s, {where}; {verdict} the target of "
                f"< {RESCORE_TARGET_S:.0f} s for 100,000)"
            )
            print(
                f"  this process's CPU: {cpu:.1f} s ({cpu / max(scored, 1) * 1e3:.3f} ms an "
                f"account); load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
            )
            if pg_cpu is not None:
                per = 1e3 / max(scored, 1)
                print(
                    f"  PostgreSQL backends' CPU: {pg_cpu:.1f} s ({pg_cpu * per:.3f} ms an "
                    f"account); both together {(cpu + pg_cpu) * per:.3f} ms an account"
                )
            memory("after the sweep")
            async with engine.connect() as conn:
                bands = (
                    await conn.execute(
                        text("SELECT band, count(*) FROM accounts GROUP BY band ORDER BY band")
                    )
                ).all()
            print(f"  bands: {dict((b, c) for b, c in bands)}")
            for _ in range(args.rescore_pairs):
                for overlap in (False, True):
                    await timed_sweep(engine, producer, clock, today, overlap)
        finally:
            await bus.close()
            await engine.dispose()
    finally:
        await drop_database(url)


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    memory("at start")
    if not args.skip_consume:
        for mix in MIXES if args.mix == "both" else [args.mix]:
            await bench_consume(args, mix)
    if args.soak_seconds:
        await bench_soak(args)
    if not args.skip_rescore:
        broker = TansuBroker()
        broker.start()
        try:
            await bench_rescore(args, broker)
        finally:
            broker.stop()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument(
        "--mix",
        choices=[*MIXES, "both"],
        default="worst",
        help="Events of phase (a): worst (a user-day per event), typical (10-50 events per "
        "user-day over 4-8 features), or both, one after the other.",
    )
    p.add_argument("--accounts", type=int, default=2_000)
    p.add_argument("--rescore-accounts", type=int, default=100_000)
    p.add_argument("--rescore-users", type=int, default=3)
    p.add_argument("--rescore-weeks", type=int, default=3)
    p.add_argument(
        "--rescore-pairs",
        type=int,
        default=0,
        help="After (b), this many more pairs of sweeps on the same data from no stored score: "
        "one chunk-day after the other, then pipelined (Rescorer overlap off, on).",
    )
    p.add_argument(
        "--rescore-history",
        action="store_true",
        help="Score every account as of yesterday before the timed sweep, as an hourly sweep "
        "finds them (each has a previous score to say what moved against).",
    )
    p.add_argument("--no-publish", action="store_true", help="Sweep with producer=None.")
    p.add_argument("--skip-consume", action="store_true")
    p.add_argument("--skip-rescore", action="store_true")
    p.add_argument(
        "--skip-consumer-only", action="store_true", help="Skip the run without the re-scorer."
    )
    p.add_argument("--max-seconds", type=float, default=300.0, help="Bound of each phase.")
    p.add_argument(
        "--soak-seconds",
        type=float,
        default=0.0,
        help="Also run (d): the scorer under a steady load this long, printing its memory.",
    )
    p.add_argument("--soak-rate", type=int, default=2000, help="Events a second of (d).")
    p.add_argument(
        "--memory-details",
        action="store_true",
        help="(d) also prints, each sample, glibc's heap (in use, free), pymalloc's blocks, the "
        "objects the collector tracks and its counters, and at the end what a full collection "
        "and malloc_trim give back (bench/memwatch.py).",
    )
    p.add_argument(
        "--tracemalloc",
        action="store_true",
        help="(d) traces allocations (implies --memory-details; slower) and prints the "
        "allocation sites and object types that grew from --tracemalloc-from to the end.",
    )
    p.add_argument(
        "--tracemalloc-from",
        type=float,
        default=120.0,
        help="Seconds into (d) of the baseline snapshot (at most half the soak).",
    )
    p.add_argument("--tracemalloc-frames", type=int, default=8, help="Frames per allocation.")
    p.add_argument(
        "--malloc-trim-every",
        type=float,
        default=0.0,
        help="(d) calls glibc's malloc_trim this often (seconds; 0: never): an experiment, "
        "the RSS without glibc's free memory.",
    )
    args = p.parse_args()
    args.memory_details = args.memory_details or args.tracemalloc
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))

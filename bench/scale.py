"""Scorer scale-out: throughput with 1, 2 and 3 replicas (``tend scorer`` processes).

Run by hand (not in CI), from the repository root:

    .venv/bin/python bench/scale.py [--events 60000] [--accounts 2000] [--replicas 1 2 3]
        [--max-seconds 180]

It starts its own tansu broker, publishes ``--events`` canonical events (bench/scorer.py's
generator) to ``tend.events.v1`` with 6 partitions, reads them with a plain aiokafka consumer
(the raw baseline, same run), then for each replica count migrates a fresh PostgreSQL database
and starts that many ``python -m services scorer`` processes in one consumer group (re-scorer
on). It prints, per count: records committed per second from the first committed batch until
the offsets stored in the database reach the end, the ratio against the raw consume, and the
CPU seconds the scorer processes spent per 1,000 events (user + system, from /proc), which is
the per-replica cost docs/operations.md ("Scaling out") argues from, how long after the first
commit every account was scored (re-scoring holds while the backlog drains, then scores each
account once), and how many scores the
replicas published on ``tend.scores.v1`` (each account-day once when no two replicas score
the same account). The load average is
printed with the results: on a shared 2-core machine, 2 and 3 replicas share the same cores
(and PostgreSQL's), so they measure coordination overhead, not scaling.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer  # noqa: E402
from aiokafka.structs import TopicPartition as KafkaTP  # noqa: E402
from sqlalchemy import func, or_, select  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402

from bench.scorer import (  # noqa: E402
    KEY_FEATURES,
    PARTITIONS,
    publish_events,
    rate_line,
    stored_total,
)
from services.scorer.consumer import GROUP_ID  # noqa: E402
from shared import topics  # noqa: E402
from shared.bus.kafka import KafkaBus  # noqa: E402
from shared.db.migrate import upgrade_async  # noqa: E402
from shared.db.models import Account  # noqa: E402
from shared.db.session import create_engine, create_sessionmaker  # noqa: E402
from shared.settings import KafkaSettings  # noqa: E402
from tests.support.broker import TansuBroker  # noqa: E402
from tests.support.postgres import create_database, drop_database  # noqa: E402
from tests.support.process import ServiceProcess  # noqa: E402
from tests.support.raw_kafka import raw_consume  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def scores_on_topic(bootstrap: str) -> int:
    """Records on tend.scores.v1 so far (every score any replica published)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [KafkaTP(topics.SCORES, p) for p in consumer.partitions_for_topic(topics.SCORES)]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def unscored(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Accounts whose score is not current yet (dirty, or never scored)."""
    async with sessions() as session:
        n = await session.scalar(
            select(func.count())
            .select_from(Account)
            .where(or_(Account.dirty.is_(True), Account.scored_as_of.is_(None)))
        )
        return int(n or 0)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def run_replicas(
    bootstrap: str, count: int, want: int, max_s: float, tmp: Path
) -> tuple[int, float, float, float, float]:
    """``count`` scorer processes on a fresh database until the stored offsets reach ``want``
    and every account is scored. Returns (records after the first commit, seconds after it,
    seconds to the first commit, CPU seconds of the processes through the drain, seconds from
    the first commit until every account was scored)."""
    url = await create_database("tend_scale")
    engine = create_engine(url)
    procs: list[ServiceProcess] = []
    try:
        await upgrade_async(url)
        sessions = create_sessionmaker(engine)
        config = tmp / "tend.yaml"
        config.write_text(f"key_features: [{', '.join(KEY_FEATURES)}]\n")
        env = dict(
            TEND_KAFKA_BOOTSTRAP=bootstrap,
            TEND_DATABASE_URL=url,
            TEND_CONFIG=str(config),
            TEND_API_TOKEN="scale-bench-token-0123456789abcdefg",
            TEND_KAFKA__PARTITIONS=str(PARTITIONS),
            TEND_KAFKA__SESSION_TIMEOUT_MS="6000",
            TEND_KAFKA__HEARTBEAT_INTERVAL_MS="1000",
            TEND_LOG_LEVEL="WARNING",
        )
        for i in range(count):
            run_dir = tmp / f"r{count}-{i}"
            run_dir.mkdir()
            proc = ServiceProcess("scorer", env, run_dir)
            proc.start()
            procs.append(proc)
        started = time.perf_counter()
        first_at: float | None = None
        first_done = done = 0
        cpu_at_first = 0.0
        while done < want and time.perf_counter() - started < max_s:
            for p in procs:
                p.alive()
            done = await stored_total(sessions, GROUP_ID)
            if first_at is None and done > 0:
                first_at, first_done = time.perf_counter(), done
                cpu_at_first = sum(cpu_seconds(p.proc.pid) for p in procs if p.proc)
            await asyncio.sleep(0.05)
        finished = time.perf_counter()
        cpu = sum(cpu_seconds(p.proc.pid) for p in procs if p.proc) - cpu_at_first
        # The re-score held during the drain runs now, once per account.
        while await unscored(sessions) and time.perf_counter() - started < 2 * max_s:
            for p in procs:
                p.alive()
            await asyncio.sleep(0.1)
        scored = time.perf_counter()
        for p in procs:
            if p.proc is not None:
                p.proc.send_signal(signal.SIGTERM)
        for p in procs:
            if p.proc is not None:
                p.proc.wait(timeout=60)
        if first_at is None:
            return 0, 0.0, finished - started, cpu, scored - started
        return done - first_done, finished - first_at, first_at - started, cpu, scored - first_at
    finally:
        for p in procs:
            p.cleanup()
        await engine.dispose()
        await drop_database(url)


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    print(f"load average at start: {loadavg()} ({os.cpu_count()} cores)")
    broker = TansuBroker()
    broker.start()
    kafka = KafkaSettings(
        partitions=PARTITIONS, session_timeout_ms=6000, heartbeat_interval_ms=1000
    )
    bus = KafkaBus(broker.bootstrap, kafka)
    try:
        ends = await publish_events(bus, "worst", args.events, args.accounts, date.today())
        want = sum(ends.values())
        raw_n, raw_s = await raw_consume(
            broker.bootstrap, topics.EVENTS, ends, want, args.max_seconds
        )
        raw_rate = raw_n / raw_s if raw_s else 0.0
        print(rate_line("raw aiokafka consumer (no group, no work)", raw_n, raw_s))
        with tempfile.TemporaryDirectory() as tmp:
            for count in args.replicas:
                scores_before = await scores_on_topic(broker.bootstrap)
                n, s, join_s, cpu, scored_s = await run_replicas(
                    broker.bootstrap, count, want, args.max_seconds, Path(tmp)
                )
                published = await scores_on_topic(broker.bootstrap) - scores_before
                rate = n / s if s else 0.0
                ratio = rate / raw_rate if raw_rate else 0.0
                per_k = 1e6 * cpu / n if n else 0.0
                print(rate_line(f"{count} replica(s) to committed rollups", n, s))
                print(
                    f"    ratio to raw {ratio:.4f}; first commit after {join_s:.1f} s; "
                    f"scorer CPU {cpu:.1f} s = {per_k:.0f} ms per 1,000 events; "
                    f"every account scored {scored_s:.1f} s after the first commit; "
                    f"scores published {published} for {args.accounts} accounts; "
                    f"load average {loadavg()}"
                )
    finally:
        await bus.close()
        broker.stop()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=60_000)
    p.add_argument("--accounts", type=int, default=2_000)
    p.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--max-seconds", type=float, default=180.0, help="Bound of each phase.")
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))

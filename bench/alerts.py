"""Alerts latency (score snapshot on ``tend.scores.v1`` to Slack POST) and evaluation throughput.

Run by hand (not in CI), from the repository root:

    .venv/bin/python bench/alerts.py [--alerts 200] [--rate 20] [--snapshots 20000]
        [--max-seconds 120]

It starts its own tansu broker, a fresh PostgreSQL database (on TEND_TEST_PG_DSN, default the
server at 127.0.0.1:5432) and a loopback HTTP server standing in for Slack's webhooks
(``tests/support/servers.py``), and runs the real :class:`AlertsService` as ``tend alerts`` wires
it (``build_service``: batch consumer, one transaction for alerts, outbox and offsets, then the
dispatcher woken after the commit, Slack notifier) with the default batching of
``AlertsSettings`` (``TEND_ALERTS__*`` in the environment still applies). Only the dormant rule
is on, and nothing leaves 127.0.0.1.

(a) latency: ``--alerts`` accounts, each with its own webhook path on the loopback server, get a
    dormant snapshot (day 0: the rule holds once, nothing fires yet); then, one by one at
    ``--rate`` per second, the day-1 snapshot that fires it. Each latency runs from just before
    the publish (so the producer's acks=all round trip is included) until the server has read
    the POST. Prints the median, p99 and max. Target: p99 under 1 s.
(b) throughput: ``--snapshots`` snapshots are published while the service is stopped; it then
    starts again, resumes from the offsets stored in the database, and the rate is the
    snapshots committed per second from its first committed batch until the stored offsets
    reach the end (the group join is printed apart). Twice: healthy accounts (nothing fires),
    then day 0 and day 1 of half as many accounts (each opens an alert; no channel is routed,
    so nothing is sent).

Every phase stops at ``--max-seconds``; the figures are over what was done.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402

from services.alerts.app import build_service  # noqa: E402
from services.alerts.consumer import GROUP_ID, AlertsService  # noqa: E402
from shared import topics  # noqa: E402
from shared.bus import Message, Producer, TopicSpec  # noqa: E402
from shared.bus.kafka import KafkaBus  # noqa: E402
from shared.clock import SystemClock  # noqa: E402
from shared.config import TendConfig  # noqa: E402
from shared.db.migrate import upgrade_async  # noqa: E402
from shared.db.session import create_engine, create_sessionmaker  # noqa: E402
from shared.scores import ScoreMessage  # noqa: E402
from shared.settings import KafkaSettings, Settings  # noqa: E402
from tests.alerts.snapshots import create_snapshot, only_rules, recent_day  # noqa: E402
from tests.support.broker import TansuBroker  # noqa: E402
from tests.support.postgres import create_database, drop_database  # noqa: E402
from tests.support.raw_kafka import raw_consume  # noqa: E402
from tests.support.servers import SlackWebhookServer  # noqa: E402

PARTITIONS = 6
PUBLISH_CHUNK = 2000
HEALTHY_DAYS = 1  # days since the last login: the dormant rule does not hold

Sessions = async_sessionmaker[AsyncSession]


class Bench:
    """The broker, database and Slack stand-in shared by the phases, and the service's wiring."""

    def __init__(
        self,
        bus: KafkaBus,
        bootstrap: str,
        producer: Producer,
        sessions: Sessions,
        slack: SlackWebhookServer,
    ) -> None:
        self.bus = bus
        self.bootstrap = bootstrap
        self.producer = producer
        self.sessions = sessions
        self.slack = slack
        # No default webhook or email: only the accounts' own webhooks receive anything.
        self.settings = Settings(slack_webhook_url=None, smtp_host=None)
        self.config = TendConfig(rules=only_rules("dormant"))

    def service(self) -> AlertsService:
        return build_service(
            self.settings, self.config, self.bus, self.sessions, self.producer, SystemClock()
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[asyncio.Task[None]]:
        stop = asyncio.Event()
        task = asyncio.create_task(self.service().run(stop), name="alerts")
        try:
            yield task
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)

    async def publish(self, snapshots: Sequence[ScoreMessage]) -> None:
        for i in range(0, len(snapshots), PUBLISH_CHUNK):
            chunk = snapshots[i : i + PUBLISH_CHUNK]
            messages = [Message(s.to_bytes(), key=s.account_id.encode()) for s in chunk]
            await self.producer.publish(topics.SCORES, messages, timeout_s=60)

    async def consumed(self) -> int:
        """Score records committed by the alerts group (the topic started empty)."""
        async with self.sessions() as session:
            value = await session.scalar(
                text(
                    "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets "
                    "WHERE group_id = :g AND topic = :t"
                ),
                {"g": GROUP_ID, "t": topics.SCORES},
            )
            return int(value or 0)

    async def wait_consumed(self, task: asyncio.Task[None], want: int, max_s: float) -> int:
        deadline = time.monotonic() + max_s
        done = await self.consumed()
        while done < want and time.monotonic() < deadline:
            if task.done():
                raise RuntimeError(f"the alerts service stopped: {task.exception()!r}")
            await asyncio.sleep(0.05)
            done = await self.consumed()
        return done


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# -- (a) latency ----------------------------------------------------------------------------


async def bench_latency(bench: Bench, n: int, rate: float, max_s: float) -> None:
    print(f"(a) latency: {n} alerts, one firing snapshot every {1000 / rate:.0f} ms")
    accounts = [f"lat-{i:05d}" for i in range(n)]
    paths = {a: f"/hook/{a}" for a in accounts}

    def snapshot(account: str, day: int) -> ScoreMessage:
        hook = bench.slack.url(paths[account])
        # Recent days: the service runs on the wall clock and notifies recent final days only.
        return create_snapshot(account, recent_day() + day, csm_email=None, csm_slack=hook)

    base = await bench.consumed()
    async with bench.running() as task:
        await bench.publish([snapshot(a, 0) for a in accounts])
        started = time.monotonic()
        done = await bench.wait_consumed(task, base + n, max_s)
        join_s = time.monotonic() - started
        print(f"  day 0 (nothing fires) consumed in {join_s:.1f} s, group join included")
        if done < base + n:
            print(f"  stopped at --max-seconds with {done - base} of {n} day-0 snapshots")
            return

        sent: dict[str, float] = {}
        deadline = time.monotonic() + max_s
        for account in accounts:
            if time.monotonic() >= deadline:
                break
            message = snapshot(account, 1)
            sent[paths[account]] = time.monotonic()
            await bench.producer.publish(
                topics.SCORES, [Message(message.to_bytes(), key=account.encode())]
            )
            await asyncio.sleep(1 / rate)
        # The loopback server runs in its own thread: poll what it recorded.
        while len(bench.slack.requests) < len(sent) and time.monotonic() < deadline + 5:
            if task.done():
                raise RuntimeError(f"the alerts service stopped: {task.exception()!r}")
            await asyncio.sleep(0.05)

    received = {r.path: r.received_at for r in list(bench.slack.requests)}
    latencies = sorted(received[p] - t for p, t in sent.items() if p in received)
    if not latencies:
        print("  no Slack POST arrived")
        return
    p99 = percentile(latencies, 0.99)
    verdict = "meets" if p99 < 1.0 else "MISSES"
    print(
        f"  score -> Slack POST over {len(latencies)} of {len(sent)} alerts: "
        f"median {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms ({verdict} the target of p99 < 1 s)"
    )


# -- (b) throughput -------------------------------------------------------------------------


async def evaluate_rate(
    bench: Bench, label: str, snapshots: Sequence[ScoreMessage], max_s: float
) -> None:
    base = await bench.consumed()
    await bench.publish(snapshots)
    want = base + len(snapshots)
    started = time.monotonic()
    async with bench.running() as task:
        first = await bench.wait_consumed(task, base + 1, max_s)
        first_at = time.monotonic()
        done = await bench.wait_consumed(task, want, max(0.0, max_s - (first_at - started)))
        finished = time.monotonic()
    n, seconds = done - first, finished - first_at
    per_s = n / seconds if seconds > 0 else 0.0
    print(f"  {label}: joined and committed a first batch in {first_at - started:.2f} s")
    print(f"  {label}: {n:>8} snapshots {seconds:>7.2f} s {per_s:>10,.0f}/s")
    if done < want:
        print(f"  {label}: stopped at --max-seconds with {done - base} of {len(snapshots)}")
    # The raw baseline, on the same records in the same run: every record of the topic so far
    # (the topic started empty), read and decoded by a plain consumer.
    raw_n, raw_s = await raw_consume(
        bench.bootstrap,
        topics.SCORES,
        range(PARTITIONS),
        want,
        max_s,
        decode=ScoreMessage.from_bytes,
    )
    raw_rate = raw_n / raw_s if raw_s > 0 else 0.0
    print(
        f"  raw aiokafka consumer + decode: {raw_n:>8} records {raw_s:>7.2f} s {raw_rate:>10,.0f}/s"
    )
    ratio = per_s / raw_rate if raw_rate else 0.0
    print(f"  ratio alerts/raw ({label}): {ratio:.3f}")


async def bench_throughput(bench: Bench, n: int, max_s: float) -> None:
    print(f"(b) throughput: {n} snapshots per run, {PARTITIONS} partitions")
    healthy = [create_snapshot(f"ok-{i:06d}", 0, dormant_days=HEALTHY_DAYS) for i in range(n)]
    await evaluate_rate(bench, "healthy (nothing fires)", healthy, max_s)
    firing = [
        create_snapshot(f"fire-{i:06d}", recent_day() + day, csm_email=None)
        for day in (0, 1)
        for i in range(n // 2)
    ]
    # No channel on purpose (only evaluation is timed): mute the warning each such alert logs.
    consumer_log = logging.getLogger("services.alerts.consumer")
    level = consumer_log.level
    consumer_log.setLevel(logging.ERROR)
    try:
        await evaluate_rate(bench, "firing (day 0, day 1)", firing, max_s)
    finally:
        consumer_log.setLevel(level)
    async with bench.sessions() as session:
        opened = await session.scalar(
            text("SELECT count(*) FROM alerts WHERE account_id LIKE 'fire-%'")
        )
    print(f"  check: {opened} alerts opened for {n // 2} firing accounts")


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    broker = TansuBroker()
    broker.start()
    slack = SlackWebhookServer().start()
    url = await create_database("tend_bench_alerts")
    # A short session timeout: each throughput run rejoins the group the previous run left.
    kafka = KafkaSettings(
        partitions=PARTITIONS, session_timeout_ms=6000, heartbeat_interval_ms=1000
    )
    bus = KafkaBus(broker.bootstrap, kafka)
    engine = create_engine(url)
    producer = bus.producer()
    try:
        await upgrade_async(url)
        await producer.start()
        await producer.ensure_topics([TopicSpec(t, PARTITIONS) for t in topics.ALL])
        bench = Bench(bus, broker.bootstrap, producer, create_sessionmaker(engine), slack)
        if not args.skip_latency:
            await bench_latency(bench, args.alerts, args.rate, args.max_seconds)
        if not args.skip_throughput:
            await bench_throughput(bench, args.snapshots, args.max_seconds)
    finally:
        await producer.stop()
        await bus.close()
        await engine.dispose()
        await drop_database(url)
        slack.stop()
        broker.stop()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--alerts", type=int, default=200, help="Alerts fired in the latency phase.")
    p.add_argument("--rate", type=float, default=20.0, help="Firing snapshots per second.")
    p.add_argument("--snapshots", type=int, default=20_000, help="Snapshots per throughput run.")
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--max-seconds", type=float, default=120.0, help="Bound of each phase.")
    args = p.parse_args()
    if args.alerts < 1 or args.snapshots < 2 or args.rate <= 0:
        p.error("--alerts must be at least 1, --snapshots at least 2 and --rate positive")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))

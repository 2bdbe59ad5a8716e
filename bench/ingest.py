"""Ingest throughput: events/s through the HTTP API versus a raw aiokafka producer.

Run by hand (not in CI), from the repository root:

    .venv/bin/python bench/ingest.py [--batches 400] [--concurrency 8] [--max-seconds 60]
                                     [--rounds 3] [--soak-seconds 60]

It starts its own tansu broker and a throwaway SQLite database (or a fresh PostgreSQL database
with ``--postgres``), serves the ingest app under uvicorn (one worker) in a subprocess, sends
records with a plain aiokafka producer awaiting each send (``send_and_wait``, the naive way),
then ``--rounds`` times: posts ``--batches`` batches of 100 events with httpx, and sends the
same number of records with the raw producer pipelined (``send()`` per event, then wait for
all), against the same broker. Every phase stops at ``--max-seconds``; the rates are over what
was done. Prints all rates, each round's ratio and their median, and the CPU per event of the
ingest server and of the raw producer.
Then a bounded soak: the same batches again and again for ``--soak-seconds`` (0: none), with
the server's resident memory (RSS) sampled every second; prints the first, highest and last
sample (flat means no growth with the number of events served).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
for _path in (ROOT, SCRIPT.parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import httpx  # noqa: E402
import msgspec  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from loadgen import encode_post, post_all  # noqa: E402

from shared import topics  # noqa: E402
from shared.events import CanonicalEvent  # noqa: E402
from tests.support.broker import TansuBroker, free_port, wait_for_port  # noqa: E402

BATCH_SIZE = 100
ACCOUNTS = 200


@dataclass
class Rate:
    label: str
    events: int
    seconds: float
    cpu_seconds: float = 0.0
    """CPU of this process meanwhile (raw phases)."""

    @property
    def per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.label:<50} {self.events:>8} events {self.seconds:>7.2f} s "
            f"{self.per_s:>10,.0f}/s"
        )


def segment_call(i: int) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": f"user-{i % 5000}",
        "event": "Report Exported" if i % 7 else "Signed In",
        "messageId": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "context": {"groupId": f"account-{i % ACCOUNTS}", "library": {"name": "bench"}},
        "properties": {"format": "csv", "rows": i % 1000, "feature": "reports"},
    }


def canonical_record(i: int) -> tuple[bytes, bytes]:
    """A record like the ones ingest produces (same size and key spread)."""
    now = datetime.now(UTC)
    event = CanonicalEvent(
        event_id=str(uuid.uuid4()),
        type="track",
        account_id=f"account-{i % ACCOUNTS}",
        user_id=f"user-{i % 5000}",
        name="Report Exported",
        feature="reports",
        occurred_at=now,
        received_at=now,
        properties={"format": "csv", "rows": i % 1000, "feature": "reports"},
        write_key_id=1,
    )
    return event.account_id.encode() if event.account_id else b"", event.to_bytes()


# -- the server subprocess ----------------------------------------------------------------------


def serve(port: int) -> None:
    """``--serve``: the ingest app under uvicorn, configured from ``TEND_*``."""
    import uvicorn

    from services.ingest.app import create_app
    from shared.settings import Settings

    uvicorn.run(
        create_app(Settings()),
        host="127.0.0.1",
        port=port,
        workers=1,
        log_level="warning",
        access_log=False,
    )


async def prepare_database(use_postgres: bool, tmp: Path) -> tuple[str, str, Any]:
    """(database URL, write key, cleanup coroutine function)."""
    from shared.db.keys import create_key
    from shared.db.migrate import upgrade_async
    from shared.db.session import create_engine, create_sessionmaker, transaction

    cleanup: Any = None
    if use_postgres:
        from tests.support.postgres import create_database, drop_database

        url = await create_database("tend_bench")

        async def cleanup() -> None:
            await drop_database(url)
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    await upgrade_async(url)
    engine = create_engine(url)
    async with transaction(create_sessionmaker(engine)) as session:
        _, key = await create_key(session, "bench")
    await engine.dispose()
    return url, key, cleanup


def start_server(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(SCRIPT), "--serve", str(port)], env=env, cwd=ROOT)


async def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("the ingest server exited during start-up")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the ingest server did not become ready")


# -- phases -------------------------------------------------------------------------------------


def batch_bodies(batches: int) -> tuple[list[bytes], list[list[str]]]:
    """``batches`` bodies of BATCH_SIZE distinct calls each, and each body's messageIds."""
    bodies: list[bytes] = []
    ids: list[list[str]] = []
    for b in range(batches):
        calls = [segment_call(b * BATCH_SIZE + i) for i in range(BATCH_SIZE)]
        bodies.append(json.dumps({"batch": calls}).encode())
        ids.append([c["messageId"] for c in calls])
    return bodies, ids


async def http_phase(
    url: str,
    key: str,
    batches: int,
    concurrency: int,
    max_seconds: float,
    *,
    client: str,
    posted: set[str],
) -> tuple[Rate, dict[int, int], float]:
    """Posts the batches; adds the messageIds of every batch answered 200 to ``posted``.
    Returns the rate, the answers' statuses and this process's CPU seconds (the load
    generator's) meanwhile."""
    bodies, ids = batch_bodies(batches)
    headers = {"Content-Type": "application/json", "X-Write-Key": key}
    host, port = httpx.URL(url).host, httpx.URL(url).port or 80
    if client == "lean":
        requests = [encode_post(host, port, "/v1/batch", body, headers) for body in bodies]
        # Warm-up: connections, caches, topic metadata.
        warm = await post_all(
            host, port, requests[:5], concurrency=1, deadline=time.perf_counter() + 60
        )
        if set(warm.statuses) != {200}:
            raise RuntimeError(f"warm-up answers {dict(warm.statuses)}: {warm.refusals}")
        cpu = time.process_time()
        started = time.perf_counter()
        tally = await post_all(
            host, port, requests, concurrency=concurrency, deadline=started + max_seconds
        )
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        for i in tally.ok:
            posted.update(ids[i])
        label = f"HTTP /v1/batch x{BATCH_SIZE}, {concurrency} concurrent"
        return Rate(label, tally.accepted, elapsed), dict(tally.statuses), cpu
    statuses: dict[int, int] = {}
    accepted = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(bodies)):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        for body in bodies[: min(5, len(bodies))]:
            (await http.post("/v1/batch", content=body, headers=headers)).raise_for_status()
        cpu = time.process_time()
        started = time.perf_counter()
        deadline = started + max_seconds

        async def worker() -> None:
            nonlocal accepted
            while not queue.empty() and time.perf_counter() < deadline:
                i = queue.get_nowait()
                r = await http.post("/v1/batch", content=bodies[i], headers=headers)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    accepted += r.json()["accepted"]
                    posted.update(ids[i])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    label = f"HTTP /v1/batch x{BATCH_SIZE}, {concurrency} concurrent, httpx"
    return Rate(label, accepted, elapsed), statuses, cpu


class _EventId(msgspec.Struct):
    event_id: str


async def missing_on_topic(bootstrap: str, expected: set[str], timeout_s: float) -> int:
    """Reads ``tend.events`` from the start until every id of ``expected`` was seen (or
    ``timeout_s`` passed); returns how many were not seen."""
    decoder = msgspec.json.Decoder(_EventId)
    missing = set(expected)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [
            TopicPartition(topics.EVENTS, p)
            for p in consumer.partitions_for_topic(topics.EVENTS) or ()
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + timeout_s
        while missing and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                for r in records:
                    missing.discard(decoder.decode(r.value).event_id)
    finally:
        await consumer.stop()
    return len(missing)


def user_system_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU of a process (all its threads) so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def soak_phase(
    url: str, key: str, batches: int, concurrency: int, seconds: float, pid: int
) -> tuple[int, list[float], dict[int, int]]:
    """Posts ``batches`` distinct bodies round and round for ``seconds``; returns the events
    accepted, the server's RSS (MB) sampled once a second meanwhile and the answers' statuses."""
    bodies, _ = batch_bodies(batches)
    headers = {"Content-Type": "application/json", "X-Write-Key": key}
    host, port = httpx.URL(url).host, httpx.URL(url).port or 80
    requests = [encode_post(host, port, "/v1/batch", body, headers) for body in bodies]
    deadline = time.perf_counter() + seconds
    samples: list[float] = []

    async def sampler() -> None:
        while time.perf_counter() < deadline:
            samples.append(rss_mb(pid))
            await asyncio.sleep(1.0)

    _, tally = await asyncio.gather(
        sampler(),
        post_all(host, port, requests, concurrency=concurrency, deadline=deadline, repeat=True),
    )
    samples.append(rss_mb(pid))
    return tally.accepted, samples, dict(tally.statuses)


def raw_producer(bootstrap: str, linger_ms: int | None = None) -> AIOKafkaProducer:
    """Configured like tend's producer (acks=all, its linger and batch size)."""
    from shared.settings import KafkaSettings

    s = KafkaSettings()
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=s.linger_ms if linger_ms is None else linger_ms,
        max_batch_size=s.max_batch_bytes,
    )


async def raw_naive_phase(
    bootstrap: str, count: int, max_seconds: float, *, linger_ms: int | None = None
) -> Rate:
    records = [canonical_record(i) for i in range(count)]
    producer = raw_producer(bootstrap, linger_ms)
    await producer.start()
    try:
        await producer.send_and_wait(topics.EVENTS, records[0][1], key=records[0][0])
        started = time.perf_counter()
        deadline = started + max_seconds
        sent = 0
        for key, value in records:
            await producer.send_and_wait(topics.EVENTS, value, key=key)
            sent += 1
            if time.perf_counter() > deadline:
                break
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    label = "raw aiokafka send_and_wait per event"
    if linger_ms is not None:
        label += f", linger_ms={linger_ms}"
    return Rate(label, sent, elapsed)


async def raw_pipelined_phase(bootstrap: str, count: int, max_seconds: float) -> Rate:
    records = [canonical_record(i) for i in range(count)]
    producer = raw_producer(bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topics.EVENTS, records[0][1], key=records[0][0])
        cpu = time.process_time()
        started = time.perf_counter()
        deadline = started + max_seconds
        futures = []
        for key, value in records:
            futures.append(await producer.send(topics.EVENTS, value, key=key))
            if time.perf_counter() > deadline:
                break
        await asyncio.gather(*futures)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        await producer.stop()
    return Rate("raw aiokafka send() per event, pipelined", len(futures), elapsed, cpu)


# -- main ---------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    broker = TansuBroker()
    broker.start()
    tmp = Path(tempfile.mkdtemp(prefix="tend-bench-"))
    proc: subprocess.Popen[bytes] | None = None
    cleanup = None
    try:
        db_url, key, cleanup = await prepare_database(args.postgres, tmp)
        port = free_port()
        env = {
            **os.environ,
            "TEND_DATABASE_URL": db_url,
            "TEND_KAFKA_BOOTSTRAP": broker.bootstrap,
            "TEND_LOG_LEVEL": "WARNING",
        }
        proc = start_server(port, env)
        wait_for_port("127.0.0.1", port, timeout_s=60)
        url = f"http://127.0.0.1:{port}"
        await wait_ready(url, proc)

        events = args.batches * BATCH_SIZE
        load = os.getloadavg()
        print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        print(
            f"tend ingest bench: {args.batches} batches x {BATCH_SIZE} events, "
            f"concurrency {args.concurrency}, broker tansu at {broker.bootstrap}, "
            f"database {'PostgreSQL' if args.postgres else 'SQLite'}, "
            f"at most {args.max_seconds:g} s per phase",
            flush=True,
        )
        naive = await raw_naive_phase(
            broker.bootstrap, min(events, args.naive_events), args.max_seconds
        )
        print(naive.line(), flush=True)
        naive0 = await raw_naive_phase(
            broker.bootstrap, min(events, args.naive_events), args.max_seconds, linger_ms=0
        )
        print(naive0.line(), flush=True)
        # HTTP and raw phases alternate, so each ratio compares two phases run seconds apart
        # (on a shared machine the load changes between phases more than anything measured).
        ratios: list[float] = []
        statuses: dict[int, int] = {}
        posted: set[str] = set()
        http_events = http_user = http_system = raw_events = raw_cpu = 0.0
        client_cpu = broker_http = broker_raw = 0.0
        assert broker.proc is not None
        for round_no in range(1, args.rounds + 1):
            server_user, server_system = user_system_seconds(proc.pid)
            broker_before = sum(user_system_seconds(broker.proc.pid))
            http, round_statuses, http_client_cpu = await http_phase(
                url,
                key,
                args.batches,
                args.concurrency,
                args.max_seconds,
                client=args.client,
                posted=posted,
            )
            client_cpu += http_client_cpu
            broker_after = sum(user_system_seconds(broker.proc.pid))
            broker_http += broker_after - broker_before
            user, system = user_system_seconds(proc.pid)
            http_user += user - server_user
            http_system += system - server_system
            http_events += http.events
            for status, n in round_statuses.items():
                statuses[status] = statuses.get(status, 0) + n
            pipelined = await raw_pipelined_phase(broker.bootstrap, events, args.max_seconds)
            broker_raw += sum(user_system_seconds(broker.proc.pid)) - broker_after
            raw_cpu += pipelined.cpu_seconds
            raw_events += pipelined.events
            ratios.append(http.per_s / max(pipelined.per_s, 1e-9))
            print(f"round {round_no}:", http.line(), f"  statuses {round_statuses}")
            print(f"round {round_no}:", pipelined.line())
            print(f"round {round_no}: ratio HTTP / raw pipelined send(): {ratios[-1]:.2f}")
            if round_no == 1:
                print(f"ratio HTTP / raw send_and_wait: {http.per_s / max(naive.per_s, 1e-9):.2f}")
                print(
                    "ratio HTTP / raw send_and_wait, linger_ms=0: "
                    f"{http.per_s / max(naive0.per_s, 1e-9):.2f}"
                )
        print(
            f"ratio HTTP / raw pipelined send(), median of {len(ratios)} rounds: "
            f"{statistics.median(ratios):.2f} (target 0.75; rounds "
            f"{', '.join(f'{r:.2f}' for r in ratios)})"
        )
        # CPU per event depends much less on what else the machine runs than rates do.
        http_us = (http_user + http_system) / max(http_events, 1) * 1e6
        system_us = http_system / max(http_events, 1) * 1e6
        raw_us = raw_cpu / max(raw_events, 1) * 1e6
        print(
            f"CPU per event: ingest server {http_us:.1f} µs (of which system {system_us:.1f}), "
            f"raw producer {raw_us:.1f} µs (ratio raw / ingest {raw_us / max(http_us, 1e-9):.2f})",
            flush=True,
        )
        # The load generator and the broker share the cores with the server in the HTTP phase.
        print(
            f"CPU per event in the HTTP phases: load generator ({args.client}) "
            f"{client_cpu / max(http_events, 1) * 1e6:.1f} µs, broker "
            f"{broker_http / max(http_events, 1) * 1e6:.1f} µs; in the raw phases: broker "
            f"{broker_raw / max(raw_events, 1) * 1e6:.1f} µs",
            flush=True,
        )
        missing = await missing_on_topic(broker.bootstrap, posted, timeout_s=120)
        print(
            f"on the topic: {len(posted) - missing} of the {len(posted)} events answered 200"
            + (f", {missing} MISSING" if missing else ""),
            flush=True,
        )
        if args.soak_seconds > 0:
            accepted, rss, soak_statuses = await soak_phase(
                url, key, args.batches, args.concurrency, args.soak_seconds, proc.pid
            )
            for status, n in soak_statuses.items():
                statuses[status] = statuses.get(status, 0) + n
            print(
                f"soak {args.soak_seconds:g} s, {accepted} events: server RSS first "
                f"{rss[0]:.1f} MB, highest {max(rss):.1f} MB, last {rss[-1]:.1f} MB "
                f"({rss[-1] - rss[0]:+.1f} MB), statuses {soak_statuses}"
            )
        load = os.getloadavg()
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        return 0 if set(statuses) == {200} and not missing else 1
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        broker.stop()
        if cleanup is not None:
            await cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=400, help="batches of 100 events")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="cap of each phase")
    parser.add_argument(
        "--naive-events", type=int, default=3_000, help="cap of each send_and_wait phase"
    )
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL, not SQLite")
    parser.add_argument(
        "--rounds", type=int, default=3, help="HTTP and raw phases, alternating, this many times"
    )
    parser.add_argument(
        "--soak-seconds", type=float, default=60.0, help="memory soak after the rates (0: none)"
    )
    parser.add_argument(
        "--client",
        choices=("lean", "httpx"),
        default="lean",
        help="load generator: bench/loadgen.py (default) or httpx (the earlier one)",
    )
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())

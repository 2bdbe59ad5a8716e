"""``tend up`` end to end: events/s from HTTP to committed rollups, and the bus's disk use.

Run by hand (not in CI), from the repository root:

    .venv/bin/python bench/embedded.py [--batches 300] [--concurrency 8] [--max-seconds 120]
                                       [--profile profile.txt]

It migrates a throwaway SQLite database, creates a write key, starts ``tend up`` on it in a
subprocess, posts ``--batches`` batches of 100 Segment ``track`` calls and waits
until the scorer's stored offsets (``consumer_offsets``, written in the same transaction as the
rollups) cover every event. The rate is events over the time from the first request to that
point. As the raw baseline, in the same run, the same number of records of the same size go
into a plain SQLite table with ``sqlite3`` ``executemany`` (the floor cost of a durable log on
this disk), and the ratio is printed. ``--profile FILE`` records the ``tend up`` process with
py-spy meanwhile (``--format raw --threads``: collapsed stacks, one a line, each starting
with its thread, for flame graphs and grep; ``--profile-rate`` samples a second, 50 unless told).

The requests are encoded before the clock starts and sent by ``bench/loadgen.py`` (keep-alive
connections, every answer's status checked, ``accepted`` read from each 200), as
``bench/ingest.py`` sends them: httpx, building each body's JSON as it went, spent CPU on the
same 2 cores as ``tend up`` (``--client httpx`` keeps it, for comparison with earlier runs).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from loadgen import encode_post  # noqa: E402
from loadgen import post_all as post_lean  # noqa: E402

from shared import topics  # noqa: E402
from tests.support.broker import free_port, wait_for_port  # noqa: E402

BATCH_SIZE = 100
ACCOUNTS = 200
TOKEN = "bench-" + "x" * 40


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


async def prepare(path: Path) -> tuple[str, str]:
    """(database URL, write key) of a migrated SQLite file."""
    from shared.db.keys import create_key
    from shared.db.migrate import upgrade_async
    from shared.db.session import create_engine, create_sessionmaker, transaction

    url = f"sqlite+aiosqlite:///{path}"
    await upgrade_async(url)
    engine = create_engine(url)
    async with transaction(create_sessionmaker(engine)) as session:
        _, key = await create_key(session, "bench")
    await engine.dispose()
    return url, key


def committed(path: Path) -> int:
    """Events whose rollups are committed: the scorer's stored offsets on the events topic."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        row = db.execute(
            "SELECT COALESCE(SUM(next_offset), 0) FROM consumer_offsets "
            "WHERE topic = ? AND group_id = ?",
            (topics.EVENTS, "tend-scorer"),
        ).fetchone()
    return int(row[0])


def bus_rows(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        return int(db.execute("SELECT COUNT(*) FROM bus_records").fetchone()[0])


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU of a process (all its threads) so far, from /proc; with ``thread``,
    of that thread alone (the main thread's id is the process id)."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def disk_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 1e6


def batch_body(b: int) -> dict[str, Any]:
    return {"batch": [segment_call(b * BATCH_SIZE + i) for i in range(BATCH_SIZE)]}


def lean_requests(port: int, key: str, batches: int) -> list[bytes]:
    """Every request of the run, head and body, encoded before the clock starts."""
    auth = base64.b64encode(f"{key}:".encode()).decode()
    headers = {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}
    return [
        encode_post("127.0.0.1", port, "/v1/batch", json.dumps(batch_body(b)).encode(), headers)
        for b in range(batches)
    ]


async def send_lean(requests: list[bytes], port: int, concurrency: int, deadline: float) -> int:
    """Posts ``requests``; every answer must be a 200 (else the bench stops, saying why)."""
    tally = await post_lean("127.0.0.1", port, requests, concurrency=concurrency, deadline=deadline)
    if set(tally.statuses) - {200}:
        print(f"answers other than 200: {dict(tally.statuses)} {tally.refusals}", file=sys.stderr)
        sys.exit(1)
    return tally.accepted


async def post_all(url: str, key: str, batches: int, concurrency: int, deadline: float) -> int:
    sent = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for b in range(batches):
        queue.put_nowait(b)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent
        while time.perf_counter() < deadline:
            try:
                b = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            response = await client.post(f"{url}/v1/batch", json=batch_body(b), auth=(key, ""))
            response.raise_for_status()
            sent += BATCH_SIZE

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return sent


def raw_baseline(tmp: Path, events: int) -> float:
    """Seconds to append ``events`` records of ingest's size to SQLite in 100-record commits."""
    value = b"x" * 420
    db = sqlite3.connect(tmp / "raw.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE log (id INTEGER PRIMARY KEY, topic TEXT, partition INT, "
        '"offset" INT, key BLOB, value BLOB, UNIQUE (topic, partition, "offset"))'
    )
    started = time.perf_counter()
    for b in range(0, events, BATCH_SIZE):
        with db:
            db.executemany(
                'INSERT INTO log (topic, partition, "offset", key, value) VALUES (?, ?, ?, ?, ?)',
                [("t", i % 6, i, b"k", value) for i in range(b, b + BATCH_SIZE)],
            )
    # ... and read back once, as a consumer does.
    db.execute("SELECT value FROM log ORDER BY id").fetchall()
    seconds = time.perf_counter() - started
    db.close()
    return seconds


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A command of this venv (``tend``, ``py-spy``) in the background, its output dropped."""
    executable = str(Path(sys.executable).with_name(command[0]))
    return subprocess.Popen(
        [executable, *command[1:]], env=env, cwd=ROOT, stdout=subprocess.DEVNULL
    )


async def bus_alone(tmp: Path, events: int) -> float:
    """Seconds for the in-process bus alone to take ``events`` records of ingest's size in
    100-record publishes, and hand them to a consumer that commits every 1,000 (with pruning)."""
    from shared.bus import Message, TopicPartition
    from shared.bus.memory import InProcessBus
    from shared.db.migrate import upgrade_async
    from shared.db.session import create_engine, create_sessionmaker

    url = f"sqlite+aiosqlite:///{tmp / 'bus.db'}"
    await upgrade_async(url)
    engine = create_engine(url)
    bus = InProcessBus(create_sessionmaker(engine), 6)
    producer = bus.producer()
    await producer.start()
    consumer = bus.consumer("bench", [topics.EVENTS])
    await consumer.start()
    value = b"x" * 420
    headers = (("type", b"track"),)
    started = time.perf_counter()
    for b in range(0, events, BATCH_SIZE):
        batch = [
            Message(value=value, key=f"account-{i % ACCOUNTS}".encode(), headers=headers)
            for i in range(b, b + BATCH_SIZE)
        ]
        await producer.publish(topics.EVENTS, batch)
    read = 0
    while read < events:
        records = await consumer.poll(max_records=1000, timeout_s=1.0)
        read += len(records)
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            offsets[r.tp] = r.offset + 1
        await consumer.commit(offsets)
    seconds = time.perf_counter() - started
    await bus.close()
    await engine.dispose()
    return seconds


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--profile", type=Path, default=None, help="py-spy raw output file")
    parser.add_argument("--profile-rate", type=int, default=50, help="py-spy samples a second")
    parser.add_argument(
        "--client",
        choices=("lean", "httpx"),
        default="lean",
        help="load generator: bench/loadgen.py (default) or httpx (the earlier one)",
    )
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tend-bench-") as tmp_name:
        tmp = Path(tmp_name)
        path = tmp / "tend.db"
        url, key = await prepare(path)
        port = free_port()
        env = {
            **os.environ,
            "TEND_DATABASE_URL": url,
            "TEND_API_TOKEN": TOKEN,
            "TEND_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
        server = start(["tend", "up", "--port", str(port)], env)
        spy = None
        try:
            wait_for_port("127.0.0.1", port, timeout_s=60)
            if args.profile is not None:
                spy = start(
                    [
                        "py-spy",
                        "record",
                        "--pid",
                        str(server.pid),
                        "--format",
                        "raw",
                        "--rate",
                        str(args.profile_rate),
                        "--threads",
                        "--output",
                        str(args.profile),
                    ],
                    env,
                )
            requests = lean_requests(port, key, args.batches) if args.client == "lean" else []
            cpu_before = cpu_seconds(server.pid)
            main_before = cpu_seconds(server.pid, server.pid)
            started = time.perf_counter()
            deadline = started + args.max_seconds
            if args.client == "lean":
                sent = await send_lean(requests, port, args.concurrency, deadline)
            else:
                sent = await post_all(
                    f"http://127.0.0.1:{port}", key, args.batches, args.concurrency, deadline
                )
            posted = time.perf_counter() - started
            done = 0
            while time.perf_counter() < deadline + 60:
                done = committed(path)
                if done >= sent:
                    break
                await asyncio.sleep(0.05)
            seconds = time.perf_counter() - started
            cpu = cpu_seconds(server.pid) - cpu_before
            main_cpu = cpu_seconds(server.pid, server.pid) - main_before
        finally:
            if spy is not None:
                spy.send_signal(2)
                spy.wait(timeout=60)
            server.terminate()
            server.wait(timeout=60)
        rows, mb = bus_rows(path), disk_mb(path)
        raw_s = raw_baseline(tmp, sent)
        bus_s = await bus_alone(tmp, sent)
    rate = done / seconds if seconds else 0.0
    raw = sent / raw_s if raw_s else 0.0
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; client {args.client}")
    print(f"events sent over HTTP        {sent:>8}   in {posted:6.2f} s ({sent / posted:,.0f}/s)")
    print(f"tend up, HTTP to rollups     {done:>8}   in {seconds:6.2f} s ({rate:,.0f}/s)")
    print(f"raw sqlite3 append + read    {sent:>8}   in {raw_s:6.2f} s ({raw:,.0f}/s)")
    print(f"in-process bus alone         {sent:>8}   in {bus_s:6.2f} s ({sent / bus_s:,.0f}/s)")
    print(f"ratio tend up / raw          {rate / raw if raw else 0:.3f}   (target: 10,000/s)")
    print(f"ratio bus alone / raw        {sent / bus_s / raw if raw else 0:.3f}")
    per_event = cpu / done * 1e6 if done else 0.0
    print(
        f"tend up CPU                  {per_event:8.0f} µs/event, i.e. "
        f"{1e6 / per_event if per_event else 0:,.0f} events/s per busy core (load-independent)"
    )
    # py-spy counts aiosqlite's threads waiting on their queues as busy; /proc does not.
    main_share = main_cpu / cpu if cpu else 0.0
    print(
        f"  of which the main thread     {main_share:8.0%}   (the event loop: HTTP, bus, scorer, "
        f"re-scorer, alerts); other threads {1 - main_share:.0%} (mostly aiosqlite's: SQLite)"
    )
    print(f"bus_records rows left        {rows:>8}   database + WAL {mb:.1f} MB")
    if done < sent:
        print(f"NOT DONE: only {done} of {sent} events committed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())

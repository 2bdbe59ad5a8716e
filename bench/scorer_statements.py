"""PostgreSQL CPU of each statement of the scorer's flush, per event.

Run by hand (not in CI), from the repository root, with the server on this machine:

    .venv/bin/python bench/scorer_statements.py [--mix worst|typical] [--events 100000]
        [--batch 8000] [--accounts 2000]

It creates a fresh database (TEND_TEST_PG_DSN, default 127.0.0.1:5432), decodes the events of
``bench/scorer.py``'s mix and flushes them with :class:`RollupWriter` in batches of
``--batch`` (the size a lagging scorer reaches), each in one transaction, as the consumer does.
Around every statement it reads the CPU time of the session's backend from
``/proc/<pid>/schedstat`` (nanoseconds, so a single statement is measured, not sampled), and
prints each statement's total per event, the commit's, and the client's wall time per event.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import event, text  # noqa: E402

from bench.scorer import MIXES  # noqa: E402
from services.scorer.writer import RollupWriter  # noqa: E402
from shared.db.migrate import upgrade_async  # noqa: E402
from shared.db.session import create_engine, create_sessionmaker  # noqa: E402
from shared.events import decode_event  # noqa: E402
from tests.support.postgres import create_database, drop_database  # noqa: E402

STATE: dict[str, Any] = {"pid": 0, "started": 0, "costs": defaultdict(int), "counts": {}}


def backend_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def label(statement: str) -> str:
    words = re.sub(r"\s+", " ", statement).strip()
    m = re.match(r"(INSERT INTO \w+|DELETE FROM \w+|UPDATE \w+|SELECT .{0,40}?FROM \w+)", words)
    return m.group(1) if m else words[:50]


def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    STATE["started"] = backend_ns(STATE["pid"]) if STATE["pid"] else 0


def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    if not STATE["pid"]:
        return
    key = label(statement)
    STATE["costs"][key] += backend_ns(STATE["pid"]) - STATE["started"]
    STATE["counts"][key] = STATE["counts"].get(key, 0) + 1


async def main(args: argparse.Namespace) -> None:
    url = await create_database("tend_stmt")
    if args.collate:
        # The same database again, created with this default collation.
        import asyncpg

        from tests.support.postgres import SERVER_DSN

        name = url.rsplit("/", 1)[1]
        conn = await asyncpg.connect(SERVER_DSN)
        await conn.execute(f'DROP DATABASE "{name}"')
        await conn.execute(
            f"CREATE DATABASE \"{name}\" TEMPLATE template0 LC_COLLATE '{args.collate}' "
            "LC_CTYPE 'C.UTF-8'"
        )
        await conn.close()
    try:
        await upgrade_async(url)
        engine = create_engine(url)
        event.listen(engine.sync_engine, "before_cursor_execute", before)
        event.listen(engine.sync_engine, "after_cursor_execute", after)
        sessions = create_sessionmaker(engine)
        today = datetime.now(UTC).date()
        raw = [e.to_bytes() for e in MIXES[args.mix](args.events, args.accounts, today)]
        writer = RollupWriter()
        wall = 0.0
        python_s = 0.0
        commit_ns = 0
        for start in range(0, len(raw), args.batch):
            events = [decode_event(r) for r in raw[start : start + args.batch]]
            async with sessions() as session:
                STATE["pid"] = 0
                pid = await session.scalar(text("SELECT pg_backend_pid()"))
                STATE["pid"] = int(pid)
                began, cpu_began = time.perf_counter(), time.process_time()
                await writer.flush(session, "g", events, {("t", 0): start + len(events)})
                cpu = backend_ns(STATE["pid"])
                await session.commit()
                commit_ns += backend_ns(STATE["pid"]) - cpu
                wall += time.perf_counter() - began
                python_s += time.process_time() - cpu_began
        n = len(raw)
        total = sum(STATE["costs"].values()) + commit_ns
        print(f"{args.mix} mix, {n} events, batches of {args.batch}, {load()}")
        for key, ns in sorted(STATE["costs"].items(), key=lambda kv: -kv[1]):
            print(f"  {ns / n / 1e3:7.2f} us/event  x{STATE['counts'][key]:<4}  {key}")
        print(f"  {commit_ns / n / 1e3:7.2f} us/event  commit")
        print(
            f"  {total / n / 1e3:7.2f} us/event  PostgreSQL in all; flush wall {wall / n * 1e6:.1f}"
        )
        print(f"  {python_s / n * 1e6:7.2f} us/event  the flush's Python (this process)")
        await engine.dispose()
    finally:
        await drop_database(url)


def load() -> str:
    with open("/proc/loadavg") as f:
        return "load " + " ".join(f.read().split()[:3])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mix", choices=sorted(MIXES), default="worst")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=8000)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--collate", help="Create the database with this LC_COLLATE (e.g. C).")
    asyncio.run(main(parser.parse_args()))

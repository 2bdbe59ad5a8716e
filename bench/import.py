"""Backfill throughput: ``tend import-events`` against a raw aiokafka producer, same run.

Run by hand (not in CI), from the repository root:

    .venv/bin/python bench/import.py [--events 100000] [--max-seconds 120] [--plain]

It starts its own tansu broker and a throwaway SQLite database (the user-to-account directory),
writes ``--events`` Segment ``track`` calls as a gzip JSON-lines archive (``--plain``: not
compressed), imports it with the same code as ``tend import-events`` (in this process), then
sends the same number of canonical records with a pipelined raw aiokafka producer
(``bench/ingest.py``'s baseline: ``send()`` per event, then wait for all). Prints both rates,
the ratio (target: at least 0.6) and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
for path in (ROOT, SCRIPT.parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from ingest import raw_pipelined_phase, segment_call  # noqa: E402

from tests.support.broker import TansuBroker  # noqa: E402


def write_archive(path: Path, events: int, *, compress: bool) -> None:
    opener = gzip.open if compress else open
    with opener(path, "wt") as out:
        for i in range(events):
            out.write(json.dumps(segment_call(i)) + "\n")


async def import_phase(path: Path, size: int) -> tuple[int, float, float]:
    """(events imported, seconds, CPU seconds of this process meanwhile)."""
    from services.cli.import_events import run_import
    from shared.db.migrate import upgrade_async

    await upgrade_async(os.environ["TEND_DATABASE_URL"])
    cpu = time.process_time()
    started = time.perf_counter()
    tally = await run_import(path, size)
    return tally.imported, time.perf_counter() - started, time.process_time() - cpu


async def run(args: argparse.Namespace) -> int:
    load = os.getloadavg()
    broker = TansuBroker()
    broker.start()
    try:
        with tempfile.TemporaryDirectory(prefix="tend-bench-") as tmp_name:
            tmp = Path(tmp_name)
            archive = tmp / ("events.jsonl" if args.plain else "events.jsonl.gz")
            write_archive(archive, args.events, compress=not args.plain)
            os.environ["TEND_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
            os.environ["TEND_KAFKA_BOOTSTRAP"] = broker.bootstrap
            os.environ["TEND_LOG_LEVEL"] = "WARNING"
            print(
                f"tend import bench: {args.events} events, "
                f"{'plain' if args.plain else 'gzip'} archive of "
                f"{archive.stat().st_size / 1e6:.1f} MB, broker tansu at {broker.bootstrap}",
                flush=True,
            )
            imported, seconds, cpu = await import_phase(archive, archive.stat().st_size)
        raw = await raw_pipelined_phase(broker.bootstrap, args.events, args.max_seconds)
    finally:
        broker.stop()
    rate = imported / seconds if seconds else 0.0
    print(f"tend import-events              {imported:>8} events {seconds:7.2f} s {rate:>10,.0f}/s")
    print(raw.line())
    print(f"ratio import / raw pipelined send(): {rate / max(raw.per_s, 1e-9):.2f} (target 0.6)")
    # Both run in this process, on one core: the ratio of rates follows the ratio of CPU.
    import_us = cpu / max(imported, 1) * 1e6
    raw_us = raw.cpu_seconds / max(raw.events, 1) * 1e6
    print(
        f"CPU per event: import {import_us:.1f} µs, raw producer {raw_us:.1f} µs "
        f"(ratio raw / import {raw_us / max(import_us, 1e-9):.2f})"
    )
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0 if imported == args.events else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--max-seconds", type=float, default=120.0, help="cap of the raw phase")
    parser.add_argument("--plain", action="store_true", help="an uncompressed archive")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())

"""What keeping the last events per account (``recent_events``) costs the scorer's flush.

Run by hand (not in CI), from the repository root:

    .venv/bin/python bench/recent_events.py [--batches 40] [--batch 1000] [--accounts 2000]

Into a fresh PostgreSQL database (TEND_TEST_PG_DSN, default the server at 127.0.0.1:5432), the
rollup writer flushes ``--batches`` pairs of batches of ``--batch`` events spread over
``--accounts`` accounts (bench/scorer.py's event mix): in each pair one batch with the
``recent_events`` step (services/scorer/recent.py, its prunes included) and one without it,
in alternating order,
so both see the same machine load and table sizes. It prints the median and mean wall time and
process CPU time of a flush with and without the step, the difference, and the load average.
The first few pairs only warm up (they fill the rollups and reach the 50 kept per account).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.scorer import worst_events  # noqa: E402
from services.scorer.recent import RecentEvents  # noqa: E402
from services.scorer.writer import RollupWriter  # noqa: E402
from shared.db.migrate import upgrade_async  # noqa: E402
from shared.db.session import create_engine, create_sessionmaker  # noqa: E402
from tests.support.postgres import create_database, drop_database  # noqa: E402

WARM_UP = 5


class TimedRecentEvents(RecentEvents):
    """The real step, timing itself (wall), so its share of a flush is measured directly."""

    def __init__(self) -> None:
        super().__init__()
        self.spent: list[float] = []

    async def keep(self, *args: Any) -> None:
        start = time.perf_counter()
        await super().keep(*args)
        self.spent.append(time.perf_counter() - start)


class NoRecentEvents(RecentEvents):
    """The writer as it was before ``recent_events``."""

    async def keep(self, *_: object) -> None:
        return None


async def main(args: argparse.Namespace) -> None:
    url = await create_database("tend_bench_recent")
    try:
        await upgrade_async(url)
        engine = create_engine(url)
        sessions = create_sessionmaker(engine)
        timed_step = TimedRecentEvents()
        writers = {
            True: RollupWriter(recent=timed_step),
            False: RollupWriter(recent=NoRecentEvents()),
        }
        today = datetime.now(UTC).date()
        stream = worst_events(args.batches * 2 * args.batch, args.accounts, today)
        times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}

        async def timed(flush: Callable[[], Awaitable[object]]) -> tuple[float, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            await flush()
            return time.perf_counter() - wall, time.process_time() - cpu

        for i in range(args.batches):
            order = (True, False) if i % 2 == 0 else (False, True)
            for with_recent in order:
                batch = [next(stream) for _ in range(args.batch)]
                writer = writers[with_recent]

                async def flush(batch: list[object] = batch, writer: RollupWriter = writer) -> None:
                    async with sessions() as session, session.begin():
                        await writer.flush(session, "bench", batch, {})  # type: ignore[arg-type]

                spent = await timed(flush)
                if i >= WARM_UP:
                    times[with_recent].append(spent)
        await engine.dispose()
    finally:
        await drop_database(url)

    print(
        f"{args.batches - WARM_UP} measured pairs of flushes of {args.batch} events over "
        f"{args.accounts} accounts; load average {os.getloadavg()[0]:.2f}"
    )
    for label, index in (("wall", 0), ("CPU", 1)):
        without = [t[index] * 1000 for t in times[False]]
        with_ = [t[index] * 1000 for t in times[True]]
        for name, f in (("median", statistics.median), ("mean", statistics.fmean)):
            a, b = f(without), f(with_)
            print(
                f"  {label:>4} {name:<6} without {a:8.1f} ms   with {b:8.1f} ms   "
                f"difference {b - a:+7.1f} ms ({(b - a) / a:+.1%})"
            )
    step = [t * 1000 for t in timed_step.spent[WARM_UP:]]
    flushes = [t[0] * 1000 for t in times[True]]
    print(
        f"  the step itself (wall, inside the flushes with it): median "
        f"{statistics.median(step):.1f} ms, mean {statistics.fmean(step):.1f} ms, max "
        f"{max(step):.1f} ms; {sum(step) / sum(flushes):.1%} of those flushes' time"
    )


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--accounts", type=int, default=2000)
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))

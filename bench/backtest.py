"""Backtest speed: the time ``tend backtest`` takes for N accounts x 1 year.

Run by hand (not in CI), from the repository root:

    .venv/bin/python bench/backtest.py [--accounts 10000] [--sample 200] [--days 365]
        [--proposed] [--workers 1]

It writes a simulated portfolio (``tests/backtest/portfolio.py``: five behaviours, 4 to 12
users an account, three key features, known churn) as daily rollups into a fresh SQLite file,
``--days`` days of the window plus the warm-up before it, then times the replay and the figures
(``services.cli.backtest.run_backtest``: the real scoring and rule code, day by day).

The replay is linear in accounts (chunks of 200, nothing shared between them), so it replays
``--sample`` accounts (all of them when ``--accounts`` is not larger) and prints the measured
time, the cost of one account-day, and the time for ``--accounts`` accounts projected from it
(``projected``, said as such; ``measured`` when the sample is the whole portfolio), with the
CPU time per account-day (this process's and its workers') and the load average (on a shared
machine the wall time follows the load; docs/backtest.md has the figures before and after the
speed work). Target: 10,000 accounts x 1 year under 10 minutes. ``--proposed`` replays a
second model beside the current one (``--config``); ``--workers`` replays chunks of 200
accounts in that many processes (the sample must hold more than one chunk to use them).
Bounded: at most 100,000 accounts, 1,000 sampled, 3 years.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from services.cli.backtest import Window, run_backtest, warmup_days  # noqa: E402
from shared.config import TendConfig  # noqa: E402
from shared.db.migrate import upgrade_async  # noqa: E402
from shared.db.session import create_engine, create_sessionmaker  # noqa: E402
from shared.scoring_model import Bands, ScoringModel  # noqa: E402
from tests.backtest.portfolio import KEY_FEATURES, create_portfolio, write_portfolio  # noqa: E402

END = date(2026, 11, 15)


def cpu_seconds() -> float:
    """CPU time of this process and of its ended child processes (the ``--workers``)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _bounded(low: int, high: int, name: str):  # type: ignore[no-untyped-def]
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be between {low} and {high}")
        return value

    return parse


async def run(args: argparse.Namespace) -> None:
    config = TendConfig(key_features=KEY_FEATURES)
    proposed = (
        TendConfig(key_features=KEY_FEATURES, scoring=ScoringModel(bands=Bands(green=80)))
        if args.proposed
        else None
    )
    sample = min(args.sample, args.accounts)
    window = Window(END - timedelta(days=args.days - 1), END)
    start = window.first - timedelta(days=warmup_days([config]) + 84)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/bench.db"
        await upgrade_async(url)
        engine = create_engine(url)
        try:
            sessions = create_sessionmaker(engine)
            per = max(1, sample // 5)
            accounts = create_portfolio("b-", per, start, END)[:sample]
            began = time.perf_counter()
            await write_portfolio(sessions, accounts, start, END)
            print(
                f"wrote {len(accounts)} accounts, {start} .. {END}, in "
                f"{time.perf_counter() - began:.1f} s"
            )
            done = 0

            def progress(n: int) -> None:
                nonlocal done
                done += n
                print(f"  {done} accounts replayed ({time.perf_counter() - began:.1f} s)")

            began, cpu = time.perf_counter(), cpu_seconds()
            result = await run_backtest(
                sessions,
                config,
                window,
                proposed=proposed,
                progress=progress,
                workers=args.workers,
                database_url=url,
            )
            took = time.perf_counter() - began
            cpu = cpu_seconds() - cpu
        finally:
            await engine.dispose()
    account_days = sum(b.account_days for b in result.current.bands)
    replayed_days = len(accounts) * (args.days + warmup_days([config]))
    per_day = took / replayed_days
    kind = "measured" if len(accounts) == args.accounts else "projected"
    total = per_day * args.accounts * (args.days + warmup_days([config]))
    models = ("2 models" if proposed else "1 model") + f", {args.workers} worker(s)"
    print(
        f"replayed {len(accounts)} accounts x {args.days} days ({models}, {account_days} judged "
        f"account-days in the window) in {took:.1f} s"
    )
    print(
        f"cost: {per_day * 1e3:.3f} ms per account-day (warm-up days included); CPU "
        f"{cpu / replayed_days * 1e3:.3f} ms (the CPU time of this process and its workers: "
        f"what free cores would take); load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(
        f"{args.accounts} accounts x {args.days} days: {total:.0f} s ({total / 60:.1f} min, "
        f"{kind}); target under 600 s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=_bounded(1, 100_000, "--accounts"), default=10_000)
    parser.add_argument("--sample", type=_bounded(5, 1_000, "--sample"), default=200)
    parser.add_argument("--days", type=_bounded(1, 3 * 366, "--days"), default=365)
    parser.add_argument("--proposed", action="store_true", help="Replay a second model too.")
    parser.add_argument(
        "--workers", type=_bounded(1, 64, "--workers"), default=1, help="Replay processes."
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

"""Signals a CSM can trust (issue 10): a simulated portfolio through the real pipeline, three ways.

Run by hand (not in CI), from the repository root:

    .venv/bin/python bench/signals.py [--per-behaviour 1] [--max-seats 500] [--seed 10]
        [--modes stream,at_once,shuffled] [--pace-days 7] [--postgres] [--small]
        [--detail] [--out FILE]

A portfolio of ten behaviours (``tests/signals/simulator.py``: steady, growing, seasonal dip,
plateau at low use, decline, dormant, abandoned feature, never adopted, lost champion, near seat
limit; 5 to 500 seats; 26 weeks of Segment calls ending 2026-11-15) is fed into the pipeline
``tend up`` runs, in this process (``tests/signals/runner.py``: ingest ``/v1/batch``, in-process
bus, scorer, alerts; product defaults of ``deploy/tend.yaml``; the clock fixed at 06:00 UTC the
day after the history) in each arrival order: ``stream`` (oldest first, ``--pace-days`` days
at a time, the scorer and alerts running), ``at_once`` (everything before the scorer starts)
and ``shuffled`` (random order, in as many slices as ``stream`` has steps, the scorer and
alerts running). Each run has its own fresh SQLite file (or, with ``--postgres``, PostgreSQL
database on TEND_TEST_PG_DSN).

Prints, per order, a table per behaviour: the seats of its accounts, their end bands, the delay
of the first alert on the expected rule after the behaviour changed (with the most a CSM should
wait: the rule's own definition plus 14 days; ``miss``: never), false alarms (risk alerts opened
on steady, growing or seasonal accounts), reopenings, notifications (outbox rows) and every rule
that fired (``--detail``: every alert episode of every account, days counted from its change);
then the totals and the account-days whose band differs between the orders.

With the defaults (one account per behaviour, ~50,000 calls) it takes a few minutes on 2 cores;
``--small`` is the portfolio of ``tests/signals/test_portfolio.py`` (~33,000 calls).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.signals.report import format_episodes, format_summary, format_table  # noqa: E402
from tests.signals.runner import MODES, Mode, Outcome, product_config, run_portfolio  # noqa: E402
from tests.signals.simulator import (  # noqa: E402
    DEFAULT_SIZES,
    SMALL_SIZES,
    build_portfolio,
)
from tests.support.postgres import create_database, drop_database  # noqa: E402


async def run_mode(args: argparse.Namespace, mode: Mode) -> Outcome:
    portfolio = portfolio_of(args)
    if args.postgres:
        url = await create_database("tend_signals")
        try:
            return await run_portfolio(
                portfolio, mode, url, seed=args.seed, pace_days=args.pace_days
            )
        finally:
            await drop_database(url)
    with tempfile.TemporaryDirectory(prefix="tend-signals-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'tend.db'}"
        return await run_portfolio(portfolio, mode, url, seed=args.seed, pace_days=args.pace_days)


def portfolio_of(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    sizes = SMALL_SIZES if args.small else DEFAULT_SIZES
    return build_portfolio(
        args.per_behaviour, seed=args.seed, sizes=sizes, max_seats=args.max_seats
    )


async def main(args: argparse.Namespace) -> str:
    portfolio = portfolio_of(args)
    rules = product_config().rules
    outcomes: dict[str, Outcome] = {}
    out: list[str] = [
        f"portfolio: {len(portfolio.accounts)} accounts, seats "
        f"{min(a.seats for a in portfolio.accounts)}..{max(a.seats for a in portfolio.accounts)}, "
        f"{portfolio.start} .. {portfolio.end}, seed {args.seed}, "
        f"{'PostgreSQL' if args.postgres else 'SQLite'}"
    ]
    print(out[0], flush=True)
    for mode in args.modes:
        started = time.perf_counter()
        outcome = await run_mode(args, mode)
        outcomes[mode] = outcome
        block = (
            f"\n== {mode}: {outcome.calls} calls in {time.perf_counter() - started:.0f} s ==\n"
            + format_table(portfolio, outcome, rules)
            + ("\n\n" + format_episodes(portfolio, outcome) if args.detail else "")
        )
        print(block, flush=True)
        out.append(block)
    summary = "\n" + format_summary(portfolio, outcomes, rules)
    print(summary, flush=True)
    out.append(summary)
    return "\n".join(out) + "\n"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--per-behaviour", type=int, default=1, help="Accounts of each behaviour.")
    p.add_argument("--max-seats", type=int, default=500, help="Cap on any account's seats.")
    p.add_argument("--seed", type=int, default=10)
    p.add_argument("--small", action="store_true", help="The portfolio test's smaller sizes.")
    p.add_argument(
        "--modes",
        type=lambda s: [m.strip() for m in s.split(",") if m.strip()],
        default=list(MODES),
        help="Arrival orders to run, comma-separated (stream, at_once, shuffled).",
    )
    p.add_argument(
        "--pace-days",
        type=int,
        default=7,
        help="stream/shuffled: days of history (or as many calls) posted per step.",
    )
    p.add_argument("--detail", action="store_true", help="Also list every account's alerts.")
    p.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite.")
    p.add_argument("--out", type=Path, help="Also write the output to this file.")
    args = p.parse_args()
    unknown = [m for m in args.modes if m not in MODES]
    if unknown:
        p.error(f"--modes: unknown order(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    if args.per_behaviour < 1:
        p.error("--per-behaviour: must be at least 1")
    if args.pace_days < 1:
        p.error("--pace-days: must be at least 1")
    return args


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    arguments = parse_args()
    text = asyncio.run(main(arguments))
    if arguments.out is not None:
        arguments.out.parent.mkdir(parents=True, exist_ok=True)
        arguments.out.write_text(text)

"""``tend backtest``: replay scoring and the alert rules over the stored rollups, in event time,
and join the result with the recorded outcomes (docs/backtest.md).

The replay runs the real code of both services (the scorer's
:func:`~services.scorer.replay.replay_scores`, the rules and life cycle in
:class:`~services.alerts.replay.AlertReplay`), which is why it is wired here: the CLI is the
only place that may use both. :func:`run_backtest` returns a
:class:`~shared.backtest.report.Comparison` (a dataclass with ``to_dict``), which the console
can show later.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from services.cli.backtest_text import describe
from services.cli.common import (
    ConfigFailure,
    Failure,
    config_failure,
    load_settings,
    load_tend_config,
    run_db,
)
from shared.alert_rules import RULE_NAMES
from shared.backtest.model import AccountRun, Churn, churns_of
from shared.backtest.report import (
    HORIZON_DAYS,
    Comparison,
    build_report,
)
from shared.collector import collector_paused
from shared.config import ConfigError, TendConfig, load_config
from shared.outcomes.lifecycle import is_cancelled
from shared.outcomes.model import AccountHistory

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

MAX_DAYS = 3 * 366
"""The longest window: three years of daily replay."""
MAX_WORKERS = 64
WARMUP_DAYS = 35
"""Days replayed before the window so alerts there have the history they would have had."""


class NoData(Failure):
    """Nothing to replay: no accounts, or no rollups in the window."""


@dataclass(frozen=True, slots=True)
class Window:
    first: date
    last: date


def parse_window(first: str, last: str) -> Window:
    """``--from`` / ``--to`` as dates, in order, at most :data:`MAX_DAYS` apart."""
    days = []
    for name, value in (("--from", first), ("--to", last)):
        try:
            days.append(date.fromisoformat(value))
        except ValueError:
            raise ConfigFailure(f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None
    window = Window(days[0], days[1])
    if window.first > window.last:
        raise ConfigFailure(f"--from: {window.first} is after --to {window.last}")
    if (window.last - window.first).days + 1 > MAX_DAYS:
        raise ConfigFailure(f"--from: the window is longer than {MAX_DAYS} days")
    return window


def warmup_days(configs: Sequence[TendConfig]) -> int:
    """Enough days before the window for the longest ``for_days`` and health_drop's look-back."""
    longest = [WARMUP_DAYS]
    for c in configs:
        longest.append(c.rules.health_drop.within_days)
        longest.extend(c.rules.policy(name).for_days for name in RULE_NAMES)
    return max(longest)


async def _rollup_days(session: AsyncSession) -> tuple[date | None, date | None]:
    from sqlalchemy import func, select

    from shared.db.models import AccountDay

    row = (await session.execute(select(func.min(AccountDay.day), func.max(AccountDay.day)))).one()
    return tuple(None if v is None else date.fromisoformat(str(v)[:10]) for v in row)  # type: ignore[return-value]


def _judged(histories: dict[str, AccountHistory]) -> Callable[[str, date], bool]:
    """Whether an account-day is scored and judged: on or after the account's start, and not
    cancelled that day (the alerts consumer judges no score of a cancelled account)."""

    def wanted(account_id: str, day: date) -> bool:
        h = histories[account_id]
        return h.start is not None and h.start <= day and not is_cancelled(h.outcomes, day)

    return wanted


@dataclass(slots=True)
class Replayed:
    """What the replay produced: every account's run under each model (the alert history and
    band spans the figures are computed from) and the churn recorded."""

    window: Window
    last_data_day: date
    churns: dict[str, list[Churn]]
    runs: list[list[AccountRun]]


@dataclass(frozen=True, slots=True)
class _Chunk:
    """A chunk of accounts to replay from ``start`` (the warm-up) through the window's end."""

    accounts: tuple[str, ...]
    configs: tuple[TendConfig, ...]
    start: date
    window: Window
    histories: dict[str, AccountHistory]


async def _replay_chunk(
    sessions: async_sessionmaker[AsyncSession], job: _Chunk
) -> list[list[AccountRun]]:
    """One chunk of accounts replayed under each model: its runs, one list per model."""
    from services.alerts.replay import AlertReplay
    from services.scorer.replay import replay_scores

    replays = [AlertReplay(c.rules) for c in job.configs]
    chunk_runs = [{a: AccountRun(a) for a in job.accounts} for _ in job.configs]
    window = job.window
    # Nothing awaits inside but the chunk's one read of the rollups.
    with collector_paused():
        async with sessions() as session:
            async for day, scored in replay_scores(
                session,
                job.accounts,
                job.start,
                window.last,
                job.configs,
                wanted=_judged(job.histories),
            ):
                for n, messages in enumerate(scored):
                    for m in messages:
                        replays[n].feed(m)
                        if day >= window.first:
                            chunk_runs[n][m.account_id].add_day(day, m.band)
    for n, replay in enumerate(replays):
        for alert in replay.raised:
            chunk_runs[n][alert.account_id].alerts.append(alert)
    return [list(r.values()) for r in chunk_runs]


def _chunk_in_process(database_url: str, job: _Chunk) -> list[list[AccountRun]]:
    """:func:`_replay_chunk` in a worker process, on an engine of its own."""
    from shared.db.session import create_engine, create_sessionmaker

    async def work() -> list[list[AccountRun]]:
        engine = create_engine(database_url)
        try:
            return await _replay_chunk(create_sessionmaker(engine), job)
        finally:
            await engine.dispose()

    return asyncio.run(work())


async def replay_portfolio(
    sessions: async_sessionmaker[AsyncSession],
    configs: Sequence[TendConfig],
    window: Window,
    *,
    chunk_size: int = 200,
    account_ids: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
    database_url: str | None = None,
) -> Replayed:
    """Replay each model of ``configs`` over ``window`` (and the warm-up before it); raises
    :class:`NoData` when there is nothing to replay and :class:`ConfigFailure` when ``--to``
    lies after the last day of data. ``progress(n)`` is told as each chunk of ``n`` accounts
    is done. With ``workers`` > 1, chunks are replayed in that many processes, each with an
    engine of its own on ``database_url`` (the result is the same, in the same order)."""
    from shared.outcomes.repository import OutcomeRepository

    async with sessions() as session:
        histories = {
            h.account_id: h for h in await OutcomeRepository(session).histories(account_ids)
        }
        first_day, last_day = await _rollup_days(session)
    if not histories:
        raise NoData("no accounts to backtest (import profiles or send events first)")
    if first_day is None or last_day is None or first_day > window.last:
        raise NoData(f"no usage rollups on or before {window.last}: nothing to replay")
    if window.last > last_day:
        raise ConfigFailure(
            f"--to: {window.last} is after the last day of usage data ({last_day}); "
            "the replay would see every account go quiet"
        )
    start = window.first - timedelta(days=warmup_days(configs))
    runs: list[list[AccountRun]] = [[] for _ in configs]
    ids = sorted(histories)
    if workers > 1:
        # Accounts differ in work (a churned account is not judged after its cancellation)
        # and sorted ids group alike accounts, so a few chunks per worker, handed out as the
        # workers free up, keep them all busy to the end: with one chunk each, the busier
        # half of a simulated portfolio kept one worker going long after the other.
        chunk_size = max(1, min(chunk_size, -(-len(ids) // (4 * workers))))
    jobs = [
        _Chunk(
            tuple(chunk),
            tuple(configs),
            start,
            window,
            {a: histories[a] for a in chunk},
        )
        for chunk in (ids[i : i + chunk_size] for i in range(0, len(ids), chunk_size))
    ]

    def done(job: _Chunk, chunk_runs: list[list[AccountRun]]) -> None:
        for n, model_runs in enumerate(chunk_runs):
            runs[n].extend(model_runs)
        if progress is not None:
            progress(len(job.accounts))

    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            done(job, await _replay_chunk(sessions, job))
    else:
        if database_url is None:
            raise ValueError("database_url is needed with more than one worker")
        loop = asyncio.get_running_loop()
        # Spawned, not forked: a child starts clean, without this process's event loop.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [
                loop.run_in_executor(pool, _chunk_in_process, database_url, job) for job in jobs
            ]
            for job, future in zip(jobs, futures, strict=True):
                done(job, await future)
    churns = {a: churns_of(h) for a, h in histories.items()}
    return Replayed(window, last_day, churns, runs)


def report_of(replayed: Replayed) -> Comparison:
    """The figures of each model's runs (current first, then proposed)."""
    w = replayed.window
    reports = [
        build_report(label, runs, replayed.churns, w.first, w.last, RULE_NAMES)
        for label, runs in zip(("current", "proposed"), replayed.runs, strict=False)
    ]
    notes = []
    known = replayed.last_data_day
    if known < w.last + timedelta(days=HORIZON_DAYS):
        notes.append(
            f"churn is known through the outcomes recorded so far: a band or alert of the "
            f"window's last {HORIZON_DAYS} days (after {known - timedelta(days=HORIZON_DAYS)}) "
            "may still be proved right by a later cancellation"
        )
    return Comparison(reports[0], reports[1] if len(reports) > 1 else None, tuple(notes))


async def run_backtest(
    sessions: async_sessionmaker[AsyncSession],
    config: TendConfig,
    window: Window,
    *,
    proposed: TendConfig | None = None,
    chunk_size: int = 200,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
    database_url: str | None = None,
) -> Comparison:
    """The backtest of ``config`` (and ``proposed`` beside it) over ``window``; see
    :func:`replay_portfolio` for ``workers``."""
    configs = [config] if proposed is None else [config, proposed]
    replayed = await replay_portfolio(
        sessions,
        configs,
        window,
        chunk_size=chunk_size,
        progress=progress,
        workers=workers,
        database_url=database_url,
    )
    return report_of(replayed)


@click.command()
@click.option("--from", "first", required=True, metavar="DATE", help="First day (YYYY-MM-DD).")
@click.option("--to", "last", required=True, metavar="DATE", help="Last day (YYYY-MM-DD).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A proposed YAML file (scoring model and rules) to replay beside TEND_CONFIG's.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option(
    "--workers",
    type=click.IntRange(1, MAX_WORKERS),
    default=1,
    show_default=True,
    help="Processes replaying chunks of accounts side by side (one per core at most).",
)
@click.option(
    "--save/--no-save",
    default=True,
    show_default=True,
    help="Store the run for the console's backtest page (/console/backtest).",
)
def backtest(
    first: str, last: str, config_path: Path | None, as_json: bool, workers: int, save: bool
) -> None:
    """Replay scoring and the alert rules day by day over the stored rollups (event time) and
    measure them against the recorded churn: calibration per band, precision, recall, lead time
    and noise per rule, churned MRR flagged ahead (docs/backtest.md)."""
    from shared.backtest.runs import save_run
    from shared.db.session import create_engine, create_sessionmaker, transaction

    window = parse_window(first, last)
    settings = load_settings()
    config = load_tend_config(settings)
    proposed = None
    if config_path is not None:
        try:
            proposed = load_config(config_path)
        except ConfigError as err:
            raise config_failure(f"--config {err}") from None

    async def work() -> Comparison:
        engine = create_engine(settings.database_url)
        try:
            sessions = create_sessionmaker(engine)
            result = await run_backtest(
                sessions,
                config,
                window,
                proposed=proposed,
                workers=workers,
                database_url=settings.database_url,
            )
            if save:
                async with transaction(sessions) as session:
                    await save_run(session, result, ran_at=datetime.now(UTC))
            return result
        finally:
            await engine.dispose()

    result = run_db(settings.database_url, work())
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(describe(result))

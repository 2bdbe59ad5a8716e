"""``tend rescore``: re-score every account now, or preview a scoring model with --dry-run."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from services.cli.common import (
    ConfigFailure,
    config_failure,
    load_settings,
    load_tend_config,
    run_db,
)
from shared.config import ConfigError, TendConfig, load_config
from shared.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


async def score_now(
    settings: Settings,
    config: TendConfig,
    sessions: async_sessionmaker[AsyncSession],
    day: date | None = None,
    *,
    dirty_only: bool = False,
) -> tuple[int, int]:
    """Score now and publish the scores on the bus the settings name (so the alerts service
    sees them): every account (as of ``day``, or every day due), or with ``dirty_only`` only
    the accounts marked for re-scoring (new events, a new profile). Returns (accounts
    scored, day scores published)."""
    from services.scorer.rescorer import Rescorer
    from shared.bus import create_bus
    from shared.clock import SystemClock

    bus = create_bus(settings, sessions)
    producer = bus.producer()
    await producer.start()
    try:
        rescorer = Rescorer(
            sessions,
            producer,
            config,
            SystemClock(),
            backfill_days=settings.scorer.backfill_days,
            horizon_days=settings.scorer.rescore_horizon_days,
        )
        if dirty_only:
            n = await rescorer.rescore_dirty(day)
        else:
            n = await rescorer.sweep(day, trigger="manual")
    finally:
        await producer.stop()
        await bus.close()
    return n, rescorer.published


def _parse_day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigFailure(f"--as-of: {value!r} is not a date (YYYY-MM-DD)") from None


@click.command()
@click.option(
    "--as-of",
    "as_of",
    metavar="DATE",
    help="Score as of this day (default: every day due through today; with --dry-run, the "
    "last final day, yesterday UTC).",
)
@click.option(
    "--dry-run", is_flag=True, help="Show which accounts would change band; write nothing."
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Score with this YAML file instead of TEND_CONFIG (useful with --dry-run).",
)
def rescore(as_of: str | None, dry_run: bool, config_path: Path | None) -> None:
    """Re-score every account now (or preview a new scoring model with --dry-run: both models
    as of the same day, band by band)."""
    from services.scorer.rescorer import Rescorer, describe
    from shared.clock import SystemClock
    from shared.db.session import create_engine, create_sessionmaker

    settings = load_settings()
    live = config = load_tend_config(settings)
    if config_path is not None:
        try:
            config = load_config(config_path)
        except ConfigError as err:
            raise config_failure(str(err)) from None
    day = _parse_day(as_of)
    live_name = (
        f"{settings.config} (TEND_CONFIG)"
        if settings.config is not None
        else "the built-in defaults (TEND_CONFIG is not set)"
    )
    new_name = (
        f"{config_path} (--config)"
        if config_path is not None
        else f"the live model again ({live_name}; give --config FILE to preview another)"
    )

    async def work() -> str:
        engine = create_engine(settings.database_url)
        sessions = create_sessionmaker(engine)
        try:
            if dry_run:
                report = await Rescorer(sessions, None, live, SystemClock()).dry_run(config, day)
                text = describe(report, live=live_name, new=new_name)
                return text + "\n(dry run: nothing was written or published)"
            n, published = await score_now(settings, config, sessions, day)
            return (
                f"Scored {n} account(s) as of {day or datetime.now(UTC).date()}; published "
                f"{published} new or changed day score(s)."
            )
        finally:
            await engine.dispose()

    click.echo(run_db(settings.database_url, work()))

"""``tend rescore``: re-score every account now, or preview a scoring model with --dry-run."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from services.cli.common import (
    ConfigFailure,
    config_failure,
    load_settings,
    load_tend_config,
    run_db,
)
from shared.config import ConfigError, load_config


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
    from shared.bus import create_bus
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

    async def work() -> str:
        engine = create_engine(settings.database_url)
        sessions = create_sessionmaker(engine)
        try:
            if dry_run:
                report = await Rescorer(sessions, None, live, SystemClock()).dry_run(config, day)
                return describe(report) + "\n(dry run: nothing was written or published)"
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
                n = await rescorer.sweep(day, trigger="manual")
            finally:
                await producer.stop()
                await bus.close()
            return (
                f"Scored {n} account(s) as of {day or rescorer.today()}; published "
                f"{rescorer.published} new or changed day score(s)."
            )
        finally:
            await engine.dispose()

    click.echo(run_db(settings.database_url, work()))

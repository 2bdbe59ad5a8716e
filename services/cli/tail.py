"""``tend tail``: the newest events tend counted (of one account or of all), and with
``--follow`` each new one as it arrives, so an engineer instrumenting an app sees that events
get through: what, when, from which write key. Reads the database (``recent_events``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from services.cli.common import database_errors, load_settings
from shared.format import MISSING, timestamp

if TYPE_CHECKING:
    from shared.read.events import LastEvent

FOLLOW_BATCH = 1000
"""Events read per poll while following (more than a poll interval's worth is read next)."""


def event_line(e: LastEvent) -> str:
    """One event on one line: received, account, call, name, user, event time, write key."""
    name = f'"{e.name}"' if e.name else MISSING
    if e.key_id is None:
        key = "no write key (imported)"
    elif e.key_prefix is None:
        key = f"write key {e.key_id} (no longer stored)"
    else:
        key = f"write key {e.key_id} {e.key_name} ({e.key_prefix}...)"
    user = f"user {e.user_id}" if e.user_id else "no user"
    return (
        f"{timestamp(e.received_at)}  {e.account_id}  {e.type} {name}  {user}  "
        f"happened {timestamp(e.occurred_at)}  {key}"
    )


def _echo(events: Sequence[LastEvent]) -> int | None:
    """Print ``events`` (newest first as read) oldest first; the newest id, if any."""
    for e in reversed(events):
        click.echo(event_line(e))
    return events[0].id if events else None


async def _tail(
    database_url: str, account_id: str | None, lines: int, follow: bool, interval: float
) -> None:
    from shared.db.session import create_engine, create_sessionmaker
    from shared.read.events import last_events

    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    whose = f"account {account_id}" if account_id is not None else "any account"
    try:
        async with sessions() as session:
            last = _echo(await last_events(session, account_id, limit=lines))
        if last is None:
            click.echo(f"No events counted yet for {whose}.")
        if not follow:
            return
        click.echo(f"Following new events for {whose} (Ctrl-C to stop)...")
        while True:
            await asyncio.sleep(interval)
            async with sessions() as session:
                found = await last_events(session, account_id, limit=FOLLOW_BATCH, after_id=last)
            last = _echo(found) or last
    finally:
        await engine.dispose()


@click.command()
@click.option("--account", "account_id", metavar="ID", help="Only this account's events.")
@click.option(
    "--follow", "-f", is_flag=True, help="Keep printing new events as they arrive (Ctrl-C stops)."
)
@click.option(
    "--lines",
    "-n",
    default=20,
    show_default=True,
    type=click.IntRange(1, 50),
    help="How many of the newest events to print first (tend keeps 50 per account).",
)
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.05, 60),
    help="Seconds between looks at the database while following.",
)
def tail(account_id: str | None, follow: bool, lines: int, interval: float) -> None:
    """Print the newest events tend counted, oldest first, one a line: when it was received,
    the account, the call and event name, the user, the event time and the write key (its id,
    name and prefix; never the key). An event shows once the scorer has counted it, a moment
    after ingest accepted it."""
    settings = load_settings()
    with database_errors(settings.database_url):
        try:
            asyncio.run(_tail(settings.database_url, account_id, lines, follow, interval))
        except KeyboardInterrupt:
            click.echo("Stopped.")

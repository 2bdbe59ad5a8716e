"""Admin commands: ``tend migrate``, ``tend keys create|list|revoke``, ``tend accounts import``
(profiles, and outcomes with ``--outcomes``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from services.cli.common import (
    EXIT_FAILED,
    ConfigFailure,
    Failure,
    ensure_first_admin,
    load_settings,
    load_tend_config,
    migrate_database,
    one_line,
    open_transaction,
    run_db,
    show_first_admin,
)
from shared.config import TendConfig
from shared.people import audit
from shared.people.caller import CLI
from shared.settings import Settings


@click.command()
def migrate() -> None:
    """Apply the database migrations (Alembic upgrade to head) on TEND_DATABASE_URL."""
    settings = load_settings()
    click.echo(run_db(settings.database_url, migrate_database(settings.database_url)))
    first = run_db(settings.database_url, ensure_first_admin(settings))
    if first is not None:
        show_first_admin(*first)


# -- write keys -------------------------------------------------------------------------------


def _when(value: Any) -> str:
    return "-" if value is None else str(value.strftime("%Y-%m-%d %H:%M:%S"))


@click.group()
def keys() -> None:
    """Manage the write keys that SDKs use to send events."""


@keys.command("create")
@click.argument("name")
def keys_create(name: str) -> None:
    """Create a write key called NAME and print it (this once only; only its hash is kept)."""
    from shared.db.keys import create_key

    if not name.strip():
        raise ConfigFailure("a write key needs a non-blank NAME")
    settings = load_settings()

    async def work() -> tuple[int, str]:
        async with open_transaction(settings.database_url) as session:
            row, plaintext = await create_key(session, name)
            audit.record(
                session,
                CLI,
                "write_key.create",
                target=f"write_key:{row.id}",
                details={"name": row.name, "prefix": row.prefix},
            )
            return row.id, plaintext

    key_id, plaintext = run_db(settings.database_url, work())
    click.echo(
        f"Created write key {key_id} ({name.strip()!r}). Store it now; it is not shown again:"
    )
    click.echo("")
    click.echo(f"    {plaintext}")
    click.echo("")


@keys.command("list")
def keys_list() -> None:
    """List write keys: id, name, prefix, created, revoked (never the key itself)."""
    from shared.db.keys import list_keys

    settings = load_settings()

    async def work() -> list[tuple[str, str, str, str, str]]:
        async with open_transaction(settings.database_url) as session:
            return [
                (str(k.id), k.name, k.prefix, _when(k.created_at), _when(k.revoked_at))
                for k in await list_keys(session)
            ]

    rows = run_db(settings.database_url, work())
    if not rows:
        click.echo("No write keys yet. Create one with: tend keys create NAME")
        return
    table = [("ID", "NAME", "PREFIX", "CREATED (UTC)", "REVOKED (UTC)"), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@keys.command("revoke")
@click.argument("key_id", metavar="ID", type=int)
def keys_revoke(key_id: int) -> None:
    """Revoke the write key with this ID; ingest refuses it once its key cache expires."""
    from shared.db.keys import revoke_key
    from shared.db.models import ApiKey

    settings = load_settings()

    async def work() -> tuple[str, bool] | None:
        async with open_transaction(settings.database_url) as session:
            existing = await session.get(ApiKey, key_id)
            was_revoked = existing is not None and existing.revoked_at is not None
            row = await revoke_key(session, key_id)
            if row is not None and not was_revoked:
                audit.record(
                    session,
                    CLI,
                    "write_key.revoke",
                    target=f"write_key:{row.id}",
                    details={"name": row.name, "prefix": row.prefix},
                )
            return None if row is None else (row.name, was_revoked)

    result = run_db(settings.database_url, work())
    if result is None:
        raise Failure(f"no write key with id {key_id} (see: tend keys list)")
    name, was_revoked = result
    if was_revoked:
        click.echo(f"Write key {key_id} ({name!r}) was already revoked.")
        return
    ttl = settings.ingest.key_cache_ttl_s
    click.echo(
        f"Revoked write key {key_id} ({name!r}). Running ingest processes refuse it within "
        f"{ttl:g} s (TEND_INGEST__KEY_CACHE_TTL_S)."
    )


# -- accounts ---------------------------------------------------------------------------------


@click.group()
def accounts() -> None:
    """Manage customer accounts."""


@accounts.command("import")
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--outcomes",
    "outcomes_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Also record outcomes from this CSV or JSON file (docs/retention.md).",
)
def accounts_import(file: Path | None, outcomes_file: Path | None) -> None:
    """Load or update accounts from a CSV file, and record their outcomes.

    Columns: account_id (required), name, plan, seats, mrr, renewal_date, lifecycle_stage,
    created_at, csm_email, csm_slack, customer_emails (who receive the monthly report; several
    separated by ';'), champion (the user id of the account's champion).
    Outcomes (--outcomes): account_id, kind (cancellation, renewal, expansion, contraction),
    effective_on, reason, mrr_lost, new_mrr, new_term_end, mrr_delta. Both files go in one
    transaction: nothing is imported when any line is invalid (each problem is listed on a
    line of its own, with its line and column); re-importing changes nothing. The imported
    accounts are scored at once (docs/accounts.md has the format).
    """
    from services.cli.outcomes import describe, read_outcomes_file, record_outcomes_file
    from shared.accounts_csv import AccountsCsvError, import_accounts, read_accounts_csv

    if file is None and outcomes_file is None:
        raise ConfigFailure("give an accounts FILE, --outcomes FILE, or both")
    settings = load_settings()
    try:
        rows = read_accounts_csv(file) if file is not None else []
    except AccountsCsvError as err:
        # One problem a line (row and column), so a long file's errors can be read and fixed.
        click.echo(f"tend: {len(err.problems)} problem(s) in {file}; nothing imported:", err=True)
        for problem in err.problems:
            click.echo(f"  {problem}", err=True)
        raise click.exceptions.Exit(EXIT_FAILED) from None
    outcomes = read_outcomes_file(outcomes_file) if outcomes_file is not None else []
    config = load_tend_config(settings)
    policy = config.outcomes if outcomes_file is not None else None

    async def work() -> tuple[int, str | None]:
        async with open_transaction(settings.database_url) as session:
            n = await import_accounts(session, rows)
            if file is not None:
                audit.record(
                    session,
                    CLI,
                    "accounts.import",
                    target=f"file:{file.name}",
                    details={"accounts": n},
                )
            if outcomes_file is None:
                return n, None
            recorded = await record_outcomes_file(session, outcomes, outcomes_file, policy)
            audit.record(
                session,
                CLI,
                "outcomes.import",
                target=f"file:{outcomes_file.name}",
                details={
                    "outcomes": len(outcomes),
                    "inserted": recorded.result.inserted,
                    "updated": recorded.result.updated,
                },
            )
            return n, describe(recorded, outcomes_file)

    n, recorded = run_db(settings.database_url, work())
    if file is not None:
        click.echo(f"Imported {n} account(s) from {file}.")
    if recorded is not None:
        click.echo(recorded)
    if n:
        click.echo(_score_imported(settings, config))


def _score_imported(settings: Settings, config: TendConfig) -> str:
    """Score the imported (dirty) accounts now, not at the next sweep; a failure (the broker
    down) leaves them marked for the running scorer and is said, not raised."""
    from services.cli.rescore import score_now
    from shared.db.session import create_engine, create_sessionmaker

    async def work() -> tuple[int, int]:
        engine = create_engine(settings.database_url)
        try:
            return await score_now(settings, config, create_sessionmaker(engine), dirty_only=True)
        finally:
            await engine.dispose()

    try:
        scored, published = asyncio.run(work())
    except Exception as err:
        return (
            f"Could not score them now ({one_line(str(err)) or type(err).__name__}); "
            "the running scorer scores them on its next pass."
        )
    return f"Scored {scored} account(s) now; published {published} day score(s)."

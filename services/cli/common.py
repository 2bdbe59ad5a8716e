"""What every ``tend`` command shares: settings loading, failures and their exit codes, and
running database work.

Exit codes: 0 done, 1 failed (database unreachable, unknown key id, a service crashed),
2 bad configuration or usage, 3 the HTTP server could not start.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click
from pydantic import ValidationError
from pydantic_settings import SettingsError

from shared.config import ConfigError, TendConfig, load_config
from shared.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_STARTUP = 3


class Failure(click.ClickException):
    """A failure the user can act on: printed as one ``tend: ...`` line, never a traceback."""

    exit_code = EXIT_FAILED

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"tend: {one_line(self.format_message())}", err=True)


class ConfigFailure(Failure):
    """Bad configuration or usage; the message names the variable or key."""

    exit_code = EXIT_CONFIG


class StartupFailure(Failure):
    exit_code = EXIT_STARTUP


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def config_failure(message: str) -> ConfigFailure:
    return ConfigFailure(f"configuration error: {message}")


def _env_name(loc: tuple[int | str, ...]) -> str:
    return "TEND_" + "__".join(str(part) for part in loc).upper()


def load_settings() -> Settings:
    """The process settings from ``TEND_*``; a bad value fails naming its variable."""
    try:
        return Settings()
    except ValidationError as err:
        problems = [f"{_env_name(e['loc'])}: {e['msg']}" for e in err.errors()]
        raise config_failure("; ".join(problems)) from None
    except SettingsError as err:
        raise config_failure(str(err)) from None


def load_tend_config(settings: Settings) -> TendConfig:
    """The YAML file named by ``TEND_CONFIG`` (defaults when unset), validated now."""
    try:
        return load_config(settings.config)
    except ConfigError as err:
        raise config_failure(f"TEND_CONFIG {err}") from None


def display_url(database_url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"


@contextlib.contextmanager
def database_errors(database_url: str) -> Iterator[None]:
    """Database problems inside the block become a one-line failure (exit 1)."""
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

    try:
        yield
    except ArgumentError as err:
        raise config_failure(f"TEND_DATABASE_URL: {err}") from None
    except (SQLAlchemyError, CommandError, OSError) as err:
        # DBAPIError's own text carries the SQL and a link; the driver's message is the point.
        reason = err.orig if isinstance(err, DBAPIError) else err
        raise Failure(
            f"database error on {display_url(database_url)}: {one_line(str(reason))} "
            "(is TEND_DATABASE_URL right, and has `tend migrate` run?)"
        ) from None


def run_db(database_url: str, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to completion, with :func:`database_errors`."""
    with database_errors(database_url):
        return asyncio.run(work)


class TendGroup(click.Group):
    """Turns configuration errors raised deep inside a command into exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as err:
            raise config_failure(str(err)) from None


# -- database ---------------------------------------------------------------------------------


async def _revision(database_url: str) -> str | None:
    from alembic.migration import MigrationContext
    from sqlalchemy.engine import Connection

    from shared.db.session import create_engine

    def current(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(current)
    finally:
        await engine.dispose()


async def migrate_database(database_url: str) -> str:
    """Upgrade to head; returns a sentence saying what happened."""
    from shared.db.migrate import upgrade_async

    before = await _revision(database_url)
    await upgrade_async(database_url)
    after = await _revision(database_url)
    where = display_url(database_url)
    if before == after:
        return f"Database {where} is already at the latest revision ({after}); nothing to do."
    return f"Migrated database {where} from {before or 'an empty schema'} to revision {after}."


async def ensure_first_admin(settings: Settings) -> tuple[str, str] | None:
    """When nobody can sign in yet, an admin (``TEND_PEOPLE__FIRST_ADMIN_EMAIL``) with a random
    password: (email, password), to print once. None when someone exists."""
    from shared.people import audit, directory
    from shared.people.caller import CLI

    async with open_transaction(settings.database_url) as session:
        if await directory.count_people(session):
            return None
        password = directory.generate_password()
        email = settings.people.first_admin_email
        person = await directory.add_person(session, email, "Admin", "admin", password)
        audit.record(
            session,
            CLI,
            "person.add",
            target=f"person:{person.email}",
            details={"role": "admin", "first": True},
        )
        return person.email, password


def show_first_admin(email: str, password: str) -> None:
    click.echo("Created the first admin of the console (change or add people: tend users):")
    click.echo("")
    click.echo(f"    email:    {email}")
    click.echo(f"    password: {password}")
    click.echo("")


@contextlib.asynccontextmanager
async def open_transaction(database_url: str) -> AsyncIterator[AsyncSession]:
    """One transaction on an engine of its own (disposed after): for one-shot commands."""
    from shared.db.session import create_engine, create_sessionmaker, transaction

    engine = create_engine(database_url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            yield session
    finally:
        await engine.dispose()

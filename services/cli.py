"""The ``tend`` command line: one console script, one sub-command per process or admin task.

Adding a sub-command: decorate a function with ``@main.command()`` (or ``@<group>.command()``),
read configuration through :func:`load_settings` / :func:`load_tend_config` so bad values end
as a one-line error and exit code 2, and run async work with :func:`run_db` when it touches the
database. Background services of ``tend up`` go in :func:`embedded_services`.

Exit codes: 0 done, 1 failed (database unreachable, unknown key id, a service crashed),
2 bad configuration or usage, 3 the HTTP server could not start.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click
import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError

from shared.config import ConfigError, TendConfig, load_config
from shared.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from shared.bus.base import Bus

log = logging.getLogger("tend.cli")

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_STARTUP = 3


class Failure(click.ClickException):
    """A failure the user can act on: printed as one ``tend: ...`` line, never a traceback."""

    exit_code = EXIT_FAILED

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"tend: {_one_line(self.format_message())}", err=True)


class ConfigFailure(Failure):
    """Bad configuration or usage; the message names the variable or key."""

    exit_code = EXIT_CONFIG


class StartupFailure(Failure):
    exit_code = EXIT_STARTUP


def _one_line(text: str) -> str:
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


def _display_url(database_url: str) -> str:
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
            f"database error on {_display_url(database_url)}: {_one_line(str(reason))} "
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


@click.group(cls=TendGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tend-health", prog_name="tend")
def main() -> None:
    """tend: usage telemetry and customer health for SaaS vendors.

    Configuration comes from TEND_* environment variables (see README.md); the scoring model
    and alert rules from the YAML file named by TEND_CONFIG.
    """


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


async def _migrate(database_url: str) -> str:
    """Upgrade to head; returns a sentence saying what happened."""
    from shared.db.migrate import upgrade_async

    before = await _revision(database_url)
    await upgrade_async(database_url)
    after = await _revision(database_url)
    where = _display_url(database_url)
    if before == after:
        return f"Database {where} is already at the latest revision ({after}); nothing to do."
    return f"Migrated database {where} from {before or 'an empty schema'} to revision {after}."


@main.command()
def migrate() -> None:
    """Apply the database migrations (Alembic upgrade to head) on TEND_DATABASE_URL."""
    settings = load_settings()
    click.echo(run_db(settings.database_url, _migrate(settings.database_url)))


# -- write keys -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _transaction(database_url: str) -> AsyncIterator[AsyncSession]:
    from shared.db.session import create_engine, create_sessionmaker, transaction

    engine = create_engine(database_url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            yield session
    finally:
        await engine.dispose()


def _when(value: Any) -> str:
    return "-" if value is None else str(value.strftime("%Y-%m-%d %H:%M:%S"))


@main.group()
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
        async with _transaction(settings.database_url) as session:
            row, plaintext = await create_key(session, name)
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
        async with _transaction(settings.database_url) as session:
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
        async with _transaction(settings.database_url) as session:
            existing = await session.get(ApiKey, key_id)
            was_revoked = existing is not None and existing.revoked_at is not None
            row = await revoke_key(session, key_id)
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


# -- ingest -----------------------------------------------------------------------------------


def ingest_app_factory() -> FastAPI:
    """The ingest app for uvicorn (``factory=True``): each worker process builds its own."""
    from services.ingest.app import create_app
    from shared.logging import setup_logging

    settings = load_settings()
    setup_logging(settings.log_level)
    app = create_app(settings, config=load_tend_config(settings))
    _forget_metrics_at_exit()
    return app


def _forget_metrics_at_exit() -> None:
    """In a worker of ``tend ingest --workers N``: drop this worker's live gauges when it
    exits (uvicorn's spawned workers run atexit handlers on a clean exit)."""
    from shared.prometheus import mark_worker_dead, multiprocess_dir

    if multiprocess_dir() is not None:
        atexit.register(mark_worker_dead, os.getpid())


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1), help="Worker processes."
)
def ingest(host: str, port: int, workers: int) -> None:
    """Serve the ingest API (production: needs Kafka at TEND_KAFKA_BOOTSTRAP)."""
    settings = load_settings()
    load_tend_config(settings)
    if not settings.uses_kafka:
        raise ConfigFailure(
            "ingest needs a Kafka broker: set TEND_KAFKA_BOOTSTRAP (e.g. kafka:9092). "
            "The in-process bus is only for `tend up`, which runs every service in one process."
        )
    from shared.logging import setup_logging

    setup_logging(settings.log_level)
    metrics_dir = None
    if workers > 1:
        from shared.prometheus import prepare_multiprocess_dir

        # Before any worker starts: each one inherits it and writes its metrics there, and
        # every worker's /metrics answers with the sum over all of them.
        metrics_dir = prepare_multiprocess_dir()
    try:
        if workers == 1:
            from shared.service_app import run_server

            run_server("services.cli:ingest_app_factory", host, port)
        else:
            uvicorn.run(
                "services.cli:ingest_app_factory",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                lifespan="on",
                log_config=None,
            )
    finally:
        if metrics_dir is not None:
            from shared.prometheus import remove_multiprocess_dir

            remove_multiprocess_dir(metrics_dir)


# -- up: every service in one process ---------------------------------------------------------


@dataclass(slots=True)
class Embedded:
    """What the services of ``tend up`` share: one database, one bus, one stop signal."""

    settings: Settings
    config: TendConfig
    sessions: async_sessionmaker[AsyncSession]
    bus: Bus
    stopping: asyncio.Event


EmbeddedService = Callable[[Embedded], Coroutine[Any, Any, None]]
"""A background service of ``tend up``. It runs until ``stopping`` is set, then drains (finishes
its batch, flushes, commits) and returns. Raising stops the whole process with exit code 1."""


async def _embedded_scorer(env: Embedded) -> None:
    from services.scorer.app import build_service

    producer = env.bus.producer()
    await producer.start()
    try:
        service = build_service(env.settings, env.config, env.bus, env.sessions, producer, None)
        await service.run(env.stopping)
    finally:
        await producer.stop()


async def _embedded_alerts(env: Embedded) -> None:
    from services.alerts.app import build_service

    producer = env.bus.producer()
    await producer.start()
    try:
        service = build_service(env.settings, env.config, env.bus, env.sessions, producer, None)
        await service.run(env.stopping)
    finally:
        await producer.stop()


def embedded_services() -> dict[str, EmbeddedService]:
    """The background services ``tend up`` runs next to the HTTP server, by name."""
    return {"scorer": _embedded_scorer, "alerts": _embedded_alerts}


class EmbeddedServer(uvicorn.Server):
    """uvicorn's server for ``tend up``: the process owns the signals (so background services
    drain alongside the HTTP server), and :attr:`ready` is set once it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.ready.set()


async def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits when it cannot bind or its lifespan fails
        if not server.started:
            raise StartupFailure("the HTTP server did not start (see the log above)") from None
        raise Failure(f"the HTTP server exited with code {exc.code}") from None
    if not server.started:
        raise StartupFailure("the HTTP server did not start (see the log above)")


async def _announce(server: EmbeddedServer, url: str) -> None:
    await server.ready.wait()
    click.echo(f"tend is up at {url}  (API docs: {url}/docs, health: {url}/healthz)")
    click.echo(f"CSM console: {url}/console/  (sign in with the read API token above)")
    click.echo("Press Ctrl-C to stop.")


async def _ensure_write_key(sessions: async_sessionmaker[AsyncSession], url: str) -> None:
    from shared.db.keys import create_key, list_keys
    from shared.db.session import transaction

    async with transaction(sessions) as session:
        active = [k for k in await list_keys(session) if k.revoked_at is None]
        if active:
            click.echo(
                f"{len(active)} active write key(s) exist (tend keys list); "
                "create another with: tend keys create NAME"
            )
            return
        row, plaintext = await create_key(session, "default")
    click.echo(f"Created write key {row.id} ('default'). Store it now; it is not shown again:")
    click.echo("")
    click.echo(f"    {plaintext}")
    click.echo("")
    click.echo("Send an event with it:")
    click.echo(
        f"    curl -u '{plaintext}:' {url}/v1/track -H 'Content-Type: application/json' "
        """-d '{"userId": "u1", "event": "Signed In", "properties": {"account_id": "acme"}}'"""
    )
    click.echo("")


async def _supervise(server: EmbeddedServer, sock: socket.socket, env: Embedded, url: str) -> None:
    """Run the HTTP server and the background services until a signal or until one ends.

    Whatever ends first (a signal, the server, a crashed service), everything is asked to stop
    and awaited while it drains; a second signal cancels what is still running.
    """
    loop = asyncio.get_running_loop()
    tasks: dict[asyncio.Task[None], str] = {asyncio.create_task(_serve(server, sock)): "http"}
    for name, service in embedded_services().items():
        tasks[asyncio.create_task(service(env))] = name
    announce = asyncio.create_task(_announce(server, url))
    stop = asyncio.create_task(env.stopping.wait())

    def on_signal() -> None:
        if env.stopping.is_set():
            server.force_exit = True
            for task in tasks:
                task.cancel()
        env.stopping.set()

    handled = (signal.SIGINT, signal.SIGTERM)
    for sig in handled:
        with contextlib.suppress(NotImplementedError):  # no add_signal_handler on Windows
            loop.add_signal_handler(sig, on_signal)
    try:
        await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
        click.echo("tend is stopping...", err=True)
        env.stopping.set()
        server.should_exit = True
        _, late = await asyncio.wait(tasks, timeout=env.settings.shutdown_timeout_s)
        if late:
            log.warning(
                "%s did not drain within %gs (TEND_SHUTDOWN_TIMEOUT_S); giving up uncommitted "
                "work, which is read again on the next start",
                ", ".join(sorted(tasks[t] for t in late)),
                env.settings.shutdown_timeout_s,
            )
            for task in late:
                task.cancel()
            await asyncio.wait(late)
    finally:
        for sig in handled:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
        announce.cancel()
        stop.cancel()
        for task in tasks:
            task.cancel()
    for task, name in tasks.items():
        if task.cancelled():
            continue
        exc = task.exception()
        if isinstance(exc, Failure):
            raise exc
        if exc is not None:
            log.error("service %s crashed", name, exc_info=exc)
            raise Failure(f"service {name} crashed: {_one_line(repr(exc))}")


def _api_token(settings: Settings) -> str:
    """TEND_API_TOKEN, or a fresh one for this run (printed, so the user can call the API)."""
    if settings.api_token is not None:
        click.echo("Read API token: the value of TEND_API_TOKEN.")
        return settings.api_token.get_secret_value()
    import secrets

    token = secrets.token_urlsafe(32)  # 43 characters; TEND_API_TOKEN needs at least 32
    click.echo("Read API token for this run (set TEND_API_TOKEN to choose your own):")
    click.echo("")
    click.echo(f"    {token}")
    click.echo("")
    return token


async def _up(settings: Settings, config: TendConfig, host: str, port: int) -> None:
    from services.alerts.api import router as alerts_router
    from services.alerts.console.routes import router as console_router
    from services.ingest.app import create_app
    from services.scorer.api import router as accounts_router
    from shared.bus import create_bus
    from shared.db.session import create_engine, create_sessionmaker
    from shared.service_app import bind_port

    # The port first: a second `tend up` on a busy port must stop before it migrates, creates
    # a key or re-scores anything (it would change the running instance's data).
    try:
        sock = bind_port(host, port)
    except OSError as err:
        raise StartupFailure(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    url = f"http://{host}:{sock.getsockname()[1]}"
    with database_errors(settings.database_url):
        click.echo(await _migrate(settings.database_url))
    engine = create_engine(settings.database_url)
    try:
        sessions = create_sessionmaker(engine)
        with database_errors(settings.database_url):
            await _ensure_write_key(sessions, url)
        bus = create_bus(settings, sessions)
        try:
            env = Embedded(settings, config, sessions, bus, asyncio.Event())
            app = create_app(settings, bus=bus, config=config)
            token = _api_token(settings)
            app.state.sessions = sessions
            app.state.api_token = token
            app.include_router(accounts_router)
            app.include_router(alerts_router)
            app.state.config = config  # the console shades its charts with the model's bands
            app.state.console = settings.console
            app.include_router(console_router)  # /console, its stylesheet included
            server = EmbeddedServer(
                uvicorn.Config(app, host=host, port=port, lifespan="on", log_config=None)
            )
            await _supervise(server, sock, env, url)
        finally:
            await bus.close()
    finally:
        await engine.dispose()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
def up(host: str, port: int) -> None:
    """Run all of tend in one process on the embedded defaults (SQLite, in-process bus).

    Migrates the database, creates a first write key when none exists, then serves the API.
    """
    from shared.logging import setup_logging

    settings = load_settings()
    config = load_tend_config(settings)
    setup_logging(settings.log_level)
    # Alembic announces each of its plugins at INFO; `tend up` prints its own migration summary.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if settings.uses_kafka:
        click.echo(f"Using the Kafka broker at {settings.kafka_bootstrap} (TEND_KAFKA_BOOTSTRAP).")
    try:
        asyncio.run(_up(settings, config, host, port))
    except KeyboardInterrupt:  # before the signal handlers are in place (e.g. while migrating)
        raise click.exceptions.Exit(130) from None


# -- scorer -----------------------------------------------------------------------------------


def scorer_app_factory() -> FastAPI:
    """The scorer app for uvicorn (``factory=True``)."""
    from services.scorer.app import create_app
    from shared.logging import setup_logging

    settings = load_settings()
    setup_logging(settings.log_level)
    return create_app(settings, config=load_tend_config(settings))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535))
def scorer(host: str, port: int) -> None:
    """Run the scorer: events -> daily rollups -> health scores, and the read API.

    One process is one member of the consumer group; run more for more partitions.
    """
    settings = load_settings()
    load_tend_config(settings)
    if not settings.uses_kafka:
        raise ConfigFailure(
            "scorer needs a Kafka broker: set TEND_KAFKA_BOOTSTRAP (e.g. kafka:9092). "
            "The in-process bus is only for `tend up`, which runs every service in one process."
        )
    from shared.logging import setup_logging

    setup_logging(settings.log_level)
    from shared.service_app import run_server

    run_server("services.cli:scorer_app_factory", host, port)


# -- alerts -----------------------------------------------------------------------------------


def alerts_app_factory() -> FastAPI:
    """The alerts app for uvicorn (``factory=True``)."""
    from services.alerts.app import create_app
    from shared.logging import setup_logging

    settings = load_settings()
    setup_logging(settings.log_level)
    return create_app(settings, config=load_tend_config(settings))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8002, show_default=True, type=click.IntRange(0, 65535))
def alerts(host: str, port: int) -> None:
    """Run the alerts service: scores -> rules -> alert state -> Slack and email, and the
    alerts API.

    One process is one member of the consumer group; run more for more partitions.
    """
    settings = load_settings()
    load_tend_config(settings)
    if not settings.uses_kafka:
        raise ConfigFailure(
            "alerts needs a Kafka broker: set TEND_KAFKA_BOOTSTRAP (e.g. kafka:9092). "
            "The in-process bus is only for `tend up`, which runs every service in one process."
        )
    from shared.logging import setup_logging

    setup_logging(settings.log_level)
    from shared.service_app import run_server

    run_server("services.cli:alerts_app_factory", host, port)


def _parse_day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigFailure(f"--as-of: {value!r} is not a date (YYYY-MM-DD)") from None


@main.command()
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
    from services.scorer.sweep import Rescorer, describe
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


@main.group()
def accounts() -> None:
    """Manage customer accounts."""


@accounts.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def accounts_import(file: Path) -> None:
    """Load or update accounts from a CSV file.

    Columns: account_id (required), name, plan, seats, mrr, renewal_date, lifecycle_stage,
    created_at, csm_email, csm_slack, champion (the user id of the account's champion).
    Nothing is imported when any line is invalid.
    """
    from services.scorer.accounts_csv import AccountsCsvError, import_accounts, read_accounts_csv

    settings = load_settings()
    try:
        rows = read_accounts_csv(file)
    except AccountsCsvError as err:
        raise Failure(str(err)) from None

    async def work() -> int:
        async with _transaction(settings.database_url) as session:
            return await import_accounts(session, rows)

    n = run_db(settings.database_url, work())
    click.echo(f"Imported {n} account(s) from {file}. They are scored on the next sweep.")


# -- demo and reports -------------------------------------------------------------------------


@main.command()
@click.option(
    "--accounts", default=40, show_default=True, type=click.IntRange(1, 5000), help="Accounts."
)
@click.option(
    "--weeks", default=16, show_default=True, type=click.IntRange(6, 52), help="Weeks of history."
)
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="tend's URL.")
@click.option(
    "--write-key",
    envvar="TEND_WRITE_KEY",
    show_envvar=True,
    help="A write key: the one `tend up` printed, or `tend keys create demo`.",
)
@click.option(
    "--api-token",
    envvar="TEND_API_TOKEN",
    show_envvar=True,
    help="The API token: the demo sets each account's CSM with it, as an operator would.",
)
@click.option("--seed", default=1, show_default=True, type=int, help="Same seed, same data.")
@click.option("--gzip/--no-gzip", "use_gzip", default=True, show_default=True)
def demo(
    accounts: int,
    weeks: int,
    url: str,
    write_key: str | None,
    api_token: str | None,
    seed: int,
    use_gzip: bool,
) -> None:
    """Feed a running tend realistic accounts and WEEKS of usage, some drifting toward churn.

    Sends through the ingest HTTP API, like an SDK. For feature breadth and the key-feature
    alerts, run tend with the demo's key features: TEND_CONFIG=deploy/tend.yaml tend up
    (see docs/demo.md). Run it on a fresh database: the usage ends today.
    """
    import sys
    from datetime import UTC, datetime

    from services.demo import EXPECTED, KEY_FEATURES, DemoError, DemoSender, generate, plan_demo

    if not write_key:
        raise ConfigFailure(
            "--write-key (or TEND_WRITE_KEY) is required: use the key `tend up` printed at its "
            "first start, or create one with `tend keys create demo`"
        )
    now = datetime.now(UTC)
    plan = plan_demo(accounts, weeks, seed, now.date())
    sender = DemoSender(url, write_key, use_gzip=use_gzip)
    days = weeks * 7
    click.echo(
        f"Sending {accounts} accounts and {weeks} weeks of usage ({plan.start} to {plan.today}) "
        f"to {url} (seed {seed}).",
        err=True,
    )
    try:
        if api_token:
            n = sender.set_profiles(plan.accounts, api_token)
            click.echo(f"Set the profile and CSM of {n} accounts (PATCH /v1/accounts).", err=True)
        else:
            click.echo(
                "No --api-token (TEND_API_TOKEN): accounts get no CSM, so alerts take the "
                "default route (TEND_SLACK_WEBHOOK_URL, TEND_ALERTS__DEFAULT_EMAILS).",
                err=True,
            )
        with click.progressbar(
            generate(plan, now),
            length=days,
            label="Sending usage",
            file=sys.stderr,
            item_show_func=lambda item: None if item is None else f"{item[0]}",
        ) as days_of_calls:
            for _day, calls in days_of_calls:
                sender.send_day(calls)
    except DemoError as err:
        raise Failure(f"demo stopped after {sender.stats.events} events: {err}") from None
    finally:
        sender.close()
    stats = sender.stats
    click.echo("")
    click.echo(
        f"Sent {stats.events} events in {stats.requests} batches in {stats.seconds:.1f} s "
        f"({stats.events_per_s:,.0f} events/s, {stats.retries} retries)."
    )
    click.echo("")
    click.echo("Accounts by archetype (expected band once scored; alerts it shows):")
    for archetype, members in plan.by_archetype().items():
        if not members:
            continue
        band, alerts = EXPECTED[archetype]
        click.echo(f"  {archetype.value:<17} {len(members):>3}  {band:<7} {alerts}")
        click.echo(f"  {'':<17}      e.g. {', '.join(a.account_id for a in members[:3])}")
    click.echo("")
    click.echo("The scorer backfills a score per account-day; give it a few seconds. Then:")
    click.echo(f"    curl -H 'Authorization: Bearer <token>' '{url}/v1/accounts?sort=score'")
    click.echo(f"    console: {url}/console/  (sign in with the API token `tend up` printed)")
    click.echo(
        f"Key features used: {', '.join(KEY_FEATURES)}. Unless tend runs with them configured "
        "(TEND_CONFIG=deploy/tend.yaml), feature breadth is left out and no "
        "feature_unused alerts open."
    )


@main.command()
@click.option("--month", metavar="YYYY-MM", help="The month (UTC); default: the last complete one.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the HTML files. [default: ./tend-reports/YYYY-MM]",
)
@click.option("--email", is_flag=True, help="Also send each report to the account's CSM (SMTP).")
def report(month: str | None, out: Path | None, email: bool) -> None:
    """Render the monthly value report of every account as HTML (and email it to the CSMs).

    Mail goes to the account's csm_email, else to TEND_ALERTS__DEFAULT_EMAILS, through the SMTP
    server of TEND_SMTP_HOST / _PORT / _USER / _PASSWORD / _FROM / _TLS.
    """
    from datetime import UTC, datetime
    from email.message import EmailMessage

    from services.alerts.routing import Defaults, email_refusal
    from services.scorer.report import (
        MonthError,
        build_report,
        last_month,
        parse_month,
        render_html,
        report_email,
        report_filename,
        send_reports,
    )
    from shared.db.models import Account

    settings = load_settings()
    config = load_tend_config(settings)
    if email and not settings.smtp_host:
        raise ConfigFailure(
            "--email needs an SMTP server: set TEND_SMTP_HOST (and TEND_SMTP_PORT, "
            "TEND_SMTP_USER, TEND_SMTP_PASSWORD, TEND_SMTP_FROM, TEND_SMTP_TLS as needed)"
        )
    today = datetime.now(UTC).date()
    try:
        first = parse_month(month, today) if month is not None else last_month(today)
    except MonthError as err:
        raise ConfigFailure(f"--{err}") from None
    directory = out if out is not None else Path("tend-reports") / first.strftime("%Y-%m")
    keys = list(config.key_features) or None
    defaults = settings.alerts.default_email_list
    # A CSM address is account data: the domain list of alert mail applies here too.
    allowed = Defaults(email_domains=tuple(settings.alerts.email_domain_list))

    async def work() -> tuple[int, list[EmailMessage], list[str]]:
        from sqlalchemy import select

        from shared.db.session import create_engine, create_sessionmaker

        engine = create_engine(settings.database_url)
        written, messages, skipped = 0, [], []
        paths: set[Path] = set()
        try:
            async with create_sessionmaker(engine)() as session:
                accounts = await session.scalars(select(Account).order_by(Account.account_id))
                for account in accounts.all():
                    built = await build_report(session, account, first, today, keys)
                    page = render_html(built)
                    path = directory / report_filename(built)
                    if path in paths:  # the name's hash makes this a 48-bit coincidence
                        raise Failure(f"two accounts map to the report file {path}")
                    paths.add(path)
                    path.write_text(page, encoding="utf-8")
                    click.echo(str(path))
                    written += 1
                    if not email:
                        continue
                    csm = account.csm_email
                    refusal = email_refusal(csm, allowed) if csm else None
                    if refusal is not None:
                        click.echo(
                            f"{account.account_id}: not mailing csm_email {csm} ({refusal}); "
                            "the default addresses get it",
                            err=True,
                        )
                        csm = None
                    to = [csm] if csm else defaults
                    if not to:
                        skipped.append(account.account_id)
                        continue
                    messages.append(report_email(built, page, settings.smtp_from, to))
        finally:
            await engine.dispose()
        return written, messages, skipped

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise Failure(f"--out {directory}: {err.strerror}") from None
    written, messages, skipped = run_db(settings.database_url, work())
    click.echo(f"Wrote {written} report(s) for {first:%Y-%m} to {directory}/")
    if not email:
        return
    try:
        results = asyncio.run(send_reports(settings, messages))
    except (OSError, TimeoutError) as err:
        raise Failure(
            f"SMTP server {settings.smtp_host}:{settings.smtp_port}: {_one_line(str(err))}"
        ) from None
    except Exception as err:  # aiosmtplib's connect/login errors
        raise Failure(f"SMTP server {settings.smtp_host}:{settings.smtp_port}: {err}") from None
    failed = [(m["To"], error) for m, error in results if error is not None]
    click.echo(f"Emailed {len(results) - len(failed)} report(s) to the accounts' CSMs.")
    if skipped:
        click.echo(
            f"Not emailed (no csm_email, no TEND_ALERTS__DEFAULT_EMAILS): {', '.join(skipped)}"
        )
    if failed:
        raise Failure(
            f"{len(failed)} report(s) not accepted by the SMTP server: "
            + "; ".join(f"{to}: {error}" for to, error in failed)
        )


if __name__ == "__main__":
    main()

"""``tend up``: every service in one process on the embedded defaults (SQLite, in-process bus):
the ingest app with the web service's app (the same one ``tend web`` serves: read API, alerts
API, console, reports) mounted beside it, and the scorer and alerts services in the background,
supervised together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import uvicorn
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Scope
from uvicorn.loops.auto import auto_loop_factory

from services.cli.common import (
    Failure,
    StartupFailure,
    database_errors,
    ensure_first_admin,
    load_settings,
    load_tend_config,
    migrate_database,
    one_line,
    show_first_admin,
)
from shared.config import TendConfig
from shared.settings import MIN_API_TOKEN_CHARS, Settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from shared.bus.base import Bus, Producer
    from shared.clock import Clock
    from shared.service_app import BackgroundService

log = logging.getLogger("tend.cli")


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


ServiceBuilder = Callable[
    [Settings, TendConfig, "Bus", "async_sessionmaker[AsyncSession]", "Producer", "Clock | None"],
    "BackgroundService",
]
"""A service module's ``build_service``: what its process runs in its app's lifespan."""


async def _run_embedded(env: Embedded, *, build: ServiceBuilder) -> None:
    producer = env.bus.producer()
    await producer.start()
    try:
        service = build(env.settings, env.config, env.bus, env.sessions, producer, None)
        await service.run(env.stopping)
    finally:
        await producer.stop()


def embedded_services() -> dict[str, EmbeddedService]:
    """The background services ``tend up`` runs next to the HTTP server, by name."""
    from services.alerts.app import build_service as build_alerts
    from services.scorer.app import build_service as build_scorer

    return {
        "scorer": partial(_run_embedded, build=build_scorer),
        "alerts": partial(_run_embedded, build=build_alerts),
        "reports": _run_reports,
    }


async def _run_reports(env: Embedded) -> None:
    """The monthly customer reports (TEND_REPORTS__SEND_DAY), as ``tend web`` sends them."""
    from services.web.reports.schedule import ReportScheduler

    if env.settings.reports.send_day is None:
        await env.stopping.wait()
        return
    await ReportScheduler(env.sessions, env.settings, env.config).run(env.stopping)


def up_app(
    settings: Settings,
    config: TendConfig,
    *,
    bus: Bus | None = None,
    sessions: async_sessionmaker[AsyncSession] | None = None,
    api_token: str | None = None,
) -> FastAPI:
    """The app ``tend up`` serves: the ingest app, with the web service's app (built by the
    same ``services.web.app.create_app`` as ``tend web``'s) mounted at the root for every path
    ingest does not serve. Given ``sessions`` the web app needs no lifespan of its own (a
    mounted app's lifespan never runs). ``/openapi.json`` and ``/docs`` describe both."""
    from services.ingest.app import create_app as create_ingest_app
    from services.web.app import create_app as create_web_app

    app = create_ingest_app(settings, bus=bus, config=config)
    web = create_web_app(settings, config=config, sessions=sessions, api_token=api_token)
    app.router.routes.append(Beside(web))  # after ingest's routes: they match first
    _describe_both(app, web)
    return app


class Beside(Mount):
    """The app mounted at the root, claiming only the paths it has a route for. A plain root
    mount would take every request no route of the host matched in full, so a known ingest
    path asked with another method (``GET /v1/batch``) would get the mounted app's 404 instead
    of the host's 405."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__("", app=app)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is Match.FULL:
            inner = {**scope, **child}
            if all(route.matches(inner)[0] is Match.NONE for route in self.routes):
                return Match.NONE, {}
        return match, child


def _describe_both(app: FastAPI, mounted: FastAPI) -> None:
    """``app``'s OpenAPI document gains the paths and components of the app mounted in it."""
    own = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = own()
        other = mounted.openapi()
        document.setdefault("paths", {}).update(other.get("paths", {}))
        components = document.setdefault("components", {})
        for section, entries in other.get("components", {}).items():
            components.setdefault(section, {}).update(entries)
        if "tags" in other:
            known = {tag["name"] for tag in document.get("tags", [])}
            tags = [tag for tag in other["tags"] if tag["name"] not in known]
            document["tags"] = [*document.get("tags", []), *tags]
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


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
    click.echo(f"CSM console: {url}/console/  (sign in with your email and password)")
    click.echo("Press Ctrl-C to stop.")


async def _ensure_write_key(sessions: async_sessionmaker[AsyncSession], url: str) -> None:
    from shared.db.keys import create_key, list_keys
    from shared.db.session import transaction

    async with transaction(sessions) as session:
        active = [k for k in await list_keys(session) if k.revoked_at is None]
        if active:
            named = ", ".join(f"{k.id} {k.name!r} ({k.prefix}...)" for k in active)
            click.echo(f"Active write keys: {named} (tend keys list).")
            click.echo(
                "  Only a key's hash is stored, so a key is shown once, when it is created. "
                "Lost it? Create another with: tend keys create NAME (and revoke the old one: "
                "tend keys revoke ID)."
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
        log.info("tend is stopping...")
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
            raise Failure(f"service {name} crashed: {one_line(repr(exc))}")


TOKEN_FILE = "tend-api-token"
"""Where ``tend up`` keeps the API token it made, in the data folder (beside the SQLite file)."""


def data_folder(database_url: str) -> Path:
    """The folder of the SQLite database file (``tend up``'s data), else the current one."""
    from sqlalchemy.engine import make_url

    try:
        url = make_url(database_url)
    except Exception:
        return Path.cwd()
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(str(url.database)).expanduser().resolve().parent
    return Path.cwd()


def _api_token(settings: Settings) -> str:
    """TEND_API_TOKEN, else the token kept in the data folder (made and kept on the first
    start): the same token on every start, so a restart keeps the console signed in (its
    sessions are signed with the token). Printed, so the user can call the API."""
    if settings.api_token is not None:
        click.echo("Admin API token: the value of TEND_API_TOKEN.")
        return settings.api_token.get_secret_value()
    import secrets

    path = data_folder(settings.database_url) / TOKEN_FILE
    try:
        token = path.read_text().strip() if path.is_file() else ""
    except OSError:
        token = ""
    if len(token) >= MIN_API_TOKEN_CHARS:
        click.echo(f"Admin API token (kept in {path}; set TEND_API_TOKEN to choose your own):")
    else:
        token = secrets.token_urlsafe(32)  # 43 characters; TEND_API_TOKEN needs at least 32
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(token + "\n")
            kept = f"kept in {path}, so restarts keep the console signed in"
        except OSError as err:
            kept = f"for this run only: cannot write {path}: {err.strerror or err}"
        click.echo(f"Admin API token ({kept}; set TEND_API_TOKEN to choose your own):")
    click.echo("")
    click.echo(f"    {token}")
    click.echo("")
    return token


async def _up(settings: Settings, config: TendConfig, host: str, port: int) -> None:
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
        click.echo(await migrate_database(settings.database_url))
        first = await ensure_first_admin(settings)
    if first is not None:
        show_first_admin(*first)
    engine = create_engine(settings.database_url)
    try:
        sessions = create_sessionmaker(engine)
        with database_errors(settings.database_url):
            await _ensure_write_key(sessions, url)
        bus = create_bus(settings, sessions)
        try:
            env = Embedded(settings, config, sessions, bus, asyncio.Event())
            token = _api_token(settings)
            app = up_app(settings, config, bus=bus, sessions=sessions, api_token=token)
            server = EmbeddedServer(
                uvicorn.Config(app, host=host, port=port, lifespan="on", log_config=None)
            )
            await _supervise(server, sock, env, url)
        finally:
            await bus.close()
    finally:
        await engine.dispose()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
def up(host: str, port: int) -> None:
    """Run all of tend in one process on the embedded defaults (SQLite, in-process bus).

    Migrates the database, creates a first write key when none exists, then serves the API.
    """
    from shared.logging import configure_logging

    settings = load_settings()
    config = load_tend_config(settings)
    configure_logging(settings, "up")
    # Alembic announces its context and each step at INFO; `tend up` prints one line saying
    # what the migration did, before its banner.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if settings.uses_kafka:
        click.echo(f"Using the Kafka broker at {settings.kafka_bootstrap} (TEND_KAFKA_BOOTSTRAP).")
    try:
        with asyncio.Runner(loop_factory=auto_loop_factory()) as runner:
            runner.run(_up(settings, config, host, port))
    except KeyboardInterrupt:  # before the signal handlers are in place (e.g. while migrating)
        raise click.exceptions.Exit(130) from None

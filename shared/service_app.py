"""What the consumer processes (``tend scorer``, ``tend alerts``) share as FastAPI apps: a
lifespan that runs the service in the background, and the health, readiness and metrics routes
(the web service's too); and how every tend server process runs uvicorn.

Shutdown is bounded: on SIGTERM the lifespan sets the service's ``stop`` event and waits up to
``TEND_SHUTDOWN_TIMEOUT_S`` (default 10 s) for it to drain (finish the batch in hand, flush,
commit). A service still busy then (a database that hangs) is cancelled: its batch was not
committed, so it is read again on the next start and nothing is lost. A process that drained
exits with code 0 (:class:`DrainingServer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import Bus, create_bus, default_topic_specs
from shared.bus.base import Producer
from shared.db.session import create_engine, create_sessionmaker
from shared.prometheus import render_metrics
from shared.settings import Settings

log = logging.getLogger(__name__)


class BackgroundService(Protocol):
    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then drain (finish, flush, commit) and return."""
        ...


ServiceFactory = Callable[[Bus, async_sessionmaker[AsyncSession], Producer], BackgroundService]


def service_lifespan(
    settings: Settings, bus: Bus | None, name: str, build: ServiceFactory
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan that opens the database and the bus (the one given, else the one the
    settings name, which it then also closes), creates missing topics, and runs the service
    ``build`` makes until shutdown, when the service is stopped and awaited while it drains."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        sessions = create_sessionmaker(engine)
        own_bus = bus is None
        the_bus = create_bus(settings, sessions) if bus is None else bus
        producer = the_bus.producer()
        stop = asyncio.Event()
        task: asyncio.Task[None] | None = None
        try:
            await producer.start()
            await producer.ensure_topics(default_topic_specs(settings))
            service = build(the_bus, sessions, producer)
            app.state.sessions = sessions
            app.state.producer = producer
            app.state.service = service
            task = asyncio.create_task(service.run(stop), name=name)
            yield
        finally:
            stop.set()
            if task is not None:
                await drain(task, name, settings.shutdown_timeout_s)
            await producer.stop()
            if own_bus:
                await the_bus.close()
            await engine.dispose()

    return lifespan


CANCEL_GRACE_S = 5.0
"""How long a cancelled service may take to unwind (roll back, leave the group)."""


async def drain(task: asyncio.Task[None], name: str, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``task`` (already told to stop) to finish; past that,
    cancel it. True when it finished on its own without an error."""
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        log.warning(
            "the %s service did not drain within %gs (TEND_SHUTDOWN_TIMEOUT_S); giving up "
            "the batch in hand, uncommitted: it is read again on the next start",
            name,
            timeout_s,
        )
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
        return False
    if task.cancelled():
        return False
    err = task.exception()
    if err is not None:
        log.error("the %s service stopped with an error", name, exc_info=err)
        return False
    return True


async def run_loops(stop: asyncio.Event, loops: dict[str, Coroutine[Any, Any, None]]) -> None:
    """Run a service's loops side by side until ``stop``. A loop that fails sets ``stop`` and
    its error is raised once the others have drained; cancelling this cancels every loop."""
    tasks = [asyncio.create_task(coro, name=name) for name, coro in loops.items()]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        stop.set()
        await asyncio.wait(tasks)
        for t in tasks:
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
    finally:
        stop.set()
        for t in tasks:
            t.cancel()  # a no-op on finished tasks; the rest were abandoned by a cancellation
        await asyncio.wait(tasks, timeout=CANCEL_GRACE_S)


class DrainingServer(uvicorn.Server):
    """uvicorn's server, but a process that shut down cleanly after SIGTERM or SIGINT exits
    with code 0: uvicorn re-raises the signal once it is done, so the process would end as
    "killed by SIGTERM" (-15), which supervisors and CI count as a crash. A failed lifespan
    shutdown keeps uvicorn's behaviour."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            yield
            lifespan = getattr(self, "lifespan", None)
            if not getattr(lifespan, "shutdown_failed", False):
                captured = getattr(self, "_captured_signals", None)
                if isinstance(captured, list):
                    captured.clear()


def bind_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, for uvicorn to listen on.

    uvicorn binds only after the app's lifespan has started, that is after the service has
    begun consuming and writing; a process that then finds its port busy would already have
    changed the database. Binding first makes a busy port end the process before it writes.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def run_server(app_factory: str, host: str, port: int) -> None:
    """Serve ``app_factory`` (``module:function``) with one uvicorn process until a signal."""
    try:
        sock = bind_port(host, port)
    except OSError as err:
        print(f"tend: cannot listen on {host}:{port}: {err.strerror or err}", file=sys.stderr)
        sys.exit(3)  # uvicorn's STARTUP_FAILURE
    config = uvicorn.Config(
        app_factory, factory=True, host=host, port=port, lifespan="on", log_config=None
    )
    server = DrainingServer(config)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE: could not bind, or the lifespan failed


def add_ops_routes(app: FastAPI, *, broker: bool = True) -> None:
    """``/healthz`` (alive), ``/readyz`` (the database answers, and the broker when ``broker``:
    the web service has none to ask about), ``/metrics``. The database is
    ``app.state.sessions``, the broker ``app.state.producer``."""

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        problems = []
        try:
            async with request.app.state.sessions() as session:
                await session.execute(text("SELECT 1"))
        except Exception as err:
            problems.append(f"database: {type(err).__name__}")
        if broker and not await request.app.state.producer.ping():
            problems.append("bus: broker not reachable")
        if problems:
            return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        content, media_type = render_metrics()
        return Response(content, media_type=media_type)

"""What the consumer processes (``tend scorer``, ``tend alerts``) share as FastAPI apps: a
lifespan that runs the service in the background, and the health, readiness and metrics routes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

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
                try:
                    await task
                except Exception:
                    log.exception("the %s service stopped with an error", name)
            await producer.stop()
            if own_bus:
                await the_bus.close()
            await engine.dispose()

    return lifespan


def add_ops_routes(app: FastAPI) -> None:
    """``/healthz`` (alive), ``/readyz`` (database and broker answer), ``/metrics``."""

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
        if not await request.app.state.producer.ping():
            problems.append("bus: broker not reachable")
        if problems:
            return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        content, media_type = render_metrics()
        return Response(content, media_type=media_type)

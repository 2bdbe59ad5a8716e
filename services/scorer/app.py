"""The scorer process (``tend scorer``): the background consumer and re-scorer, plus the read
API, health, readiness and metrics on one port."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.api import router
from services.scorer.consumer import ScorerService
from shared.bus import Bus, create_bus, default_topic_specs
from shared.bus.base import Producer
from shared.clock import Clock, SystemClock
from shared.config import TendConfig, load_config
from shared.db.session import create_engine, create_sessionmaker
from shared.prometheus import render_metrics
from shared.settings import Settings

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    bus: Bus | None = None,
    config: TendConfig | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """The scorer app. Its lifespan opens the database and the bus, creates missing topics
    and runs :class:`ScorerService` until shutdown, when the service drains and commits."""
    tend_config = config if config is not None else load_config(settings.config)
    if settings.api_token is None:
        log.warning("TEND_API_TOKEN is not set: the read API refuses every request")

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
            service = build_service(settings, tend_config, the_bus, sessions, producer, clock)
            app.state.sessions = sessions
            app.state.producer = producer
            app.state.service = service
            task = asyncio.create_task(service.run(stop), name="scorer")
            yield
        finally:
            stop.set()
            if task is not None:
                try:
                    await task
                except Exception:
                    log.exception("the scorer stopped with an error")
            await producer.stop()
            if own_bus:
                await the_bus.close()
            await engine.dispose()

    app = FastAPI(title="tend scorer", version="1", lifespan=lifespan)
    app.state.api_token = settings.api_token.get_secret_value() if settings.api_token else None
    app.include_router(router)
    add_ops_routes(app)
    return app


def build_service(
    settings: Settings,
    config: TendConfig,
    bus: Bus,
    sessions: async_sessionmaker[AsyncSession],
    producer: Producer,
    clock: Clock | None,
) -> ScorerService:
    return ScorerService(
        bus,
        sessions,
        producer,
        config,
        clock or SystemClock(),
        max_records=settings.scorer.batch_max_records,
        max_wait_s=settings.scorer.batch_max_wait_s,
        sweep_interval_s=settings.scorer.sweep_interval_s,
        dedup_window=timedelta(days=settings.scorer.dedup_window_days),
        backfill_days=settings.scorer.backfill_days,
    )


def add_ops_routes(app: FastAPI) -> None:
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

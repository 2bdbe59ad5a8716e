"""The ingest service: a FastAPI app that puts Segment-spec calls on ``tend.events.v1``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from services.ingest.cors import TrackingCors
from services.ingest.dispatch import TrackingDispatch
from services.ingest.metrics import RequestMetricsMiddleware
from services.ingest.routes import TRACKING_PATHS, Ingestor, router
from services.ingest.schemas import request_schemas
from shared.api_errors import install_error_handlers
from shared.bus import Bus, BusUnavailable, create_bus, default_topic_specs
from shared.bus.base import Producer
from shared.config import TendConfig, load_config
from shared.db.session import create_engine, create_sessionmaker
from shared.request_id import RequestIdMiddleware
from shared.retry import Backoff
from shared.settings import Settings

log = logging.getLogger(__name__)

DESCRIPTION = """\
Segment-compatible tracking API: point any Segment or RudderStack SDK at this host.
Send the write key as the HTTP Basic user (empty password), in `X-Write-Key`, or as
`writeKey` in the body. An answer of 200 means the broker has stored every accepted event.
Errors keep Segment's body, `{"success": false, "error": "..."}`, with tend's `code` and
`field` beside it (docs/api.md).
"""


async def _connect(producer: Producer, settings: Settings) -> None:
    await producer.start()
    await producer.ensure_topics(default_topic_specs(settings))


async def _keep_connecting(producer: Producer, settings: Settings) -> None:
    # Cancelled by the lifespan at shutdown, so the sleep needs no stop event.
    delays = Backoff(initial_s=1.0, max_s=30.0).delays()
    delay = delays()
    while True:
        await asyncio.sleep(delay)
        try:
            await _connect(producer, settings)
        except Exception as err:
            delay = delays()
            log.warning("broker still unavailable (%s); next try in %.0fs", err, delay)
        else:
            log.info("broker reachable; topics ensured")
            return


def create_app(
    settings: Settings, *, bus: Bus | None = None, config: TendConfig | None = None
) -> FastAPI:
    """The ingest app. Its lifespan opens the database, starts a producer on ``bus`` (or on
    the bus the settings name, which it then also closes) and creates missing topics; the
    app serves requests only after all of that succeeded."""
    tend_config = config if config is not None else load_config(settings.config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        sessions = create_sessionmaker(engine)
        own_bus = bus is None
        the_bus = create_bus(settings, sessions) if bus is None else bus
        producer = the_bus.producer()
        connector: asyncio.Task[None] | None = None
        try:
            try:
                await _connect(producer, settings)
            except BusUnavailable as err:
                # Serve anyway: /readyz says 503 and every call answers 503 + Retry-After
                # until the broker is back, while this task keeps trying to connect.
                log.warning("broker unavailable at start (%s); retrying in the background", err)
                connector = asyncio.create_task(_keep_connecting(producer, settings))
            app.state.ingest = Ingestor.build(settings.ingest, tend_config, producer, sessions)
            # Everything loaded so far lives as long as the process; keeping it out of the
            # collector's full passes makes those passes (triggered by every batch's many
            # small objects) much cheaper.
            gc.freeze()
            log.info("ingest ready")
            yield
        finally:
            if connector is not None:
                connector.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await connector
            await producer.stop()
            if own_bus:
                await the_bus.close()
            await engine.dispose()

    app = FastAPI(
        title="tend ingest",
        version="1",
        description=DESCRIPTION,
        openapi_tags=[
            {
                "name": "tracking",
                "description": "Segment-spec calls; authenticated by a write key.",
            },
            {"name": "operations", "description": "Liveness, readiness and Prometheus metrics."},
        ],
        lifespan=lifespan,
    )
    app.include_router(router)
    # Innermost: the tracking calls skip FastAPI's routing layers (everything else reaches it).
    app.add_middleware(TrackingDispatch)
    # Only the tracking paths: `tend up` serves the read and alerts APIs and the console from
    # this same app, and those must not be callable from other origins.
    app.add_middleware(TrackingCors, origins=settings.ingest.cors_origin_list, paths=TRACKING_PATHS)
    app.add_middleware(RequestMetricsMiddleware)
    # Outermost: every line logged while a request is handled carries its id.
    app.add_middleware(RequestIdMiddleware)

    # Errors the routes do not answer themselves (a wrong method, an unknown path): Segment's
    # shape on the tracking paths (SDKs call only those), tend's elsewhere.
    install_error_handlers(app, segment_paths=TRACKING_PATHS)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, model_schema in request_schemas().items():
                components.setdefault(name, model_schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app

"""The web app: read API, alerts API, console and reports, with health, readiness and metrics.

One factory for ``tend web`` (its own process: the lifespan opens the database from
``TEND_DATABASE_URL`` and disposes it) and ``tend up`` (which passes its ``sessions`` and API
token, and mounts the app beside ingest: no lifespan then). It needs only the database.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.web.api.accounts import router as accounts_router
from services.web.api.alerts import router as alerts_router
from services.web.console.routes import router as console_router
from shared.api_errors import install_error_handlers
from shared.clock import Clock
from shared.config import TendConfig, load_config
from shared.db.session import create_engine, create_sessionmaker
from shared.prometheus import render_metrics
from shared.request_id import RequestIdMiddleware
from shared.settings import Settings

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    config: TendConfig | None = None,
    sessions: async_sessionmaker[AsyncSession] | None = None,
    clock: Clock | None = None,
    api_token: str | None = None,
) -> FastAPI:
    """The web app. ``config`` (default: ``TEND_CONFIG``'s file) gives the console its bands
    and the reports their key features; ``api_token`` (default: ``TEND_API_TOKEN``) guards the
    APIs and the console sign-in: without one both refuse every request."""
    tend_config = config if config is not None else load_config(settings.config)
    token = api_token
    if token is None and settings.api_token is not None:
        token = settings.api_token.get_secret_value()
    if token is None:
        log.warning("TEND_API_TOKEN is not set: the APIs and the console refuse every request")

    app = FastAPI(
        title="tend web",
        version="1",
        lifespan=_own_database(settings) if sessions is None else None,
    )
    app.state.api_token = token
    app.state.config = tend_config
    app.state.console = settings.console
    if sessions is not None:
        app.state.sessions = sessions
    if clock is not None:
        app.state.clock = clock
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(accounts_router)
    app.include_router(alerts_router)
    # The console serves /console/static itself (Starlette's StaticFiles, with its cache and
    # nosniff headers), in this app and in any other that includes its router.
    app.include_router(console_router)
    add_web_ops_routes(app)
    return app


def _own_database(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan that opens the database ``settings`` name and disposes it at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        app.state.sessions = create_sessionmaker(engine)
        try:
            yield
        finally:
            await engine.dispose()

    return lifespan


def add_web_ops_routes(app: FastAPI) -> None:
    """``/healthz`` (alive), ``/readyz`` (the database answers), ``/metrics``: the web service
    has no broker and no background service to ask about."""

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        try:
            async with request.app.state.sessions() as session:
                await session.execute(text("SELECT 1"))
        except Exception as err:
            problems = [f"database: {type(err).__name__}"]
            return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        content, media_type = render_metrics()
        return Response(content, media_type=media_type)

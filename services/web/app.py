"""The web app: read API, alerts API, console and reports, with health, readiness and metrics.

One factory for ``tend web`` (its own process: the lifespan opens the database from
``TEND_DATABASE_URL``, runs the monthly report schedule when ``TEND_REPORTS__SEND_DAY`` is set,
and at shutdown stops it and disposes the database) and ``tend up`` (which passes its
``sessions`` and API token, and mounts the app beside ingest: no lifespan then; it runs the
schedule itself). It needs only the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.web.api.accounts import router as accounts_router
from services.web.api.alerts import router as alerts_router
from services.web.api.events import router as events_router
from services.web.api.exports import router as exports_router
from services.web.api.outcomes import router as outcomes_router
from services.web.api.people import router as people_router
from services.web.api.retention import router as retention_router
from services.web.api.schemas import OPENAPI_TAGS
from services.web.api.slack import router as slack_router
from services.web.console.exports import router as console_exports_router
from services.web.console.oidc import OidcClient
from services.web.console.oidc import router as oidc_router
from services.web.console.people import router as console_people_router
from services.web.console.routes import router as console_router
from shared.api_errors import install_error_handlers
from shared.clock import Clock
from shared.config import TendConfig, load_config
from shared.db.session import create_engine, create_sessionmaker
from shared.request_id import RequestIdMiddleware
from shared.service_app import add_ops_routes
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
    and the reports their key features; ``api_token`` (default: ``TEND_API_TOKEN``) is the
    admin token of the APIs (for automation) and keys the console's cookie signatures: without
    one the console refuses every sign-in and the APIs take only personal tokens."""
    tend_config = config if config is not None else load_config(settings.config)
    token = api_token
    if token is None and settings.api_token is not None:
        token = settings.api_token.get_secret_value()
    if token is None:
        log.warning("TEND_API_TOKEN is not set: the console is closed; the APIs take only tokens")

    app = FastAPI(
        title="tend web",
        version="1",
        description="Read API and alerts API (Bearer `TEND_API_TOKEN` or a personal API token), "
        "console and reports. "
        'Errors: `{"error": {"code", "message", "field"}}` (docs/api.md).',
        openapi_tags=OPENAPI_TAGS,
        lifespan=_own_database(settings, tend_config, clock) if sessions is None else None,
    )
    app.state.api_token = token
    app.state.config = tend_config
    app.state.console = settings.console
    app.state.people = settings.people
    if settings.oidc.enabled:
        app.state.oidc = OidcClient(settings.oidc)
        app.state.oidc_name = settings.oidc.name
    app.state.slack_signing_secret = settings.slack.signing_secret
    if sessions is not None:
        app.state.sessions = sessions
    if clock is not None:
        app.state.clock = clock
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(accounts_router)
    app.include_router(events_router)
    app.include_router(alerts_router)
    app.include_router(outcomes_router)
    app.include_router(retention_router)
    app.include_router(exports_router)
    app.include_router(people_router)
    app.include_router(slack_router)
    # The console serves /console/static itself (Starlette's StaticFiles, with its cache and
    # nosniff headers), in this app and in any other that includes its router.
    # The downloads and people's pages come first: the console router ends with a catch-all 404.
    app.include_router(console_exports_router)
    app.include_router(console_people_router)
    app.include_router(oidc_router)
    app.include_router(console_router)
    add_ops_routes(app, broker=False)
    return app


def _own_database(
    settings: Settings, config: TendConfig, clock: Clock | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan that opens the database ``settings`` name, runs the report schedule (when
    set) until shutdown, and disposes the database."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        app.state.sessions = create_sessionmaker(engine)
        stop = asyncio.Event()
        schedule: asyncio.Task[None] | None = None
        if settings.reports.send_day is not None:
            from services.web.reports.schedule import ReportScheduler

            scheduler = ReportScheduler(app.state.sessions, settings, config, clock=clock)
            schedule = asyncio.create_task(scheduler.run(stop), name="report-schedule")
        try:
            yield
        finally:
            stop.set()
            if schedule is not None:
                _, late = await asyncio.wait([schedule], timeout=settings.shutdown_timeout_s)
                for task in late:  # a send in progress: its claim's lease brings it back
                    task.cancel()
                    await asyncio.wait([task])
            await engine.dispose()

    return lifespan

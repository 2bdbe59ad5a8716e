"""The alerts process (``tend alerts``): the consumer of ``tend.scores.v1`` and the dispatcher in
the background, plus the alerts API, health, readiness and metrics on one port."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.api import router
from services.alerts.consumer import AlertsService
from services.alerts.dispatcher import Dispatcher
from services.alerts.notifiers import EmailNotifier, Notifier, SlackNotifier, SmtpSettings
from services.alerts.routing import Defaults
from shared.bus import Bus, create_bus, default_topic_specs
from shared.bus.base import Producer
from shared.clock import Clock, SystemClock
from shared.config import TendConfig, load_config
from shared.db.session import create_engine, create_sessionmaker
from shared.settings import Settings

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    bus: Bus | None = None,
    config: TendConfig | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """The alerts app. Its lifespan opens the database and the bus, creates missing topics and
    runs :class:`AlertsService` until shutdown, when the consumer drains and commits."""
    tend_config = config if config is not None else load_config(settings.config)
    if settings.api_token is None:
        log.warning("TEND_API_TOKEN is not set: the alerts API refuses every request")

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
            task = asyncio.create_task(service.run(stop), name="alerts")
            yield
        finally:
            stop.set()
            if task is not None:
                try:
                    await task
                except Exception:
                    log.exception("the alerts service stopped with an error")
            await producer.stop()
            if own_bus:
                await the_bus.close()
            await engine.dispose()

    app = FastAPI(title="tend alerts", version="1", lifespan=lifespan)
    app.state.api_token = settings.api_token.get_secret_value() if settings.api_token else None
    if clock is not None:
        app.state.clock = clock
    app.include_router(router)
    add_ops_routes(app)
    return app


def build_notifiers(settings: Settings) -> dict[str, Notifier]:
    """Slack always (webhooks come with the alerts); email when ``TEND_SMTP_HOST`` is set."""
    notifiers: dict[str, Notifier] = {"slack": SlackNotifier()}
    if settings.smtp_host:
        notifiers["email"] = EmailNotifier(
            SmtpSettings(
                host=settings.smtp_host,
                port=settings.smtp_port,
                user=settings.smtp_user,
                password=settings.smtp_password,
                from_address=settings.smtp_from,
                tls=settings.smtp_tls,
            )
        )
    return notifiers


def build_defaults(settings: Settings) -> Defaults:
    webhook = settings.slack_webhook_url
    return Defaults(
        slack_webhook_url=webhook.get_secret_value() if webhook is not None else None,
        emails=tuple(settings.alerts.default_email_list),
        email_enabled=bool(settings.smtp_host),
        digest_hour_utc=settings.alerts.digest_hour_utc if settings.alerts.email_digest else None,
    )


def build_service(
    settings: Settings,
    config: TendConfig,
    bus: Bus,
    sessions: async_sessionmaker[AsyncSession],
    producer: Producer,
    clock: Clock | None,
) -> AlertsService:
    the_clock = clock or SystemClock()
    a = settings.alerts
    notifiers = build_notifiers(settings)
    email = notifiers.get("email")
    dispatcher = Dispatcher(
        sessions,
        notifiers,
        the_clock,
        batch=a.dispatch_batch,
        max_attempts=a.max_attempts,
        lease_s=a.claim_lease_s,
        max_backoff_s=a.max_backoff_s,
        idle_s=a.dispatch_interval_s,
        digests=email if isinstance(email, EmailNotifier) and a.email_digest else None,
    )
    if not settings.smtp_host:
        log.info("TEND_SMTP_HOST is not set: alerts go to Slack only")
    return AlertsService(
        bus,
        sessions,
        producer,
        config.rules,
        the_clock,
        defaults=build_defaults(settings),
        console_url=settings.console_url,
        dispatcher=dispatcher,
        max_records=a.batch_max_records,
        max_wait_s=a.batch_max_wait_s,
        retention=timedelta(days=a.outbox_retention_days),
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
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

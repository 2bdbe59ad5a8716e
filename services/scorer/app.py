"""The scorer process (``tend scorer``): the background consumer and re-scorer, with health,
readiness and metrics (its only routes: the read API is the web service's, ``tend web``)."""

from __future__ import annotations

import logging
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.consumer import ScorerService
from shared.api_errors import install_error_handlers
from shared.bus import Bus
from shared.bus.base import Producer
from shared.clock import Clock, SystemClock
from shared.config import TendConfig, load_config
from shared.consumer import RunnerOptions
from shared.service_app import add_ops_routes, service_lifespan
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
    lifespan = service_lifespan(
        settings,
        bus,
        "scorer",
        lambda the_bus, sessions, producer: build_service(
            settings, tend_config, the_bus, sessions, producer, clock
        ),
    )

    app = FastAPI(title="tend scorer", version="1", lifespan=lifespan)
    install_error_handlers(app)
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
        horizon_days=settings.scorer.rescore_horizon_days,
        routing_from_traits=settings.scorer.routing_from_traits,
        runner=RunnerOptions.from_settings(settings.consumer),
    )

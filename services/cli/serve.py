"""The service processes: ``tend ingest``, ``tend scorer``, ``tend alerts``, and the uvicorn
app factories their processes build (``factory=True``: each worker builds its own)."""

from __future__ import annotations

import atexit
import os
from typing import TYPE_CHECKING

import click
import uvicorn

from services.cli.common import ConfigFailure, load_settings, load_tend_config

if TYPE_CHECKING:
    from fastapi import FastAPI


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


@click.command()
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

            run_server("services.cli.serve:ingest_app_factory", host, port)
        else:
            uvicorn.run(
                "services.cli.serve:ingest_app_factory",
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


def scorer_app_factory() -> FastAPI:
    """The scorer app for uvicorn (``factory=True``)."""
    from services.scorer.app import create_app
    from shared.logging import setup_logging

    settings = load_settings()
    setup_logging(settings.log_level)
    return create_app(settings, config=load_tend_config(settings))


@click.command()
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

    run_server("services.cli.serve:scorer_app_factory", host, port)


# -- alerts -----------------------------------------------------------------------------------


def alerts_app_factory() -> FastAPI:
    """The alerts app for uvicorn (``factory=True``)."""
    from services.alerts.app import create_app
    from shared.logging import setup_logging

    settings = load_settings()
    setup_logging(settings.log_level)
    return create_app(settings, config=load_tend_config(settings))


@click.command()
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

    run_server("services.cli.serve:alerts_app_factory", host, port)

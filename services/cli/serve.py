"""The service processes: ``tend ingest``, ``tend scorer``, ``tend alerts`` and ``tend web``.

Every service is one row of :data:`SERVICES` (name, default port, the module whose
``create_app(settings, *, config=...)`` builds its app, whether it needs Kafka, whether it scales
by worker processes); one uvicorn app factory (:func:`build_app`) and one command builder
(:func:`service_command`) serve them all. uvicorn imports the factory by its string
``services.cli.serve:<name>_app`` (``factory=True``): each worker process builds its own app.
"""

from __future__ import annotations

import atexit
import importlib
import os
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import click
import uvicorn

from services.cli.common import ConfigFailure, load_settings, load_tend_config

if TYPE_CHECKING:
    from fastapi import FastAPI


@dataclass(frozen=True, slots=True)
class Service:
    """A tend process that serves HTTP: the row the command and the app factory are made of."""

    name: str
    port: int
    app_module: str
    """The module whose ``create_app(settings, *, config=...)`` builds the service's app."""
    needs_kafka: bool
    workers: bool
    """Scaled by ``--workers`` (stateless HTTP); consumers scale by running more processes."""
    help: str

    @property
    def factory(self) -> str:
        """The app factory's import string, for uvicorn."""
        return f"{__name__}:{self.name}_app"


SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service(
            "ingest",
            8000,
            "services.ingest.app",
            needs_kafka=True,
            workers=True,
            help="Serve the ingest API (production: needs Kafka at TEND_KAFKA_BOOTSTRAP).",
        ),
        Service(
            "scorer",
            8001,
            "services.scorer.app",
            needs_kafka=True,
            workers=False,
            help="""Run the scorer: events -> daily rollups -> health scores.

            Serves only /healthz, /readyz and /metrics (the read API is `tend web`'s). One process
            is one member of the consumer group; run more for more partitions.
            """,
        ),
        Service(
            "alerts",
            8002,
            "services.alerts.app",
            needs_kafka=True,
            workers=False,
            help="""Run the alerts service: scores -> rules -> alert state -> Slack and email.

            Serves only /healthz, /readyz and /metrics (the alerts API and the console are
            `tend web`'s). One process is one member of the consumer group; run more for more
            partitions.
            """,
        ),
        Service(
            "web",
            8003,
            "services.web.app",
            needs_kafka=False,
            workers=True,
            help="""Serve the web service: the read and alerts APIs, the console, the reports.

            The read API and the reports at /v1/accounts, the alerts API at /v1/alerts, the CSM
            console at /console/. Needs only the database (TEND_DATABASE_URL), not Kafka.
            Stateless: scale it like ingest, with --workers or more processes behind a load
            balancer; TEND_CONSOLE_URL should point at it.
            """,
        ),
    )
}


def build_app(name: str) -> FastAPI:
    """The app of service ``name``, for uvicorn (``factory=True``)."""
    from shared.logging import configure_logging

    settings = load_settings()
    configure_logging(settings, name)
    module = importlib.import_module(SERVICES[name].app_module)
    app: FastAPI = module.create_app(settings, config=load_tend_config(settings))
    _forget_metrics_at_exit()
    return app


ingest_app = partial(build_app, "ingest")
scorer_app = partial(build_app, "scorer")
alerts_app = partial(build_app, "alerts")
web_app = partial(build_app, "web")


def _forget_metrics_at_exit() -> None:
    """In a worker of ``--workers N``: drop this worker's live gauges when it exits (uvicorn's
    spawned workers run atexit handlers on a clean exit)."""
    from shared.prometheus import mark_worker_dead, multiprocess_dir

    if multiprocess_dir() is not None:
        atexit.register(mark_worker_dead, os.getpid())


def serve(service: Service, host: str, port: int, workers: int = 1) -> None:
    """Check the settings, then serve ``service`` until a signal."""
    settings = load_settings()
    load_tend_config(settings)
    if service.needs_kafka and not settings.uses_kafka:
        raise ConfigFailure(
            f"{service.name} needs a Kafka broker: set TEND_KAFKA_BOOTSTRAP (e.g. kafka:9092). "
            "The in-process bus is only for `tend up`, which runs every service in one process."
        )
    from shared.logging import configure_logging

    configure_logging(settings, service.name)
    if workers == 1:
        from shared.service_app import run_server

        run_server(service.factory, host, port)
        return
    from shared.prometheus import prepare_multiprocess_dir, remove_multiprocess_dir

    # Before any worker starts: each one inherits it and writes its metrics there, and
    # every worker's /metrics answers with the sum over all of them.
    metrics_dir = prepare_multiprocess_dir()
    try:
        uvicorn.run(
            service.factory,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            lifespan="on",
            log_config=None,
        )
    finally:
        remove_multiprocess_dir(metrics_dir)


def service_command(service: Service) -> click.Command:
    """``tend <service.name>``: --host, --port (the service's own default) and, for services
    that scale by worker processes, --workers."""
    params: list[click.Parameter] = [
        click.Option(["--host"], default="127.0.0.1", show_default=True, help="Address to bind."),
        click.Option(
            ["--port"], default=service.port, show_default=True, type=click.IntRange(0, 65535)
        ),
    ]
    if service.workers:
        params.append(
            click.Option(
                ["--workers"],
                default=1,
                show_default=True,
                type=click.IntRange(1),
                help="Worker processes.",
            )
        )

    def callback(host: str, port: int, workers: int = 1) -> None:
        serve(service, host, port, workers)

    return click.Command(service.name, callback=callback, params=params, help=service.help)


ingest, scorer, alerts, web = (service_command(s) for s in SERVICES.values())

"""The alerts process (``tend alerts``): the consumer of ``tend.scores.v1`` and the dispatcher in
the background, with health, readiness and metrics (its only routes: the alerts API and the
console are the web service's, ``tend web``)."""

from __future__ import annotations

import logging
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.consumer import AlertsService
from services.alerts.dispatcher import Dispatcher
from services.alerts.notifiers import (
    EmailNotifier,
    Notifier,
    SlackApiNotifier,
    SlackNotifier,
    SmtpSettings,
)
from services.alerts.routing import Defaults
from services.alerts.webhooks import WebhookDispatcher
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
    """The alerts app. Its lifespan opens the database and the bus, creates missing topics and
    runs :class:`AlertsService` until shutdown, when the consumer drains and commits."""
    tend_config = config if config is not None else load_config(settings.config)
    lifespan = service_lifespan(
        settings,
        bus,
        "alerts",
        lambda the_bus, sessions, producer: build_service(
            settings, tend_config, the_bus, sessions, producer, clock
        ),
    )

    app = FastAPI(title="tend alerts", version="1", lifespan=lifespan)
    install_error_handlers(app)
    add_ops_routes(app)
    return app


def email_off_notice() -> str:
    """Said once at start when ``TEND_SMTP_HOST`` is not set (then no alert says it again)."""
    return (
        "email is off: TEND_SMTP_HOST is not set, so alerts go to Slack only (an account's "
        "csm_slack, TEND_SLACK_WEBHOOK_URL); alerts of accounts with only a CSM email are "
        "recorded as not sent (their deliveries say so). Set TEND_SMTP_HOST (and "
        "TEND_SMTP_FROM) to send email."
    )


def build_notifiers(settings: Settings) -> dict[str, Notifier]:
    """Slack webhooks always (they come with the alerts); Slack's Web API with a bot token;
    email when ``TEND_SMTP_HOST`` is set. Buttons when Slack interactivity is set up."""
    slack = settings.slack
    buttons = slack.signing_secret is not None
    notifiers: dict[str, Notifier] = {"slack": SlackNotifier(buttons=buttons)}
    if slack.bot_token is not None:
        notifiers["slack_api"] = SlackApiNotifier(
            slack.bot_token.get_secret_value(),
            api_url=slack.api_url,
            min_interval_s=slack.min_interval_s,
            buttons=buttons,
        )
    if settings.smtp_host:
        notifiers["email"] = EmailNotifier(SmtpSettings.from_settings(settings))
    return notifiers


def build_defaults(settings: Settings) -> Defaults:
    webhook = settings.slack_webhook_url
    return Defaults(
        slack_webhook_url=webhook.get_secret_value() if webhook is not None else None,
        emails=tuple(settings.alerts.default_email_list),
        email_enabled=bool(settings.smtp_host),
        digest_hour_utc=settings.alerts.digest_hour_utc if settings.alerts.email_digest else None,
        slack_webhook_hosts=tuple(settings.alerts.slack_webhook_host_list),
        slack_webhook_allow_http=settings.alerts.slack_webhook_allow_http,
        email_domains=tuple(settings.alerts.email_domain_list),
        slack_api=settings.slack.bot_token is not None,
        slack_channel=settings.slack.channel,
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
        currency=config.currency,
    )
    if not settings.smtp_host:
        log.warning(email_off_notice())
    webhooks = None
    if config.webhooks.endpoints:
        webhooks = WebhookDispatcher(
            sessions,
            config.webhooks,
            the_clock,
            batch=a.dispatch_batch,
            lease_s=a.claim_lease_s,
            idle_s=a.dispatch_interval_s,
            retention=timedelta(days=a.outbox_retention_days),
        )
    return AlertsService(
        bus,
        sessions,
        producer,
        config.rules,
        the_clock,
        defaults=build_defaults(settings),
        console_url=settings.console_url,
        dispatcher=dispatcher,
        webhooks=webhooks,
        max_records=a.batch_max_records,
        max_wait_s=a.batch_max_wait_s,
        retention=timedelta(days=a.outbox_retention_days),
        runner=RunnerOptions.from_settings(settings.consumer),
        rescore_horizon_days=settings.scorer.rescore_horizon_days,
    )

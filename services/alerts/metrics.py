"""Prometheus metrics of the alerts service (labels: rule, channel, outcome; never an account)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

TRANSITIONS = Counter(
    "tend_alerts_transitions_total",
    "Alert life-cycle actions decided by the consumer (notify_open, notify_repeat, ...).",
    ["rule", "action"],
)
SNAPSHOTS = Counter(
    "tend_alerts_snapshots_total",
    "Score snapshots evaluated by the alerts consumer.",
)
REOPENED = Counter(
    "tend_alerts_reopened_total",
    "Resolved alerts whose condition returned within the cool-down and continued as the same "
    "alert (no new opened notification).",
    ["rule"],
)
UNROUTED = Counter(
    "tend_alerts_unrouted_total",
    "Notifications with nowhere to go (no CSM channel, no default, no route).",
    ["rule"],
)
REFUSED_DESTINATIONS = Counter(
    "tend_alerts_refused_destinations_total",
    "CSM destinations from account data refused by routing (webhook not https or its host not "
    "allowed, email domain not allowed); the notification took the default route instead.",
    ["channel"],
)
DISPATCHED = Counter(
    "tend_alerts_dispatch_total",
    "Outbox rows handled by the dispatcher by channel and result (sent, retry, failed).",
    ["channel", "result"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "tend_alerts_outbox_oldest_pending_age_seconds",
    "Age of the oldest notification still waiting in the outbox (0 when none), as of the "
    "dispatcher's last round.",
)
OUTBOX_PENDING = Gauge(
    "tend_alerts_outbox_pending",
    "Notifications waiting in the outbox, as of the dispatcher's last round.",
)
WEBHOOK_DELIVERIES = Counter(
    "tend_webhooks_deliveries_total",
    "Webhook delivery attempts by endpoint (its configured name) and result: sent, retry "
    "(to be tried again), failed (given up, or the endpoint is no longer configured).",
    ["endpoint", "result"],
)
WEBHOOK_PENDING = Gauge(
    "tend_webhooks_pending",
    "Webhook deliveries waiting in the outbox, as of the webhook dispatcher's last round.",
)

"""Delivery channels for alert notifications: Slack incoming webhooks, Slack's Web API
and SMTP email.

Each notifier sends one :class:`Notification` to one destination and answers a
:class:`DeliveryResult` (delivered, retry after N seconds, failed permanently) instead of
raising, so the dispatcher decides about retries from its outbox.
"""

from services.alerts.notifiers.base import (
    NOTIFICATIONS,
    DeliveryResult,
    Notification,
    NotificationKind,
    Notifier,
)
from services.alerts.notifiers.email import EmailNotifier, SmtpSettings
from services.alerts.notifiers.slack import SlackNotifier
from services.alerts.notifiers.slack_api import SlackApiNotifier

__all__ = [
    "NOTIFICATIONS",
    "DeliveryResult",
    "EmailNotifier",
    "Notification",
    "NotificationKind",
    "Notifier",
    "SlackApiNotifier",
    "SlackNotifier",
    "SmtpSettings",
]

"""Where a notification goes: the account's CSM, else the default channels, plus a rule's route.

Resolved when the notification is written to the outbox, so an outbox row names its channel
and destination and the dispatcher only delivers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses

from services.alerts.notifiers.base import Channel
from shared.alert_rules import Route

__all__ = [
    "DIGEST_CHANNEL",
    "Defaults",
    "Destination",
    "destinations",
    "digest_destinations",
    "is_webhook",
    "next_digest",
]

DIGEST_CHANNEL = "email_digest"
"""Outbox rows of this channel wait for the day's digest and go out in one mail per address."""

Destination = tuple[Channel, str]


@dataclass(frozen=True, slots=True)
class Defaults:
    """The fallback channels (``TEND_SLACK_WEBHOOK_URL``, ``TEND_ALERTS__DEFAULT_EMAILS``) and
    whether email can be sent at all (``TEND_SMTP_HOST`` set)."""

    slack_webhook_url: str | None = None
    emails: tuple[str, ...] = ()
    email_enabled: bool = True
    digest_hour_utc: int | None = None
    """Set: email goes out once a day at this hour, one digest per address."""


def is_webhook(value: str | None) -> bool:
    """``csm_slack`` may be a Slack user id (no use to a webhook sender) or a webhook URL."""
    return bool(value) and str(value).startswith(("https://", "http://"))


def destinations(
    csm_email: str | None,
    csm_slack: str | None,
    route: Route | None,
    defaults: Defaults,
) -> list[Destination]:
    """One entry per (channel, destination), without repeats, CSM channels first."""
    found: list[Destination] = []

    def add(channel: Channel, destination: str | None) -> None:
        if destination and (channel, destination) not in found:
            if channel == "email" and not defaults.email_enabled:
                return
            found.append((channel, destination))

    if route is None or not route.replace_csm:
        add("slack", csm_slack if is_webhook(csm_slack) else defaults.slack_webhook_url)
        if csm_email:
            add("email", csm_email)
        elif defaults.emails:
            add("email", ", ".join(defaults.emails))
    if route is not None:
        add("slack", route.slack_webhook_url)
        if route.emails:
            add("email", ", ".join(route.emails))
    return found


def next_digest(now: datetime, hour_utc: int) -> datetime:
    """The first ``hour_utc``:00 UTC at or after ``now``."""
    utc = now.astimezone(UTC)
    at = utc.replace(hour=hour_utc, minute=0, second=0, microsecond=0)
    return at if at >= utc else at + timedelta(days=1)


def digest_destinations(found: list[Destination]) -> tuple[list[Destination], list[str]]:
    """Split ``found`` into what goes now and the addresses that get the digest instead."""
    now = [d for d in found if d[0] != "email"]
    addresses: list[str] = []
    for _, destination in (d for d in found if d[0] == "email"):
        for _, address in getaddresses([destination]):
            if address and address not in addresses:
                addresses.append(address)
    return now, addresses

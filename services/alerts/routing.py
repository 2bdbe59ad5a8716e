"""Where a notification goes: the account's CSM, else the default channels, plus a rule's route.

Resolved when the notification is written to the outbox, so an outbox row names its channel
and destination and the dispatcher only delivers.

Slack goes by incoming webhook (``slack``) or, with a bot token, by the Web API
(``slack_api``): to ``TEND_SLACK__CHANNEL`` when set, else to a CSM named by Slack member id
(a direct message); a CSM's own webhook URL keeps being used as it is.

Trust: the operator's own settings (``TEND_SLACK_WEBHOOK_URL``, ``TEND_ALERTS__DEFAULT_EMAILS``,
rule routes in the YAML) are used as they are. A CSM destination comes from account data
(the profile, or group traits when ``TEND_SCORER__ROUTING_FROM_TRAITS`` is on), so it is
checked first: a Slack webhook must be https on a host of ``TEND_ALERTS__SLACK_WEBHOOK_HOSTS``
and an email address at a domain of ``TEND_ALERTS__EMAIL_DOMAINS`` (when set). A refused one
is logged and counted, and the notification takes the default route instead, as an account
without a CSM would.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses
from urllib.parse import urlsplit

from services.alerts.metrics import REFUSED_DESTINATIONS
from services.alerts.notifiers.base import Channel
from shared.alert_rules import Route
from shared.redact import mask_url
from shared.slack import is_user_id

__all__ = [
    "DIGEST_CHANNEL",
    "Defaults",
    "Destination",
    "destinations",
    "digest_destinations",
    "email_refusal",
    "is_webhook",
    "next_digest",
    "slack_destination",
    "webhook_refusal",
]

log = logging.getLogger("tend.alerts.routing")

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
    slack_webhook_hosts: tuple[str, ...] = ("hooks.slack.com",)
    """Hosts a webhook URL from account data may point at (lower case)."""
    slack_webhook_allow_http: bool = False
    """Testing only: accept http:// webhook URLs from account data."""
    email_domains: tuple[str, ...] = ()
    """Domains a CSM address from account data may be at (lower case); empty: any."""
    slack_api: bool = False
    """A bot token is set: Slack messages may go through the Web API."""
    slack_channel: str | None = None
    """The channel id the bot posts to (``TEND_SLACK__CHANNEL``)."""


def slack_destination(csm_slack: str | None, defaults: Defaults) -> Destination | None:
    """Where the Slack message of an account goes (``csm_slack`` already checked)."""
    if csm_slack and is_webhook(csm_slack):
        return ("slack", csm_slack)
    if defaults.slack_api:
        if defaults.slack_channel:
            return ("slack_api", defaults.slack_channel)
        if is_user_id(csm_slack):
            return ("slack_api", str(csm_slack))
    if defaults.slack_webhook_url:
        return ("slack", defaults.slack_webhook_url)
    return None


def is_webhook(value: str | None) -> bool:
    """``csm_slack`` may be a Slack user id (no use to a webhook sender) or a webhook URL."""
    return bool(value) and str(value).startswith(("https://", "http://"))


def webhook_refusal(url: str, defaults: Defaults) -> str | None:
    """Why a webhook URL from account data may not be posted to; None when it may."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return "not a valid URL"
    allowed_schemes = ("https", "http") if defaults.slack_webhook_allow_http else ("https",)
    if parts.scheme.lower() not in allowed_schemes:
        return f"scheme {parts.scheme or '(none)'} is not https"
    if parts.username is not None or parts.password is not None:
        return "the URL carries user info"
    if not host or host not in defaults.slack_webhook_hosts:
        return f"host {host or '(none)'} is not in TEND_ALERTS__SLACK_WEBHOOK_HOSTS"
    return None


def email_refusal(destination: str, defaults: Defaults) -> str | None:
    """Why an address list from account data may not be mailed; None when it may."""
    addresses = [a for _, a in getaddresses([destination]) if a]
    if not addresses or any("@" not in a for a in addresses):
        return "not an email address"
    if not defaults.email_domains:
        return None
    for address in addresses:
        domain = address.rpartition("@")[2].lower()
        if domain not in defaults.email_domains:
            return f"domain {domain} is not in TEND_ALERTS__EMAIL_DOMAINS"
    return None


def _refused(channel: Channel, value: str, reason: str, account_id: str | None) -> None:
    REFUSED_DESTINATIONS.labels(channel).inc()
    shown = mask_url(value) if channel == "slack" else value
    log.warning(
        "CSM %s destination refused, using the default route account_id=%s destination=%s "
        "reason=%s",
        channel,
        account_id,
        shown,
        reason,
        extra={"channel": channel, "account_id": account_id},
    )


def destinations(
    csm_email: str | None,
    csm_slack: str | None,
    route: Route | None,
    defaults: Defaults,
    *,
    account_id: str | None = None,
) -> list[Destination]:
    """One entry per (channel, destination), without repeats, CSM channels first.

    ``csm_email`` and ``csm_slack`` are account data and are checked (see the module
    docstring); a refused one is replaced by the default of its channel.
    """
    found: list[Destination] = []
    if csm_slack and is_webhook(csm_slack):
        refusal = webhook_refusal(csm_slack, defaults)
        if refusal is not None:
            _refused("slack", csm_slack, refusal, account_id)
            csm_slack = None
    if csm_email:
        refusal = email_refusal(csm_email, defaults)
        if refusal is not None:
            _refused("email", csm_email, refusal, account_id)
            csm_email = None

    def add(channel: Channel, destination: str | None) -> None:
        if destination and (channel, destination) not in found:
            if channel == "email" and not defaults.email_enabled:
                return
            found.append((channel, destination))

    if route is None or not route.replace_csm:
        slack = slack_destination(csm_slack, defaults)
        if slack is not None:
            add(*slack)
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

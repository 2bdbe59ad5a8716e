"""What the alerts service (which posts Slack messages) and the web service (which receives
Slack's button clicks) must agree on: the buttons' action ids, the snooze choices, Slack's
request signature and what a Slack user id looks like.

Slack signs every interactivity request: ``X-Slack-Signature`` is ``v0=`` and the hex
HMAC-SHA256 of ``v0:{X-Slack-Request-Timestamp}:{raw body}`` keyed with the app's signing
secret. A request is taken only when the signature matches (compared in constant time) and
its timestamp is within :data:`MAX_SKEW_S` of now, so a captured request cannot be replayed
later.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import TypeGuard

__all__ = [
    "ACK_ACTION",
    "ACTIONS",
    "MAX_SKEW_S",
    "SNOOZE_ACTIONS",
    "SignatureError",
    "escape_mrkdwn",
    "is_user_id",
    "mention",
    "sign",
    "verify",
]

ACK_ACTION = "tend_ack"
SNOOZE_ACTIONS: Mapping[str, tuple[timedelta, str]] = {
    "tend_snooze_1d": (timedelta(days=1), "Snooze 1 day"),
    "tend_snooze_1w": (timedelta(days=7), "Snooze 1 week"),
}
"""action id -> (how long, the button's label)."""
ACTIONS = frozenset({ACK_ACTION, *SNOOZE_ACTIONS})
"""The buttons the interactivity endpoint acts on (their ``value`` is the alert id)."""

MAX_SKEW_S = 300
"""Slack's advice: refuse a request whose timestamp is more than 5 minutes from now."""

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")


class SignatureError(ValueError):
    """Why a request is not taken as Slack's (no signature, a stale or a wrong one)."""


def is_user_id(value: str | None) -> TypeGuard[str]:
    """A Slack member id (``U024BE7LH``, or ``W...`` on Enterprise Grid), not a webhook URL
    or a channel id."""
    return value is not None and _USER_ID.fullmatch(value) is not None


def escape_mrkdwn(text: str) -> str:
    """Slack's mrkdwn treats ``&``, ``<`` and ``>`` as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(user_id: str) -> str:
    """The mrkdwn that mentions (and notifies) a member."""
    return f"<@{user_id}>"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``v0=<hex>``: the signature Slack sends for ``body`` at ``timestamp``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float
) -> None:
    """Raise :class:`SignatureError` unless ``signature`` is Slack's for ``body`` at
    ``timestamp`` (Unix seconds) and ``timestamp`` is within :data:`MAX_SKEW_S` of ``now``."""
    if not timestamp or not signature:
        raise SignatureError(
            "missing X-Slack-Request-Timestamp or X-Slack-Signature: not a request from Slack"
        )
    try:
        sent = int(timestamp)
    except ValueError:
        raise SignatureError("X-Slack-Request-Timestamp is not a Unix time") from None
    if abs(now - sent) > MAX_SKEW_S:
        raise SignatureError(
            f"X-Slack-Request-Timestamp is more than {MAX_SKEW_S // 60} minutes from now "
            "(a replayed or delayed request)"
        )
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise SignatureError("X-Slack-Signature does not match (check TEND_SLACK__SIGNING_SECRET)")

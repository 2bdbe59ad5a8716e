"""Slack's Web API: ``chat.postMessage`` with the app's bot token, to a channel or a member.

The alternative to incoming webhooks when the app has a bot token (``TEND_SLACK__BOT_TOKEN``,
scope ``chat:write``): the bot can post to any channel it is in, or to a member directly, and
a CSM named by member id is mentioned. Contract, beyond :class:`SlackNotifier`'s (one paced
POST per send, per destination; never raises; 429 ``Retry-After`` honoured):

- The destination is a channel id (``C...``, ``G...``) or a member id (``U...``, ``W...``: a
  direct message from the bot); anything else fails permanently without a request.
- Slack answers most failures with HTTP 200 and ``{"ok": false, "error": "..."}``: the
  transient ones (:data:`RETRYABLE_ERRORS`) are retried with backoff, every other one
  (``channel_not_found``, ``not_in_channel``, ``invalid_auth``, ``missing_scope``...) fails
  permanently, its error code named in the reason.
- A delivered result carries the posted message's (channel, ts), which the dispatcher keeps
  on the outbox row, so the message can be updated later (``chat.update``).
- The token travels only in the ``Authorization`` header; logs and results never carry it.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from services.alerts.notifiers.base import Channel, DeliveryResult, Notification, record
from services.alerts.notifiers.slack import SlackNotifier, _reason, _retry_after_seconds

__all__ = ["RETRYABLE_ERRORS", "SlackApiNotifier"]

RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable"}
    | {"request_timeout"}
)
_CONVERSATION = re.compile(r"^[CDGUW][A-Z0-9]{2,30}$")
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


class SlackApiNotifier(SlackNotifier):
    """Posts notifications with ``chat.postMessage``; see the module docstring."""

    channel: Channel = "slack_api"

    def __init__(self, token: str, *, api_url: str = "https://slack.com/api", **kw: Any) -> None:
        super().__init__(**kw)
        self._token = token
        self._post_url = api_url.rstrip("/") + "/chat.postMessage"

    async def send(self, notification: Notification, destination: str) -> DeliveryResult:
        if not _CONVERSATION.fullmatch(destination):
            result = DeliveryResult.failed_permanently("not a Slack channel or member id")
            return record(self.channel, result, notification, "(invalid channel)")
        payload = {
            **self._payload(notification),
            "channel": destination,
            "unfurl_links": False,
            "unfurl_media": False,
        }
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json; charset=utf-8",
        }
        result = await self._post(destination, self._post_url, payload, headers)
        return record(self.channel, result, notification, destination)

    def _classify(self, response: httpx.Response, key: str) -> DeliveryResult:
        if response.status_code != 200:
            return super()._classify(response, key)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("ok"), bool):
            return DeliveryResult.failed_permanently(f"{_reason(response)}: not a Slack API answer")
        if body["ok"]:
            channel, ts = body.get("channel"), body.get("ts")
            posted = (channel, ts) if isinstance(channel, str) and isinstance(ts, str) else None
            return DeliveryResult.delivered("ok", posted=posted)
        error = body.get("error")
        code = error if isinstance(error, str) and _ERROR_CODE.fullmatch(error) else "unknown"
        reason = f"Slack API error {code}"
        if code in RETRYABLE_ERRORS:
            wait = _retry_after_seconds(response.headers.get("Retry-After"), time.time())
            if wait is not None:
                self.pacer.block(key, wait)
                return DeliveryResult.retry_after(wait, reason)
            return self._backoff(reason)
        return DeliveryResult.failed_permanently(reason)

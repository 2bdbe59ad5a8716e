"""Slack incoming webhooks: one Block Kit message per notification.

Contract:

- ``send`` posts at most once per call and never raises for delivery problems: 2xx is
  delivered; 429 is retried after the answer's ``Retry-After`` (30 s without one); 408, 425,
  5xx, timeouts and connection errors are retried with a backoff hint; other answers (400, 403,
  404, 410: bad payload, revoked or archived webhook) fail permanently.
- Messages to one webhook are at least ``min_interval_s`` apart (Slack allows about one a
  second): sends to the same webhook queue behind one lock, in call order. After a 429 the
  webhook is not posted to again until its ``Retry-After`` has passed; sends meanwhile answer
  "retry" without a request.
- A webhook URL's path is its secret: logs, results and metrics never carry it (see
  :func:`redact_webhook`), and the ``httpx`` logger is filtered for the URLs posted to.
- The reason of a result is written here, never copied from the answer: the status code and
  its phrase, plus Slack's error code when the body is exactly one of :data:`SLACK_ERRORS`.
  Whatever else the server at the URL answers is not kept anywhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

import httpx

from services.alerts.notifiers.base import Channel, DeliveryResult, Notification, record
from services.alerts.notifiers.render import (
    alert_title,
    escape_mrkdwn,
    one_line,
    render_mrkdwn,
    why,
)
from shared import format as fmt
from shared.redact import mask_url
from shared.slack import ACK_ACTION, SNOOZE_ACTIONS, is_user_id, mention

__all__ = ["SLACK_ERRORS", "SlackNotifier", "WebhookPacer", "build_payload", "redact_webhook"]

log = logging.getLogger("tend.alerts.slack")

DEFAULT_RETRY_AFTER_S = 30.0
_RETRYABLE_4XX = frozenset({408, 425})
_HEADER_MAX = 150
_SECTION_MAX = 3000
_BAND_EMOJI = {"green": ":large_green_circle:", "yellow": ":large_yellow_circle:"}
_BAND_EMOJI |= {"red": ":red_circle:", "new": ":seedling:", "unknown": ":white_circle:"}

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


SLACK_ERRORS = frozenset(
    {
        "invalid_payload",
        "invalid_token",
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "no_active_hooks",
        "channel_not_found",
        "channel_is_archived",
        "user_not_found",
        "action_prohibited",
        "posting_to_general_channel_denied",
        "too_many_attachments",
        "rate_limited",
    }
)
"""Slack's documented webhook error codes: a body equal to one of them is named in a reason."""


def redact_webhook(url: str) -> str:
    """The URL as logs and results show it (:func:`shared.redact.mask_url`)."""
    return mask_url(url)


class _RedactWebhooks(logging.Filter):
    """Replaces webhook URLs in ``httpx`` log records (it logs every request URL at INFO)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.urls:
            return True
        message = record.getMessage()
        redacted = message
        for url, safe in self.urls.items():
            redacted = redacted.replace(url, safe)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_HTTPX_FILTER = _RedactWebhooks()
logging.getLogger("httpx").addFilter(_HTTPX_FILTER)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _buttons(n: Notification) -> list[dict[str, Any]]:
    """Acknowledge and snooze, handled by the web service's ``/v1/slack/interactivity``; the
    value is the lead alert's id (the click moves every active alert of the account)."""
    ack = {
        "type": "button",
        "text": {"type": "plain_text", "text": "Acknowledge"},
        "style": "primary",
        "action_id": ACK_ACTION,
        "value": n.alert_id,
    }
    snoozes = [
        {
            "type": "button",
            "text": {"type": "plain_text", "text": label},
            "action_id": action_id,
            "value": n.alert_id,
        }
        for action_id, (_, label) in SNOOZE_ACTIONS.items()
    ]
    return [ack, *snoozes]


def build_payload(n: Notification, *, buttons: bool = False) -> dict[str, Any]:
    """The message: Block Kit blocks plus a ``text`` fallback (notifications, old clients).

    ``buttons``: acknowledge and snooze on alerts still active (set when Slack interactivity is
    configured, ``TEND_SLACK__SIGNING_SECRET``). A CSM named by Slack member id is mentioned
    in the first section and the fallback text, so Slack notifies them."""
    title = alert_title(n)
    at = f"{mention(n.csm_slack_user)} " if is_user_id(n.csm_slack_user) else ""
    prefix = {"open": "", "repeat": "Still open: ", "resolve": "Resolved: "}[n.kind]
    header = one_line(f"{prefix}{n.account_label} · {n.band}")
    fields = [
        f"*Score*\n{fmt.score_band(n.score, n.band)}",
        f"*MRR*\n{escape_mrkdwn(fmt.mrr(n.mrr, n.currency))}",
        f"*Renewal*\n{fmt.renewal(n.renewal_date, n.as_of)}",
        f"*Alert*\n{escape_mrkdwn(title)} ({n.severity})",
    ]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _truncate(header, _HEADER_MAX), "emoji": True},
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": at
                + f"{_BAND_EMOJI.get(n.band, '')} *{escape_mrkdwn(one_line(title))}*".strip(),
            },
            "fields": [{"type": "mrkdwn", "text": f} for f in fields],
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": _truncate(escape_mrkdwn(why(n)), _SECTION_MAX),
            },
        },
    ]
    if n.kind != "resolve":
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _truncate(
                        f"*Next step:* {escape_mrkdwn(n.next_step.strip())}", _SECTION_MAX
                    ),
                },
            }
        )
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open in tend"},
                    "url": n.console_url,
                    "action_id": "open_console",
                },
                *(_buttons(n) if buttons and n.kind != "resolve" and n.alert_id else []),
            ],
        }
    )
    context = [f"alert {n.alert_id}", f"as of {fmt.day(n.as_of)}"]
    if n.csm_name or n.csm_email:
        context.insert(0, f"CSM: {n.csm_name or n.csm_email}")
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": escape_mrkdwn(" · ".join(context))}],
        }
    )
    return {"text": at + _truncate(render_mrkdwn(n), _SECTION_MAX), "blocks": blocks}


class WebhookPacer:
    """Keeps messages to one webhook ``min_interval_s`` apart, in call order.

    ``clock`` (monotonic seconds) and ``sleep`` are injectable, so tests check the waits without
    waiting.
    """

    def __init__(
        self,
        min_interval_s: float = 1.0,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.sleep = sleep
        self._locks: dict[str, asyncio.Lock] = {}
        self._last: dict[str, float] = {}
        self._blocked_until: dict[str, float] = {}

    def lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def wait_turn(self, key: str) -> None:
        """Sleep until ``min_interval_s`` has passed since the last message (hold :meth:`lock`)."""
        last = self._last.get(key)
        if last is not None:
            wait = last + self.min_interval_s - self.clock()
            if wait > 0:
                await self.sleep(wait)

    def sent(self, key: str) -> None:
        self._last[key] = self.clock()

    def block(self, key: str, seconds: float) -> None:
        self._blocked_until[key] = self.clock() + seconds

    def blocked_for(self, key: str) -> float:
        """Seconds left of a 429's ``Retry-After`` on this webhook; 0 when not blocked."""
        until = self._blocked_until.get(key)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._blocked_until[key]
            return 0.0
        return left


def _retry_after_seconds(value: str | None, now: float) -> float | None:
    """``Retry-After`` as delta-seconds or an HTTP date; None when missing or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _reason(response: httpx.Response) -> str:
    """``HTTP 404 Not Found (channel_not_found)``: the server chose only the status code, and
    Slack's error code when the body is exactly a known one."""
    status = response.status_code
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    reason = f"HTTP {status}" + (f" {phrase}" if phrase else "")
    if 200 <= status < 300:
        return reason
    # Read a known error code only from a short body; never echo an arbitrary one.
    body = response.content[:64].decode("ascii", "replace").strip()
    return f"{reason} ({body})" if body in SLACK_ERRORS else reason


class SlackNotifier:
    """Posts notifications to Slack incoming webhooks; see the module docstring for the contract.

    One ``httpx.AsyncClient`` is shared by every send (pass one in to share it wider; a client
    made here is closed by :meth:`aclose`).
    """

    channel: Channel = "slack"

    def __init__(
        self,
        *,
        client: httpx.AsyncClient | None = None,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        min_interval_s: float = 1.0,
        default_retry_after_s: float = DEFAULT_RETRY_AFTER_S,
        backoff_base_s: float = 10.0,
        buttons: bool = False,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.buttons = buttons
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            follow_redirects=False,
            headers={"User-Agent": "tend-alerts"},
        )
        self.pacer = WebhookPacer(min_interval_s, clock=clock, sleep=sleep)
        self.default_retry_after_s = default_retry_after_s
        self.backoff_base_s = backoff_base_s

    async def __aenter__(self) -> SlackNotifier:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def send(self, notification: Notification, destination: str) -> DeliveryResult:
        try:
            url = httpx.URL(destination)
        except (httpx.InvalidURL, TypeError):
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            result = DeliveryResult.failed_permanently("not an http(s) webhook URL")
            return record(self.channel, result, notification, "(invalid webhook URL)")
        safe = redact_webhook(destination)
        _HTTPX_FILTER.urls[destination] = safe
        _HTTPX_FILTER.urls[str(url)] = safe
        result = await self._send(notification, destination)
        return record(self.channel, result, notification, safe)

    async def _send(self, notification: Notification, url: str) -> DeliveryResult:
        return await self._post(url, url, self._payload(notification), {})

    def _payload(self, notification: Notification) -> dict[str, Any]:
        return build_payload(notification, buttons=self.buttons)

    async def _post(
        self, key: str, url: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> DeliveryResult:
        """One paced POST of ``payload`` for the destination ``key``, classified."""
        async with self.pacer.lock(key):
            blocked = self.pacer.blocked_for(key)
            if blocked > 0:
                return DeliveryResult.retry_after(blocked, "rate-limited (429) earlier")
            await self.pacer.wait_turn(key)
            try:
                response = await self._client.post(url, json=payload, headers=headers)
            except httpx.TimeoutException as exc:
                return self._backoff(f"timeout ({type(exc).__name__})")
            except httpx.ConnectError:
                return self._backoff("connection refused or host unreachable")
            except httpx.TransportError as exc:
                return self._backoff(f"connection error ({type(exc).__name__})")
            finally:
                self.pacer.sent(key)
            return self._classify(response, key)

    def _backoff(self, reason: str) -> DeliveryResult:
        return DeliveryResult.retry_after(self.backoff_base_s, reason, backoff=True)

    def _classify(self, response: httpx.Response, url: str) -> DeliveryResult:
        status = response.status_code
        reason = _reason(response)
        if 200 <= status < 300:
            return DeliveryResult.delivered(reason)
        if status == 429:
            wait = _retry_after_seconds(response.headers.get("Retry-After"), time.time())
            wait = self.default_retry_after_s if wait is None else wait
            self.pacer.block(url, wait)
            return DeliveryResult.retry_after(wait, reason)
        if status >= 500 or status in _RETRYABLE_4XX:
            wait = _retry_after_seconds(response.headers.get("Retry-After"), time.time())
            if wait is not None:
                return DeliveryResult.retry_after(wait, reason)
            return self._backoff(reason)
        return DeliveryResult.failed_permanently(reason)

"""What a notifier sends, what it answers, and the contract every channel keeps.

A notifier delivers one :class:`Notification` to one destination and *classifies* the outcome as
a :class:`DeliveryResult`; it never raises for a delivery problem (a refused request, a timeout,
a closed connection). The dispatcher reads the result and marks its outbox row sent, due again
later, or failed. A notifier does not retry by itself, so an outbox row is the only place a
retry is decided and counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Literal, Protocol

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field

from shared import format as fmt
from shared.alert_rules import Severity
from shared.scores import Band

__all__ = [
    "NOTIFICATIONS",
    "Channel",
    "DeliveryResult",
    "Notification",
    "NotificationItem",
    "NotificationKind",
    "Notifier",
    "Outcome",
    "record",
]

NotificationKind = Literal["open", "repeat", "resolve"]
Outcome = Literal["delivered", "retry", "failed"]
Channel = Literal["slack", "slack_api", "email"]

NOTIFICATIONS = Counter(
    "tend_alerts_notifications_total",
    "Notification delivery attempts by channel and outcome (delivered, retry, failed).",
    ["channel", "outcome"],
)

log = logging.getLogger("tend.alerts.notifiers")


class NotificationItem(BaseModel):
    """One alert of a grouped notification."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alert_id: str
    rule: str
    feature: str = ""
    severity: Severity
    kind: NotificationKind
    reason: str
    started_on: date | None = None


class Notification(BaseModel):
    """One message for one account: everything a channel needs to render it.

    The fields describe the lead alert (its next step is the one suggested); ``items``, when
    there are two or more, are every alert of the account decided together (one incident per
    account and day, Alertmanager ``group_by`` style), the lead first.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    alert_id: str
    rule: str = Field(description="The rule name, e.g. login_plateau.")
    feature: str = Field("", description="The key feature, for feature_unused; else empty.")
    severity: Severity
    kind: NotificationKind
    as_of: date = Field(description="The snapshot's day; 'renews in N days' counts from it.")
    account_id: str
    account_name: str | None = None
    score: float | None = None
    band: Band
    mrr: float | None = None
    currency: str = Field(
        fmt.DEFAULT_CURRENCY,
        description="The installation's currency (``currency:`` of TEND_CONFIG), set when sent.",
    )
    renewal_date: date | None = None
    reason: str = Field(description="What was measured, in numbers.")
    next_step: str = Field(description="What the CSM could do about it.")
    console_url: str = Field(description="The account's page in the tend console.")
    csm_name: str | None = None
    csm_email: str | None = None
    csm_slack_user: str | None = Field(
        None, description="The CSM's Slack member id: the message mentions them."
    )
    started_on: date | None = Field(None, description="Event-time day the condition began.")
    items: tuple[NotificationItem, ...] = ()

    @property
    def account_label(self) -> str:
        return (self.account_name or "").strip() or self.account_id


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The classified outcome of one send.

    ``retry`` carries ``retry_after_s``: the server's own wait (Slack's ``Retry-After``), kept as
    is, or a first-attempt hint that :meth:`delay` grows per attempt (``backoff``) for faults
    such as 5xx answers and timeouts.
    """

    outcome: Outcome
    reason: str = ""
    retry_after_s: float | None = None
    backoff: bool = False
    posted: tuple[str, str] | None = None
    """Delivered through Slack's Web API: the message's (channel, ts), kept on the outbox row."""

    @classmethod
    def delivered(
        cls, reason: str = "", *, posted: tuple[str, str] | None = None
    ) -> DeliveryResult:
        return cls("delivered", reason, posted=posted)

    @classmethod
    def retry_after(cls, seconds: float, reason: str, *, backoff: bool = False) -> DeliveryResult:
        return cls("retry", reason, max(0.0, float(seconds)), backoff)

    @classmethod
    def failed_permanently(cls, reason: str) -> DeliveryResult:
        return cls("failed", reason)

    @property
    def is_delivered(self) -> bool:
        return self.outcome == "delivered"

    @property
    def is_retry(self) -> bool:
        return self.outcome == "retry"

    @property
    def is_failed(self) -> bool:
        return self.outcome == "failed"

    def delay(self, attempt: int, *, cap_s: float = 3600.0) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1).

        A server-given wait is honoured as is; a backoff hint doubles per attempt, up to
        ``cap_s``.
        """
        if self.retry_after_s is None:
            return 0.0
        if not self.backoff:
            return self.retry_after_s
        grown: float = self.retry_after_s * 2.0 ** max(0, attempt - 1)
        return min(cap_s, grown)


class Notifier(Protocol):
    """A delivery channel: ``send`` never raises for delivery problems (see
    :class:`DeliveryResult`)."""

    channel: Channel

    async def send(self, notification: Notification, destination: str) -> DeliveryResult: ...

    async def aclose(self) -> None: ...


def _ids(channel: Channel, notification: Notification) -> dict[str, str]:
    return {
        "channel": channel,
        "alert_id": notification.alert_id,
        "rule": notification.rule,
        "account_id": notification.account_id,
    }


def record(
    channel: Channel, result: DeliveryResult, notification: Notification, destination: str
) -> DeliveryResult:
    """Count and log one outcome (``destination`` must already be redacted); returns ``result``."""
    NOTIFICATIONS.labels(channel=channel, outcome=result.outcome).inc()
    if result.is_failed:
        log.warning(
            "notification failed permanently channel=%s alert_id=%s rule=%s account_id=%s "
            "destination=%s reason=%r",
            channel,
            notification.alert_id,
            notification.rule,
            notification.account_id,
            destination,
            result.reason,
            extra=_ids(channel, notification),
        )
    elif result.is_retry:
        log.info(
            "notification to retry channel=%s alert_id=%s rule=%s destination=%s "
            "retry_after_s=%s reason=%r",
            channel,
            notification.alert_id,
            notification.rule,
            destination,
            result.retry_after_s,
            result.reason,
            extra=_ids(channel, notification),
        )
    return result

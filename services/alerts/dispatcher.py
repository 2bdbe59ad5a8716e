"""The dispatcher: delivers the notification outbox through the notifiers.

Numbered, one round is:

1. Claim: in one short transaction, take up to ``batch`` ``pending`` rows whose
   ``next_attempt_at`` has come (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several
   dispatchers share the outbox), count the attempt and push ``next_attempt_at`` ahead by the
   lease. A claimed row is invisible to other rounds until the lease ends. At most a quarter of
   the lease in seconds is claimed per destination, so a paced webhook (1 message a second)
   finishes its share well before the lease ends.
2. Send each claimed row through its channel's notifier (concurrently; Slack paces itself per
   webhook).
   A CSM whose ``csm_slack`` is a Slack member id is mentioned (read from the alert row at
   the claim, so the mention follows the profile as it is now).
   A reminder (``repeat``) whose alert is no longer ``open`` (acknowledged, snoozed or
   resolved since) is marked ``skipped`` instead of claimed.
3. Mark each row as soon as its send returns, in its own transaction, and only if the claim is
   still ours (same ``attempts``): ``sent``; ``failed`` for a permanent refusal or when
   ``max_attempts`` is spent (logged and counted, never retried forever); else ``pending``
   again at the server's ``Retry-After`` or a growing backoff.

Digest rows (channel ``email_digest``, due at the digest hour) are claimed per address, all of
an address's due rows at once, and go out as ONE mail; each row is marked with its outcome.

A crash between 2 and 3 leaves the row claimed; it is sent again when the lease ends. So every
notification is delivered at least once and, after such a crash, at most once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import metrics as alert_metrics
from services.alerts.notifiers.base import DeliveryResult, Notification, Notifier
from services.alerts.routing import DIGEST_CHANNEL
from shared.clock import Clock
from shared.db.models import Alert, AlertNotification
from shared.db.types import utcnow
from shared.format import DEFAULT_CURRENCY
from shared.retry import Backoff, sleep_or_stop
from shared.slack import is_user_id

__all__ = ["Claim", "DigestSender", "Dispatcher"]

log = logging.getLogger(__name__)

ROUND_RETRY = Backoff(initial_s=0.5, max_s=30.0)
"""Waits between failed dispatcher rounds (the database is down)."""


@dataclass(frozen=True, slots=True)
class Claim:
    id: int
    channel: str
    destination: str
    payload: dict[str, Any]
    attempts: int
    csm_slack_user: str | None = None
    """The account's CSM by Slack member id, as the alert row has it now (the mention)."""


def _claim_ids(claim: Claim) -> dict[str, Any]:
    """What a log line about ``claim`` concerns (never its destination: a webhook URL is a
    secret)."""
    return {
        "notification_id": claim.id,
        "channel": claim.channel,
        "alert_id": claim.payload.get("alert_id"),
        "account_id": claim.payload.get("account_id"),
    }


class DigestSender(Protocol):
    async def send_digest(
        self, notifications: Sequence[Notification], csm: str, *, csm_name: str | None = None
    ) -> DeliveryResult: ...


class Dispatcher:
    """Delivers outbox rows: at least once each, at most one duplicate after a crash between a
    send and its mark; a failing channel ends in ``failed`` after ``max_attempts``."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        notifiers: Mapping[str, Notifier],
        clock: Clock,
        *,
        batch: int = 50,
        max_attempts: int = 8,
        lease_s: float = 120.0,
        max_backoff_s: float = 3600.0,
        idle_s: float = 1.0,
        digests: DigestSender | None = None,
        digest_max_rows: int = 2000,
        currency: str = DEFAULT_CURRENCY,
    ) -> None:
        self.sessions = sessions
        self.notifiers = dict(notifiers)
        self.clock = clock
        self.batch = batch
        self.max_attempts = max_attempts
        self.lease = timedelta(seconds=lease_s)
        self.per_destination = max(1, int(lease_s // 4))
        self.max_backoff_s = max_backoff_s
        self.idle_s = idle_s
        self.wake_event = asyncio.Event()
        self.digests = digests
        self.digest_max_rows = digest_max_rows
        self.currency = currency
        """Amounts in messages are in it (``currency:`` of TEND_CONFIG)."""

    def wake(self) -> None:
        self.wake_event.set()

    async def run(self, stop: asyncio.Event) -> None:
        failed = ROUND_RETRY.delays()
        try:
            while not stop.is_set():
                try:
                    handled = await self.run_once()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    wait = failed()
                    log.exception("dispatcher round failed (database?); retrying in %.1fs", wait)
                    await sleep_or_stop(stop, wait)
                    continue
                failed = ROUND_RETRY.delays()
                if handled >= self.batch:
                    continue  # more may be due right now
                self.wake_event.clear()
                waiters = [
                    asyncio.create_task(stop.wait()),
                    asyncio.create_task(self.wake_event.wait()),
                ]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait(
                        waiters, timeout=self.idle_s, return_when=asyncio.FIRST_COMPLETED
                    )
                for w in waiters:
                    w.cancel()
        finally:
            for notifier in self.notifiers.values():
                with contextlib.suppress(Exception):
                    await notifier.aclose()

    async def run_once(self) -> int:
        """One round: claim, send, mark. Returns how many rows were claimed."""
        claims = await self.claim()
        digests = await self.claim_digests()
        work = [self._deliver(c) for c in claims]
        work += [self._deliver_digest(address, group) for address, group in digests.items()]
        if work:
            await asyncio.gather(*work)
        return len(claims)

    async def claim(self, *, digests: bool = False) -> list[Claim]:
        now = self.clock.now()
        channel = AlertNotification.channel
        async with self.sessions() as session, session.begin():
            found = await session.execute(
                select(AlertNotification, Alert.status, Alert.csm_slack)
                .join(Alert, Alert.id == AlertNotification.alert_id)
                .where(
                    AlertNotification.status == "pending",
                    AlertNotification.next_attempt_at <= now,
                    channel == DIGEST_CHANNEL if digests else channel != DIGEST_CHANNEL,
                )
                .order_by(AlertNotification.next_attempt_at, AlertNotification.id)
                .limit(self.digest_max_rows if digests else self.batch)
                .with_for_update(skip_locked=True, of=AlertNotification)
            )
            claims = []
            taken: dict[str, int] = {}
            for row, alert_status, csm_slack in found.all():
                if row.kind == "repeat" and alert_status != "open":
                    # Acknowledged, snoozed or resolved since the reminder was decided.
                    row.status = "skipped"
                    row.last_error = f"not sent: the alert is {alert_status}"
                    alert_metrics.DISPATCHED.labels(row.channel, "skipped").inc()
                    continue
                if not digests:
                    # Slack paces a webhook to 1 message a second: claim no more for one
                    # destination than it can send well within the lease.
                    taken[row.destination] = taken.get(row.destination, 0) + 1
                    if taken[row.destination] > self.per_destination:
                        continue
                row.attempts += 1
                row.next_attempt_at = now + self.lease
                member = csm_slack if is_user_id(csm_slack) else None
                claims.append(
                    Claim(
                        row.id,
                        row.channel,
                        row.destination,
                        dict(row.payload),
                        row.attempts,
                        member,
                    )
                )
            pending, oldest = (
                await session.execute(
                    select(func.count(), func.min(AlertNotification.created_at)).where(
                        AlertNotification.status == "pending"
                    )
                )
            ).one()
        alert_metrics.OUTBOX_PENDING.set(int(pending or 0))
        # created_at is stamped with the wall clock, so the age is measured on it too.
        alert_metrics.OUTBOX_OLDEST_AGE.set(
            max(0.0, (utcnow() - _aware(oldest)).total_seconds()) if oldest is not None else 0.0
        )
        return claims

    async def claim_digests(self) -> dict[str, list[Claim]]:
        """Every due digest row, by address (a digest is the day's rows of one address)."""
        groups: dict[str, list[Claim]] = {}
        for c in await self.claim(digests=True):
            groups.setdefault(c.destination, []).append(c)
        return groups

    async def _deliver_digest(self, address: str, group: list[Claim]) -> None:
        valid: list[tuple[Claim, Notification]] = []
        for c in group:
            try:
                valid.append((c, self._notification(c)))
            except ValidationError as err:
                bad = f"bad payload: {err.error_count()} errors"
                await self._mark(c, DeliveryResult.failed_permanently(bad))
        if not valid:
            return
        if self.digests is None:
            result = DeliveryResult.failed_permanently("email digests are not configured")
        else:
            try:
                result = await self.digests.send_digest([n for _, n in valid], address)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.exception(
                    "the digest to %s raised",
                    address,
                    extra={"channel": "email", "count": len(valid)},
                )
                result = DeliveryResult.retry_after(60.0, type(err).__name__, backoff=True)
        for c, _ in valid:
            await self._mark(c, result)

    def _notification(self, claim: Claim) -> Notification:
        """The outbox row's message as it is sent now: in the installation's currency, and
        mentioning the CSM's Slack member id the alert row names."""
        notification = Notification.model_validate(claim.payload)
        update: dict[str, str] = {"currency": self.currency}
        if claim.csm_slack_user and notification.csm_slack_user is None:
            update["csm_slack_user"] = claim.csm_slack_user
        return notification.model_copy(update=update)

    async def _deliver(self, claim: Claim) -> None:
        result = await self._send(claim)
        await self._mark(claim, result)

    async def _send(self, claim: Claim) -> DeliveryResult:
        notifier = self.notifiers.get(claim.channel)
        if notifier is None:
            return DeliveryResult.failed_permanently(f"channel {claim.channel} is not configured")
        try:
            notification = self._notification(claim)
        except ValidationError as err:
            return DeliveryResult.failed_permanently(f"bad payload: {err.error_count()} errors")
        try:
            return await notifier.send(notification, claim.destination)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            # The contract says a notifier does not raise; if one does, retry rather than lose.
            log.exception(
                "notifier %s raised for notification %s",
                claim.channel,
                claim.id,
                extra=_claim_ids(claim),
            )
            # The exception's text may carry a URL or an answer: stored is only its type.
            return DeliveryResult.retry_after(
                30.0, f"notifier raised {type(err).__name__}", backoff=True
            )

    def _outcome(self, claim: Claim, result: DeliveryResult, now: datetime) -> dict[str, Any]:
        if result.is_delivered:
            channel, ts = result.posted or (None, None)
            return {
                "status": "sent",
                "sent_at": now,
                "last_error": None,
                "slack_channel": channel,
                "slack_ts": ts,
            }
        if result.is_failed:
            return {"status": "failed", "last_error": result.reason[:2000]}
        if claim.attempts >= self.max_attempts:
            return {
                "status": "failed",
                "last_error": f"gave up after {claim.attempts} attempts: {result.reason}"[:2000],
            }
        wait = result.delay(claim.attempts, cap_s=self.max_backoff_s)
        return {
            "status": "pending",
            "next_attempt_at": now + timedelta(seconds=wait),
            "last_error": result.reason[:2000],
        }

    async def _mark(self, claim: Claim, result: DeliveryResult) -> None:
        values = self._outcome(claim, result, self.clock.now())
        label = {"sent": "sent", "failed": "failed"}.get(values["status"], "retry")
        alert_metrics.DISPATCHED.labels(claim.channel, label).inc()
        if label == "failed":
            log.warning(
                "notification %s to %s failed for good after %d attempts: %s",
                claim.id,
                claim.channel,
                claim.attempts,
                values["last_error"],
                extra=_claim_ids(claim),
            )
        try:
            async with self.sessions() as session, session.begin():
                await session.execute(
                    update(AlertNotification)
                    .where(
                        AlertNotification.id == claim.id,
                        AlertNotification.status == "pending",
                        AlertNotification.attempts == claim.attempts,
                    )
                    .values(**values)
                )
        except Exception:
            # The claim's lease ends and the row is sent again: a duplicate, never a loss.
            log.exception(
                "could not mark notification %s as %s",
                claim.id,
                values["status"],
                extra=_claim_ids(claim),
            )


def _aware(at: datetime) -> datetime:
    # func.min() bypasses the column type, so SQLite hands back a naive UTC datetime.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)

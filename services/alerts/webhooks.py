"""The webhook dispatcher: delivers the webhook outbox (``webhook_deliveries``) to the
operator's endpoints, signed (docs/webhooks.md).

Numbered, one round is:

1. Claim: in one short transaction, take up to ``batch`` ``pending`` rows whose
   ``next_attempt_at`` has come (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas share
   the outbox), count the attempt and push ``next_attempt_at`` ahead by the lease.
2. POST each row's payload to its endpoint (concurrently), with ``Tend-Signature`` computed
   now (so a retry is signed afresh), ``Tend-Event`` and ``Tend-Delivery`` (the idempotency id,
   the same on every attempt of the row).
3. Mark each row in its own transaction, only if the claim is still ours (same ``attempts``):
   ``sent`` on a 2xx answer; ``failed`` on 410 Gone, when the endpoint is no longer configured,
   or when ``max_attempts`` is spent; else ``pending`` again after an exponential backoff with
   jitter (or the answer's ``Retry-After``, when longer).

A crash between 2 and 3 sends the row again when its lease ends: at least once, and a receiver
drops the duplicate by ``Tend-Delivery``. Every wait wakes on shutdown; a round in flight
finishes within the POST timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import metrics as alert_metrics
from services.alerts.dispatcher import ROUND_RETRY
from shared.clock import Clock
from shared.db.models import WebhookDelivery
from shared.retry import sleep_or_stop
from shared.webhooks.endpoints import WebhooksConfig
from shared.webhooks.payload import SIGNATURE_HEADER, body_bytes, signature_header

__all__ = ["WebhookDispatcher", "retry_wait"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Claim:
    id: int
    delivery_id: str
    endpoint: str
    event_type: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True)
class _Result:
    sent: bool
    error: str = ""
    permanent: bool = False
    retry_after_s: float | None = None


def retry_wait(
    hooks: WebhooksConfig, attempts: int, rng: random.Random, retry_after_s: float | None = None
) -> float:
    """The wait after failed attempt ``attempts`` (from 1): doubling from
    ``initial_backoff_s`` up to ``max_backoff_s``, drawn from its upper half (equal jitter);
    at least the receiver's ``Retry-After`` (itself capped at ``max_backoff_s``)."""
    nominal = min(hooks.max_backoff_s, hooks.initial_backoff_s * 2.0 ** max(0, attempts - 1))
    wait = nominal / 2 + rng.uniform(0, nominal / 2)
    return max(wait, min(retry_after_s or 0.0, hooks.max_backoff_s))


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


class WebhookDispatcher:
    """Delivers webhook outbox rows: at least once each (one duplicate at most after a crash
    between a POST and its mark, same ``Tend-Delivery``); a failing endpoint ends in
    ``failed`` after ``max_attempts``, never retried forever."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        hooks: WebhooksConfig,
        clock: Clock,
        *,
        batch: int = 50,
        lease_s: float = 120.0,
        idle_s: float = 1.0,
        retention: timedelta = timedelta(days=30),
        rng: random.Random | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.sessions = sessions
        self.hooks = hooks
        self.clock = clock
        self.batch = batch
        self.lease = timedelta(seconds=max(lease_s, hooks.timeout_s * 2))
        self.idle_s = idle_s
        self.retention = retention
        self.rng = rng or random.Random()
        self.wake_event = asyncio.Event()
        self.client = client or httpx.AsyncClient(
            timeout=hooks.timeout_s, follow_redirects=False, trust_env=False
        )

    def wake(self) -> None:
        self.wake_event.set()

    async def run(self, stop: asyncio.Event, purge_every_s: float = 3600.0) -> None:
        failed = ROUND_RETRY.delays()
        next_purge = 0.0
        try:
            while not stop.is_set():
                try:
                    if time.monotonic() >= next_purge:
                        await self.purge_once()
                        next_purge = time.monotonic() + purge_every_s
                    handled = await self.run_once()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    wait = failed()
                    log.exception("webhook round failed (database?); retrying in %.1fs", wait)
                    await sleep_or_stop(stop, wait)
                    continue
                failed = ROUND_RETRY.delays()
                if handled >= self.batch:
                    continue
                await self._idle(stop)
        finally:
            await self.client.aclose()

    async def _idle(self, stop: asyncio.Event) -> None:
        self.wake_event.clear()
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(self.wake_event.wait())]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait(waiters, timeout=self.idle_s, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()

    async def run_once(self) -> int:
        """One round: claim, send, mark. Returns how many rows were claimed."""
        claims = await self.claim()
        if claims:
            await asyncio.gather(*(self._deliver(c) for c in claims))
        return len(claims)

    async def claim(self) -> list[_Claim]:
        now = self.clock.now()
        d = WebhookDelivery
        async with self.sessions() as session, session.begin():
            rows = await session.scalars(
                select(d)
                .where(d.status == "pending", d.next_attempt_at <= now)
                .order_by(d.next_attempt_at, d.id)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            )
            claims = []
            for row in rows:
                row.attempts += 1
                row.next_attempt_at = now + self.lease
                claims.append(
                    _Claim(
                        row.id,
                        row.delivery_id,
                        row.endpoint,
                        row.event_type,
                        dict(row.payload),
                        row.attempts,
                    )
                )
            pending = await session.scalar(
                select(func.count()).select_from(d).where(d.status == "pending")
            )
        alert_metrics.WEBHOOK_PENDING.set(int(pending or 0))
        return claims

    async def _deliver(self, claim: _Claim) -> None:
        await self._mark(claim, await self.send(claim))

    async def send(self, claim: _Claim) -> _Result:
        endpoint = self.hooks.endpoint(claim.endpoint)
        if endpoint is None:
            return _Result(False, f"endpoint {claim.endpoint!r} is not configured", True)
        body = body_bytes(claim.payload)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "tend-webhooks/1",
            "Tend-Event": claim.event_type,
            "Tend-Delivery": claim.delivery_id,
            SIGNATURE_HEADER: signature_header(endpoint.signing_secret(), int(time.time()), body),
        }
        try:
            response = await self.client.post(endpoint.url, content=body, headers=headers)
        except asyncio.CancelledError:
            raise
        except httpx.HTTPError as err:
            return _Result(False, f"no answer: {type(err).__name__}")
        if 200 <= response.status_code < 300:
            return _Result(True)
        reason = f"HTTP {response.status_code}"
        if response.status_code == 410:
            return _Result(False, f"{reason}: the endpoint is gone", True)
        return _Result(
            False, reason, retry_after_s=_retry_after(response.headers.get("Retry-After"))
        )

    def _outcome(self, claim: _Claim, result: _Result, now: datetime) -> dict[str, Any]:
        if result.sent:
            return {"status": "sent", "sent_at": now, "last_error": None}
        if result.permanent:
            return {"status": "failed", "last_error": result.error}
        if claim.attempts >= self.hooks.max_attempts:
            error = f"gave up after {claim.attempts} attempts: {result.error}"
            return {"status": "failed", "last_error": error}
        wait = retry_wait(self.hooks, claim.attempts, self.rng, result.retry_after_s)
        return {
            "status": "pending",
            "next_attempt_at": now + timedelta(seconds=wait),
            "last_error": result.error,
        }

    async def _mark(self, claim: _Claim, result: _Result) -> None:
        values = self._outcome(claim, result, self.clock.now())
        label = {"sent": "sent", "failed": "failed"}.get(values["status"], "retry")
        alert_metrics.WEBHOOK_DELIVERIES.labels(claim.endpoint, label).inc()
        ids = {"delivery_id": claim.delivery_id, "endpoint": claim.endpoint}
        if label == "failed":
            log.warning(
                "webhook %s to %s failed for good after %d attempts: %s",
                claim.delivery_id,
                claim.endpoint,
                claim.attempts,
                values["last_error"],
                extra=ids,
            )
        d = WebhookDelivery
        try:
            async with self.sessions() as session, session.begin():
                await session.execute(
                    update(d)
                    .where(d.id == claim.id, d.status == "pending", d.attempts == claim.attempts)
                    .values(**values)
                )
        except Exception:
            # The lease ends and the row is sent again: a duplicate, never a loss.
            log.exception("could not mark webhook %s", claim.delivery_id, extra=ids)

    async def purge_once(self) -> int:
        """Delete sent and failed rows older than the retention; pending rows stay."""
        d = WebhookDelivery
        before = self.clock.now() - self.retention
        async with self.sessions() as session, session.begin():
            done = await session.execute(
                delete(d).where(d.status.in_(["sent", "failed"]), d.created_at < before)
            )
        return int(getattr(done, "rowcount", 0) or 0)

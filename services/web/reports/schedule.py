"""The monthly send: each account's report of the month before goes to its customer contacts,
the CSM in copy, on ``TEND_REPORTS__SEND_DAY`` (from ``SEND_HOUR_UTC``), exactly once per
account and month. Run by the web service (``tend web``, and ``tend up``).

Numbered, one round of :meth:`ReportScheduler.run_once` is:

1. Enqueue: from the send day on (a service down that day catches up later in the month), one
   ``report_deliveries`` row per account that was a customer in the month and has customer
   contacts, keyed (account, month) and inserted with ON CONFLICT DO NOTHING, so restarts and
   replicas enqueue each report once.
2. Claim: in one short transaction, up to ``batch`` ``pending`` rows whose ``next_attempt_at``
   has come (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas share them): count the
   attempt and push ``next_attempt_at`` ahead by the lease, which hides the row from others.
3. Send each: build the report, render it, print the PDF, mail it (one SMTP connection a
   message).
4. Mark, only if the claim is still ours (same ``attempts``): ``sent``; else ``pending`` again
   after a growing backoff with jitter (:class:`shared.retry.Backoff`), or ``failed`` once
   ``max_attempts`` are spent. An account that lost its contacts since is ``failed`` at once.

A crash between 3 and 4 leaves the row claimed: it is sent again when the lease ends (at least
once; at most once more after such a crash). Every wait wakes on shutdown; a round cut short
by shutdown leaves its claims to the lease.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.web.reports.build import (
    build_report,
    existed_in,
    key_features_of,
    last_month,
    month_end,
)
from services.web.reports.pdf import PdfError, print_pdf
from services.web.reports.render import render_html
from services.web.reports.send import customer_recipients, report_email
from shared.clock import Clock, SystemClock
from shared.config import TendConfig
from shared.db.models import Account, ReportDelivery
from shared.db.upsert import insert_for
from shared.retry import sleep_or_stop
from shared.settings import Settings
from shared.smtp import SmtpError, SmtpSettings, send_one

log = logging.getLogger(__name__)
DELIVERIES: Table = ReportDelivery.__table__  # type: ignore[assignment]

__all__ = ["ReportScheduler", "due_month"]


def due_month(now: datetime, send_day: int, send_hour: int) -> date | None:
    """The month whose reports are due at ``now`` (the month before), or None before the send
    day and hour of this month."""
    if (now.day, now.hour) < (send_day, send_hour):
        return None
    return last_month(now.date())


@dataclass(frozen=True, slots=True)
class Claim:
    account_id: str
    month: str
    attempts: int


class ReportScheduler:
    """Sends the monthly customer reports through the ``report_deliveries`` outbox: each
    (account, month) once, retried with backoff and jitter, shared by replicas. Never raises
    out of a round: a failure is logged and the round tried again after ``interval_s``."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        config: TendConfig | None = None,
        *,
        clock: Clock | None = None,
        batch: int = 20,
        rng: random.Random | None = None,
    ) -> None:
        if settings.reports.send_day is None:
            raise ValueError("TEND_REPORTS__SEND_DAY is not set: no schedule")
        self.sessions = sessions
        self.settings = settings
        self.reports = settings.reports
        self.send_day = settings.reports.send_day
        self.config = config
        self.clock = clock or SystemClock()
        self.batch = batch
        self.rng = rng or random.Random()
        self.smtp = SmtpSettings.from_settings(settings, purpose="TEND_REPORTS__SEND_DAY")

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # the database may be down: try again next round
                log.exception("monthly report round failed; trying again")
            if await sleep_or_stop(stop, self.reports.interval_s):
                return

    async def run_once(self) -> int:
        """Enqueue what is due, then claim, send and mark; returns how many were sent."""
        await self.enqueue()
        sent = 0
        for claim in await self.claim():
            sent += await self.deliver(claim)
        return sent

    async def enqueue(self) -> int:
        now = self.clock.now()
        first = due_month(now, self.send_day, self.reports.send_hour_utc)
        if first is None:
            return 0
        month = first.strftime("%Y-%m")
        end = month_end(first)
        async with self.sessions() as session, session.begin():
            queued = set(
                await session.scalars(
                    select(ReportDelivery.account_id).where(ReportDelivery.month == month)
                )
            )
            accounts = await session.scalars(
                select(Account).where(Account.customer_emails.is_not(None))
            )
            rows = [
                {
                    "account_id": a.account_id,
                    "month": month,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "recipients": [],
                    "created_at": now,
                }
                for a in accounts
                if a.account_id not in queued
                and a.customer_emails
                and await existed_in(session, a, first, end)
            ]
            if rows:
                stmt = insert_for(session, DELIVERIES).values(rows)
                await session.execute(stmt.on_conflict_do_nothing())
        return len(rows)

    async def claim(self) -> list[Claim]:
        now = self.clock.now()
        lease = now + timedelta(seconds=self.reports.claim_lease_s)
        async with self.sessions() as session, session.begin():
            due = (
                await session.execute(
                    select(ReportDelivery.account_id, ReportDelivery.month, ReportDelivery.attempts)
                    .where(
                        ReportDelivery.status == "pending", ReportDelivery.next_attempt_at <= now
                    )
                    .order_by(ReportDelivery.next_attempt_at, ReportDelivery.account_id)
                    .limit(self.batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            claims = []
            for account_id, month, attempts in due:
                # Compare and set: where SKIP LOCKED does not exist (SQLite), of two replicas
                # that read the same row only the first one's update matches.
                taken = await session.execute(
                    update(ReportDelivery)
                    .where(
                        ReportDelivery.account_id == account_id,
                        ReportDelivery.month == month,
                        ReportDelivery.attempts == attempts,
                        ReportDelivery.status == "pending",
                    )
                    .values(attempts=attempts + 1, next_attempt_at=lease)
                )
                if taken.rowcount == 1:  # type: ignore[attr-defined]
                    claims.append(Claim(account_id, month, attempts + 1))
        return claims

    async def deliver(self, claim: Claim) -> int:
        """Send one claimed report and mark it; 1 when it was sent."""
        first = date.fromisoformat(f"{claim.month}-01")
        today = self.clock.now().date()
        async with self.sessions() as session:
            account = await session.get(Account, claim.account_id)
            if account is None:
                return await self._mark(claim, "failed", "the account is gone")
            keys = key_features_of(self.config)
            r = await build_report(session, account, first, today, keys, self.config)
        who = customer_recipients(r, self.settings)
        if who is None:
            return await self._mark(claim, "failed", "the account has no customer_emails now")
        page = render_html(r, config=self.config)
        try:
            pdf = None
            if self.reports.chromium:
                pdf = await print_pdf(page, self.reports.chromium, self.reports.pdf_timeout_s)
            msg = report_email(
                r, page, self.smtp.sender, who.to, cc=who.cc, reply_to=who.reply_to, pdf=pdf
            )
            refused = await send_one(self.smtp, msg)
        except SmtpError as err:
            if not err.temporary:  # a refusal that retrying cannot change
                return await self._mark(claim, "failed", str(err))
            return await self._retry(claim, str(err))
        except PdfError as err:
            return await self._retry(claim, str(err))
        note = f"refused: {', '.join(sorted(refused))}" if refused else None
        return await self._mark(claim, "sent", note, [*who.to, *who.cc])

    async def _retry(self, claim: Claim, error: str) -> int:
        if claim.attempts >= self.reports.max_attempts:
            log.error(
                "monthly report given up account_id=%s month=%s attempts=%d error=%s",
                claim.account_id,
                claim.month,
                claim.attempts,
                error,
            )
            return await self._mark(claim, "failed", error)
        nominal = min(
            self.reports.max_backoff_s, self.reports.retry_initial_s * 2 ** (claim.attempts - 1)
        )
        wait = nominal / 2 + self.rng.uniform(0, nominal / 2)
        log.warning(
            "monthly report not sent, retrying account_id=%s month=%s in_s=%.0f error=%s",
            claim.account_id,
            claim.month,
            wait,
            error,
        )
        at = self.clock.now() + timedelta(seconds=wait)
        return await self._mark(claim, "pending", error, next_attempt_at=at)

    async def _mark(
        self,
        claim: Claim,
        status: str,
        error: str | None,
        recipients: list[str] | None = None,
        *,
        next_attempt_at: datetime | None = None,
    ) -> int:
        values: dict[str, object] = {"status": status, "last_error": error}
        if status == "sent":
            values.update(sent_at=self.clock.now(), recipients=recipients or [])
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(ReportDelivery)
                .where(
                    ReportDelivery.account_id == claim.account_id,
                    ReportDelivery.month == claim.month,
                    ReportDelivery.attempts == claim.attempts,  # still our claim
                )
                .values(**values)
            )
        return 1 if status == "sent" else 0

"""Recording outcomes with their consequences: what the CLI import and the API both call.

1. the outcomes are upserted on their natural key and the MRR history and stage changes of
   their accounts rebuilt (:class:`~shared.outcomes.repository.OutcomeRepository`);
2. a renewal moves the account's renewal date (profile) to the ``new_term_end`` of its latest
   renewal, and marks the account for re-scoring (renewal-near rules read that date);
3. an account cancelled today has its active alerts resolved with the reason "account
   cancelled" (:mod:`shared.alerting.cancellation`).

All in the caller's transaction (never commits), so a refused batch leaves nothing behind, and
recording the same outcomes again changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.accounts_csv import AccountRow, import_accounts
from shared.alerting.cancellation import load_cancellations, resolve_cancelled_alerts
from shared.db.models import Account, Outcome
from shared.outcomes.model import CustomerOutcome, OutcomesPolicy
from shared.outcomes.repository import OutcomeRepository, RecordResult
from shared.webhooks.endpoints import WebhooksConfig
from shared.webhooks.outbox import record_cancelled_alerts


@dataclass(frozen=True, slots=True)
class Recorded:
    result: RecordResult
    renewal_dates_moved: int
    alerts_resolved: int


async def move_renewal_dates(session: AsyncSession, account_ids: Sequence[str]) -> int:
    """Set each account's renewal date to the new term end of its latest renewal (by effective
    date), where it differs; returns the number of accounts changed."""
    ids = sorted(set(account_ids))
    if not ids:
        return 0
    latest: dict[str, tuple[date, date | None]] = {}
    rows = await session.execute(
        select(Outcome.account_id, Outcome.effective_on, Outcome.new_term_end).where(
            Outcome.account_id.in_(ids), Outcome.kind == "renewal"
        )
    )
    for account_id, effective_on, term_end in rows:
        if account_id not in latest or effective_on > latest[account_id][0]:
            latest[account_id] = (effective_on, term_end)
    if not latest:
        return 0
    found = await session.execute(
        select(Account.account_id, Account.renewal_date).where(
            Account.account_id.in_(sorted(latest))
        )
    )
    current: dict[str, date | None] = {a: d for a, d in found}
    moved = [
        AccountRow(a, {"renewal_date": end})
        for a, (_, end) in sorted(latest.items())
        if end is not None and current.get(a) != end
    ]
    if moved:
        await import_accounts(session, moved)
    return len(moved)


async def record_outcomes(
    session: AsyncSession,
    outcomes: Sequence[CustomerOutcome],
    *,
    now: datetime,
    policy: OutcomesPolicy | None = None,
    webhooks: WebhooksConfig | None = None,
) -> Recorded:
    """Record ``outcomes`` (checked with ``outcome_problems`` by the caller) as of ``now``'s
    day. Raises what :meth:`OutcomeRepository.record` raises (unknown accounts, contradictory
    outcomes)."""
    today = now.date()
    result = await OutcomeRepository(session, policy).record(outcomes, as_of=today)
    ids = sorted({o.account_id for o in outcomes})
    moved = await move_renewal_dates(session, ids)
    cancelled = (await load_cancellations(session, ids)).cancelled_on(today)
    resolved = await resolve_cancelled_alerts(session, cancelled, now) if cancelled else []
    await record_cancelled_alerts(session, webhooks, resolved, now)
    return Recorded(result, moved, len(resolved))

"""A cancelled account stops alerting (issue 12; docs/retention.md).

When a cancellation is in effect (recorded by an operator: ``tend accounts import --outcomes``
or ``POST /v1/accounts/{id}/outcomes``), the account's active alerts resolve with the reason
``"account cancelled"`` (``resolved_by``; their messages still in the outbox are skipped),
and the alerts consumer judges none of its scores dated on a day it is cancelled, nor any
while it is cancelled today: no new alert, no reminder.
A renewal after the cancellation reactivates the account, and its scores are judged again.

Both the web service (recording an outcome) and the alerts consumer (a cancellation dated ahead
coming into effect, or a score arriving after it) call this, so neither imports the other.
Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Final, cast

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.alerting.lifecycle import ACTIVE, AlertState, resolve
from shared.alerting.state import lock_account_alerts, set_state, state_of
from shared.db.models import Alert, AlertEpisode, AlertNotification, Outcome
from shared.outcomes.lifecycle import is_cancelled
from shared.outcomes.model import CustomerOutcome, OutcomeKind, in_day_order

ACCOUNT_CANCELLED: Final = "account cancelled"
"""The ``resolved_by`` of an alert (and episode) its account's cancellation ended."""

_CHUNK = 500


def cancel(state: AlertState, now: datetime) -> AlertState:
    """An active alert -> resolved because its account was cancelled: a manual resolve (a
    replay keeps it) whose reason is :data:`ACCOUNT_CANCELLED`."""
    return resolve(state, now).model_copy(update={"resolved_by": ACCOUNT_CANCELLED})


@dataclass(frozen=True, slots=True)
class Cancellations:
    """The cancellations and renewals (in day order) of the accounts that have a cancellation;
    the other accounts were never cancelled."""

    by_account: dict[str, list[CustomerOutcome]] = field(default_factory=dict)

    def on(self, account_id: str, day: date) -> bool:
        """Whether ``account_id`` is cancelled on ``day``."""
        outcomes = self.by_account.get(account_id)
        return outcomes is not None and is_cancelled(outcomes, day)

    def cancelled_on(self, day: date) -> list[str]:
        return sorted(a for a in self.by_account if self.on(a, day))

    def __bool__(self) -> bool:
        return bool(self.by_account)


async def load_cancellations(session: AsyncSession, account_ids: Iterable[str]) -> Cancellations:
    """The cancellations of these accounts (one query per 500 accounts)."""
    ids = sorted(set(account_ids))
    found: dict[str, list[CustomerOutcome]] = {}
    for i in range(0, len(ids), _CHUNK):
        rows = await session.execute(
            select(Outcome.account_id, Outcome.kind, Outcome.effective_on).where(
                Outcome.account_id.in_(ids[i : i + _CHUNK]),
                Outcome.kind.in_(("cancellation", "renewal")),
            )
        )
        for account_id, kind, day in rows:
            kind_ = cast(OutcomeKind, kind)
            found.setdefault(account_id, []).append(CustomerOutcome(account_id, kind_, day))
    return Cancellations(
        {
            a: in_day_order(outcomes)
            for a, outcomes in found.items()
            if any(o.kind == "cancellation" for o in outcomes)
        }
    )


async def resolve_cancelled_alerts(
    session: AsyncSession, account_ids: Sequence[str], now: datetime
) -> list[Alert]:
    """Resolve every active alert of these (cancelled) accounts with the reason
    :data:`ACCOUNT_CANCELLED`, rows locked as for any manual move, and end their open episodes
    in the alert history the same way; their notifications not sent yet are skipped. Returns
    the alerts resolved. No notification is sent: the operator who recorded the cancellation
    knows."""
    rows = await lock_account_alerts(session, account_ids)
    resolved = [r for r in rows.values() if r.status in ACTIVE]
    for row in resolved:
        set_state(row, cancel(state_of(row), now), now)
        await session.execute(
            update(AlertEpisode)
            .where(
                AlertEpisode.account_id == row.account_id,
                AlertEpisode.rule == row.rule,
                AlertEpisode.feature == row.feature,
                AlertEpisode.resolved_on.is_(None),
            )
            .values(resolved_on=row.resolved_on or now.date(), resolved_by=ACCOUNT_CANCELLED)
        )
    if rows:
        # Messages not sent yet (a retry, a digest due later) would speak of a live risk.
        await session.execute(
            update(AlertNotification)
            .where(
                AlertNotification.status == "pending",
                AlertNotification.alert_id.in_([r.id for r in rows.values()]),
            )
            .values(status="skipped", last_error=f"not sent: {ACCOUNT_CANCELLED}")
        )
    return resolved

"""Accounts' lifecycle stages today, derived from their profiles and outcomes as they are now
(:func:`shared.outcomes.lifecycle.stage_on`): what the read API shows and filters on.

Derived on every read, not read from ``lifecycle_stage_changes``: stages move with time alone
(New ends, a Renewal window opens), and that table is only as fresh as its last rebuild.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from shared.outcomes.lifecycle import stage_on
from shared.outcomes.model import OutcomesPolicy, Stage
from shared.outcomes.repository import OutcomeRepository


async def current_stages(
    session: AsyncSession,
    account_ids: Sequence[str] | None,
    today: date,
    policy: OutcomesPolicy | None = None,
) -> dict[str, Stage | None]:
    """Each account's stage on ``today`` (every account when ``account_ids`` is None); None
    for an account with no known start."""
    policy = policy or OutcomesPolicy()
    # stored=True: the stage needs no MRR, so a profile MRR that contradicts the outcomes
    # (which deriving the MRR history refuses) cannot fail a listing.
    histories = await OutcomeRepository(session, policy).histories(account_ids, stored=True)
    return {h.account_id: stage_on(h, today, policy) for h in histories}

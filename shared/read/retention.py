"""Churn, retention, lifetime value and time to value over a range of months, as the retention
API and the console's retention page read them (docs/retention.md).

One function reads every account's profile and outcomes and hands them to the pure maths of
:mod:`shared.outcomes.retention` and :mod:`shared.outcomes.value`, so the two never disagree.
(The Grafana panels are SQL over the same tables; tests/ops/test_retention_panels.py checks
they agree with the API.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from shared.outcomes.model import AccountHistory, OutcomesPolicy
from shared.outcomes.repository import OutcomeRepository
from shared.outcomes.retention import Month, RetentionRow, SegmentBy, monthly_retention
from shared.outcomes.value import (
    CohortTimeToValue,
    SegmentValue,
    segment_values,
    time_to_value,
)


@dataclass(frozen=True, slots=True)
class RetentionFigures:
    first: Month
    last: Month
    by: SegmentBy | None
    histories: list[AccountHistory]
    """Every account's history (for per-account CLV)."""
    months: list[RetentionRow]
    """Per month and segment, month then segment order."""
    lifetime_value: list[SegmentValue]
    """Per segment, pooled over the range."""
    time_to_value: list[CohortTimeToValue]
    """Signup cohorts within the range (none without key features)."""


def last_complete_month(today: date) -> Month:
    return Month.of(Month.of(today).first_day - timedelta(days=1))


def months_back(last: Month, n: int) -> Month:
    """The month ``n - 1`` months before ``last`` (a range of ``n`` months ending at ``last``)."""
    first = last
    for _ in range(n - 1):
        first = Month.of(first.first_day - timedelta(days=1))
    return first


async def retention_figures(
    session: AsyncSession,
    first: Month,
    last: Month,
    *,
    by: SegmentBy | None,
    policy: OutcomesPolicy,
    key_features: Sequence[str],
) -> RetentionFigures:
    """Raises :class:`shared.outcomes.mrr.InconsistentOutcomes` when an account's outcomes
    contradict its profile's MRR."""
    repo = OutcomeRepository(session, policy)
    histories = await repo.histories()
    rows = monthly_retention(histories, first, last, by=by, policy=policy)
    cohorts: list[CohortTimeToValue] = []
    if key_features:
        first_use = await repo.first_key_feature_use(key_features)
        cohorts = time_to_value(
            (h.start, first_use.get(h.account_id))
            for h in histories
            if h.start is not None and first <= Month.of(h.start) <= last
        )
    return RetentionFigures(first, last, by, histories, rows, segment_values(rows, policy), cohorts)

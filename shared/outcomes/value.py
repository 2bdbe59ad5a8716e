"""Customer lifetime value and time to customer value (pure; docs/retention.md).

CLV = ARPA x gross margin x expected lifetime, the expected lifetime being 1 / monthly logo
churn rate capped at ``max_lifetime_months`` (so zero churn has a finite, stated value). Over a
range of months the churn rate is pooled: churned logos / account-months in the cohorts, and
ARPA = the cohorts' starting MRR / account-months. An account's CLV uses its own ARPA (its
mean MRR at the start of the months it was a customer) and its segment's churn rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from statistics import median

from shared.outcomes.model import AccountHistory, OutcomesPolicy
from shared.outcomes.retention import (
    CohortMember,
    Month,
    RetentionRow,
    SegmentBy,
    monthly_cohorts,
    summarize,
)


@dataclass(frozen=True, slots=True)
class Lifetime:
    churn_rate: float | None
    arpa: float | None
    months: float | None
    capped: bool
    clv: float | None


def lifetime_value(
    arpa: float | None, churn_rate: float | None, policy: OutcomesPolicy
) -> Lifetime:
    """``None`` figures when there is nothing to measure (no account-months)."""
    if arpa is None or churn_rate is None:
        return Lifetime(churn_rate, arpa, None, False, None)
    cap = float(policy.max_lifetime_months)
    capped = churn_rate <= 0 or 1 / churn_rate > cap
    life = cap if capped else 1 / churn_rate
    return Lifetime(churn_rate, arpa, life, capped, arpa * policy.gross_margin * life)


@dataclass(frozen=True, slots=True)
class SegmentValue:
    segment: str
    account_months: int
    churned_accounts: int
    lifetime: Lifetime


def segment_values(rows: Iterable[RetentionRow], policy: OutcomesPolicy) -> list[SegmentValue]:
    """Pooled over the rows' months, one per segment (sorted)."""
    pooled: dict[str, tuple[int, int, float]] = {}
    for r in rows:
        n, churned, mrr = pooled.get(r.segment, (0, 0, 0.0))
        pooled[r.segment] = (
            n + r.accounts_at_start,
            churned + r.churned_accounts,
            mrr + r.starting_mrr,
        )
    out = []
    for seg in sorted(pooled):
        n, churned, mrr = pooled[seg]
        rate, arpa = (churned / n, mrr / n) if n else (None, None)
        out.append(SegmentValue(seg, n, churned, lifetime_value(arpa, rate, policy)))
    return out


@dataclass(frozen=True, slots=True)
class AccountValue:
    account_id: str
    segment: str
    """The account's segment in the last month it was a customer in the range."""
    months: int
    lifetime: Lifetime


def account_values(
    histories: Sequence[AccountHistory],
    first: Month,
    last: Month,
    *,
    by: SegmentBy | None = None,
    policy: OutcomesPolicy | None = None,
) -> list[AccountValue]:
    """CLV of every account that was a customer at the start of a month in the range."""
    policy = policy or OutcomesPolicy()
    per_account: dict[str, list[CohortMember]] = {}
    rows: list[RetentionRow] = []
    for month, groups in monthly_cohorts(histories, first, last, by=by, policy=policy):
        for seg, members in groups.items():
            rows.append(summarize(month, seg, members))
            for m in members:
                per_account.setdefault(m.account_id, []).append(m)
    rates = {v.segment: v.lifetime.churn_rate for v in segment_values(rows, policy)}
    out = []
    for account_id in sorted(per_account):
        ms = per_account[account_id]
        segment = ms[-1].segment
        arpa = sum(m.start_mrr for m in ms) / len(ms)
        out.append(
            AccountValue(account_id, segment, len(ms), lifetime_value(arpa, rates[segment], policy))
        )
    return out


@dataclass(frozen=True, slots=True)
class CohortTimeToValue:
    cohort: Month
    accounts: int
    reached: int
    median_days: float | None
    """Median days from start to first key-feature use, over the accounts that reached it."""

    @property
    def share_reached(self) -> float | None:
        return self.reached / self.accounts if self.accounts else None


def time_to_value(starts: Iterable[tuple[date, date | None]]) -> list[CohortTimeToValue]:
    """Per signup month, from ``(start, first key-feature use or None)`` pairs; a use dated
    before the start counts as day 0."""
    cohorts: dict[Month, tuple[int, list[int]]] = {}
    for start, first_use in starts:
        month = Month.of(start)
        n, days = cohorts.get(month, (0, []))
        if first_use is not None:
            days.append(max(0, (first_use - start).days))
        cohorts[month] = (n + 1, days)
    return [
        CohortTimeToValue(m, n, len(days), float(median(days)) if days else None)
        for m, (n, days) in sorted(cohorts.items())
    ]

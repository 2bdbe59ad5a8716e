"""Churn, retention and lifetime value per month and segment (pure; docs/retention.md has every
formula and edge case).

The cohort of a month is the accounts that are customers when it begins: started before its
first day and not cancelled on the day before. For each of them, ``s`` is the MRR in force when
the month begins and ``e`` when the next one begins. A cohort account cancelled at the month's
end is a churned logo and its ``s`` is churned MRR; otherwise ``e - s`` is expansion when
positive and contraction when negative. So:

- logo churn rate = churned accounts / cohort accounts
- gross revenue retention (GRR) = (S - contraction - churned) / S, with S = sum of ``s``
- net revenue retention (NRR) = (S + expansion - contraction - churned) / S

Accounts that start during the month (new business) are in the next month's cohort.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from shared.outcomes.lifecycle import is_cancelled, stage_on
from shared.outcomes.model import AccountHistory, OutcomesPolicy
from shared.outcomes.mrr import mrr_before

SegmentBy = Literal["plan", "csm", "cohort", "stage"]
SEGMENT_BYS: tuple[SegmentBy, ...] = ("plan", "csm", "cohort", "stage")
ALL = "all"
NONE = "(none)"
_MONTH = re.compile(r"(\d{4})-(\d{2})")


@dataclass(frozen=True, slots=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str, *, field: str = "month") -> Month:
        """``YYYY-MM``; a ValueError naming ``field`` otherwise."""
        m = _MONTH.fullmatch(text.strip())
        if m is None or not 1 <= int(m.group(2)) <= 12 or not 1 <= int(m.group(1)) <= 9998:
            raise ValueError(f"{field}: {text!r} is not a month written YYYY-MM")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def months(first: Month, last: Month) -> list[Month]:
    if last < first:
        raise ValueError(f"the range ends ({last}) before it begins ({first})")
    out = [first]
    while out[-1] < last:
        out.append(out[-1].next())
    return out


Segmenter = Callable[[AccountHistory, Month], str]


def segmenter(by: SegmentBy | None, policy: OutcomesPolicy) -> Segmenter:
    """The segment of an account in a month: its plan, CSM, signup month (``cohort``), or its
    lifecycle stage when the month begins; ``all`` without ``by``; ``(none)`` when unknown."""
    if by is None:
        return lambda h, m: ALL
    if by == "plan":
        return lambda h, m: h.plan or NONE
    if by == "csm":
        return lambda h, m: h.csm or NONE
    if by == "cohort":
        return lambda h, m: str(Month.of(h.start)) if h.start else NONE
    if by == "stage":
        return lambda h, m: stage_on(h, m.first_day - timedelta(days=1), policy) or NONE
    raise ValueError(f"by: {by!r} is not one of {', '.join(SEGMENT_BYS)}")


@dataclass(frozen=True, slots=True)
class RetentionRow:
    month: Month
    segment: str
    accounts_at_start: int
    churned_accounts: int
    starting_mrr: float
    expansion_mrr: float
    contraction_mrr: float
    churned_mrr: float

    @property
    def logo_churn_rate(self) -> float | None:
        return self.churned_accounts / self.accounts_at_start if self.accounts_at_start else None

    @property
    def gross_revenue_retention(self) -> float | None:
        s = self.starting_mrr
        return (s - self.contraction_mrr - self.churned_mrr) / s if s > 0 else None

    @property
    def net_revenue_retention(self) -> float | None:
        s = self.starting_mrr
        kept = s + self.expansion_mrr - self.contraction_mrr - self.churned_mrr
        return kept / s if s > 0 else None


@dataclass(frozen=True, slots=True)
class CohortMember:
    """One account of a month's cohort: its segment, MRR when the month begins and ends."""

    account_id: str
    month: Month
    segment: str
    start_mrr: float
    end_mrr: float
    churned: bool


def in_cohort(history: AccountHistory, month: Month) -> bool:
    before = month.first_day - timedelta(days=1)
    start = history.start
    return start is not None and start <= before and not is_cancelled(history.outcomes, before)


def cohort_members(
    histories: Iterable[AccountHistory], month: Month, segment_of: Segmenter
) -> list[CohortMember]:
    begins, ends = month.first_day, month.next().first_day
    out: list[CohortMember] = []
    for h in histories:
        if not in_cohort(h, month):
            continue
        churned = is_cancelled(h.outcomes, ends - timedelta(days=1))
        out.append(
            CohortMember(
                h.account_id,
                month,
                segment_of(h, month),
                mrr_before(h.mrr, begins),
                mrr_before(h.mrr, ends),
                churned,
            )
        )
    return out


def summarize(month: Month, segment: str, members: Sequence[CohortMember]) -> RetentionRow:
    expansion = contraction = churned_mrr = 0.0
    churned = 0
    for m in members:
        if m.churned:
            churned += 1
            churned_mrr += m.start_mrr
        elif m.end_mrr > m.start_mrr:
            expansion += m.end_mrr - m.start_mrr
        else:
            contraction += m.start_mrr - m.end_mrr
    return RetentionRow(
        month=month,
        segment=segment,
        accounts_at_start=len(members),
        churned_accounts=churned,
        starting_mrr=sum(m.start_mrr for m in members),
        expansion_mrr=expansion,
        contraction_mrr=contraction,
        churned_mrr=churned_mrr,
    )


def monthly_cohorts(
    histories: Sequence[AccountHistory],
    first: Month,
    last: Month,
    *,
    by: SegmentBy | None = None,
    policy: OutcomesPolicy | None = None,
) -> list[tuple[Month, dict[str, list[CohortMember]]]]:
    """Each month's cohort, grouped by segment (segments sorted)."""
    segment_of = segmenter(by, policy or OutcomesPolicy())
    out = []
    for month in months(first, last):
        groups: dict[str, list[CohortMember]] = {}
        for m in cohort_members(histories, month, segment_of):
            groups.setdefault(m.segment, []).append(m)
        out.append((month, {seg: groups[seg] for seg in sorted(groups)}))
    return out


def monthly_retention(
    histories: Sequence[AccountHistory],
    first: Month,
    last: Month,
    *,
    by: SegmentBy | None = None,
    policy: OutcomesPolicy | None = None,
) -> list[RetentionRow]:
    """One row per month and segment (segments with a cohort that month), month then segment
    order."""
    return [
        summarize(month, seg, members)
        for month, groups in monthly_cohorts(histories, first, last, by=by, policy=policy)
        for seg, members in groups.items()
    ]

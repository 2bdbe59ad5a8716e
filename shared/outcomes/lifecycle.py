"""Lifecycle stages derived from the profile and the outcomes (pure; docs/retention.md).

On a day ``d`` on or after the account's start, the first that holds:

1. **cancelled**: the last cancellation on or before ``d`` is not followed by a renewal on or
   before ``d`` (a renewal after a cancellation reactivates the account);
2. **new**: ``d`` is within ``new_days`` of the start (``start <= d < start + new_days``);
3. **renewal**: ``d`` is within ``renewal_window_days`` before the term end in force, the term
   end itself included (``term_end - window <= d <= term_end``);
4. **growing**: otherwise (also after a term end passed with no renewal recorded).

The term end in force on ``d``: with no renewal recorded, the profile's renewal date; before
the first recorded renewal, that renewal's date (a contract renews when its term ends); from a
renewal on, its ``new_term_end``. Before the start an account has no stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from shared.outcomes.model import (
    AccountHistory,
    CustomerOutcome,
    OutcomesPolicy,
    Stage,
    StageChange,
)

_ONE_DAY = timedelta(days=1)


def is_cancelled(ordered: Sequence[CustomerOutcome], day: date) -> bool:
    """Whether the account is cancelled on ``day`` (outcomes in day order)."""
    cancelled = False
    for o in ordered:
        if o.effective_on > day:
            break
        if o.kind == "cancellation":
            cancelled = True
        elif o.kind == "renewal":
            cancelled = False
    return cancelled


def term_end_on(
    ordered: Sequence[CustomerOutcome], day: date, renewal_date: date | None
) -> date | None:
    renewals = [o for o in ordered if o.kind == "renewal"]
    if not renewals:
        return renewal_date
    last: CustomerOutcome | None = None
    for r in renewals:
        if r.effective_on > day:
            break
        last = r
    if last is None:
        return renewals[0].effective_on
    return last.new_term_end if last.new_term_end is not None else renewal_date


def stage_on(history: AccountHistory, day: date, policy: OutcomesPolicy) -> Stage | None:
    start = history.start
    if start is None or day < start:
        return None
    if is_cancelled(history.outcomes, day):
        return "cancelled"
    if day < start + timedelta(days=policy.new_days):
        return "new"
    end = term_end_on(history.outcomes, day, history.renewal_date)
    if end is not None and end - timedelta(days=policy.renewal_window_days) <= day <= end:
        return "renewal"
    return "growing"


def _boundaries(history: AccountHistory, policy: OutcomesPolicy) -> set[date]:
    """Every day on which the stage can change: between two of them it is constant."""
    assert history.start is not None
    days = {history.start, history.start + timedelta(days=policy.new_days)}
    window = timedelta(days=policy.renewal_window_days)
    ends = {history.renewal_date}
    for o in history.outcomes:
        days.add(o.effective_on)
        if o.kind == "renewal":
            ends.update((o.effective_on, o.new_term_end))
    for end in ends:
        if end is not None:
            days.update((end - window, end + _ONE_DAY))
    return days


def stage_changes(
    history: AccountHistory, until: date, policy: OutcomesPolicy
) -> list[StageChange]:
    """The account's stage from its start to ``until`` (inclusive), as the days it changed."""
    start = history.start
    if start is None or until < start:
        return []
    changes: list[StageChange] = []
    current: Stage | None = None
    for day in sorted(d for d in _boundaries(history, policy) if start <= d <= until):
        stage = stage_on(history, day, policy)
        if stage is not None and stage != current:
            changes.append(StageChange(day, stage))
            current = stage
    return changes

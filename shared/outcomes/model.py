"""What customers did, as plain values: outcomes, MRR points, stage changes, and the policy
that turns them into lifecycle stages and lifetime value. No I/O here (docs/retention.md).

An outcome is recorded by an operator (CLI import or the authenticated API), never by a write
key. Its natural key is ``(account_id, kind, effective_on)``: recording the same key again
replaces the values, so a re-import never duplicates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

OutcomeKind = Literal["cancellation", "renewal", "expansion", "contraction"]
KINDS: tuple[OutcomeKind, ...] = get_args(OutcomeKind)
Stage = Literal["new", "growing", "renewal", "cancelled"]
STAGES: tuple[Stage, ...] = get_args(Stage)
Source = Literal["import", "api", "demo"]

# Outcomes of one day apply in this order: a renewal sets the MRR a same-day expansion then
# changes, and a cancellation is the last word of its day.
_DAY_ORDER: dict[str, int] = {"renewal": 0, "expansion": 1, "contraction": 2, "cancellation": 3}

MAX_MRR = 1e12
"""Larger MRR figures are typing mistakes, not customers."""
MAX_ID = 200
MAX_REASON = 1000
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2999, 12, 31)
"""Outcome dates outside these are typing mistakes (and near date.min/max the maths overflows)."""

# Which value fields each kind takes (the rest must be empty) and which it requires.
VALUE_FIELDS = ("reason", "mrr_delta", "new_mrr", "mrr_lost", "new_term_end")
ALLOWED: dict[str, frozenset[str]] = {
    "cancellation": frozenset({"reason", "mrr_lost"}),
    "renewal": frozenset({"reason", "new_mrr", "new_term_end"}),
    "expansion": frozenset({"reason", "mrr_delta"}),
    "contraction": frozenset({"reason", "mrr_delta"}),
}
REQUIRED: dict[str, frozenset[str]] = {
    "cancellation": frozenset({"reason"}),
    "renewal": frozenset({"new_mrr", "new_term_end"}),
    "expansion": frozenset({"mrr_delta"}),
    "contraction": frozenset({"mrr_delta"}),
}


@dataclass(frozen=True, slots=True)
class CustomerOutcome:
    """One recorded outcome. ``mrr_delta`` is signed: > 0 for an expansion, < 0 for a
    contraction; ``new_mrr`` and ``new_term_end`` belong to a renewal, ``mrr_lost`` (optional)
    to a cancellation."""

    account_id: str
    kind: OutcomeKind
    effective_on: date
    reason: str | None = None
    mrr_delta: float | None = None
    new_mrr: float | None = None
    mrr_lost: float | None = None
    new_term_end: date | None = None
    source: Source = "import"

    @property
    def key(self) -> tuple[str, str, date]:
        return (self.account_id, self.kind, self.effective_on)


@dataclass(frozen=True, slots=True)
class MrrPoint:
    """The account's MRR from ``effective_on`` on; ``cause`` is ``start`` or an outcome kind
    (the day's last, when a day has several)."""

    effective_on: date
    mrr: float
    cause: str


@dataclass(frozen=True, slots=True)
class StageChange:
    effective_on: date
    stage: Stage


@dataclass(frozen=True, slots=True)
class AccountHistory:
    """Everything the retention maths needs of one account: its start, segments, renewal date
    (profile), outcomes in day order and MRR history (ascending)."""

    account_id: str
    start: date | None
    plan: str | None = None
    csm: str | None = None
    renewal_date: date | None = None
    outcomes: tuple[CustomerOutcome, ...] = ()
    mrr: tuple[MrrPoint, ...] = field(default=())


class OutcomesPolicy(BaseModel):
    """The configurable parts of stages and lifetime value: the ``outcomes:`` block of the YAML
    file (``TEND_CONFIG``; docs/retention.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    new_days: int = Field(
        30, ge=0, description="Days from the account's start during which it is New."
    )
    renewal_window_days: int = Field(
        90, ge=0, description="Days before the renewal date during which it is in Renewal."
    )
    gross_margin: float = Field(
        0.8, gt=0, le=1, description="Share of revenue kept after the cost of serving it."
    )
    max_lifetime_months: int = Field(
        60,
        ge=1,
        description="Cap on the expected lifetime (1 / churn rate), so zero churn has a CLV.",
    )


def in_day_order(outcomes: Iterable[CustomerOutcome]) -> list[CustomerOutcome]:
    return sorted(outcomes, key=lambda o: (o.effective_on, _DAY_ORDER[o.kind]))


def account_start(
    created_at: date | None, first_seen: date | None, outcomes: Sequence[CustomerOutcome] = ()
) -> date | None:
    """The earlier of the contract start and the first event; an account with an outcome began
    at the latest the day before its first outcome (it was a customer before it renewed)."""
    known = [d for d in (created_at, first_seen) if d is not None]
    if outcomes:
        known.append(min(o.effective_on for o in outcomes) - timedelta(days=1))
    return min(known) if known else None


def _mrr_problem(value: float | None, *, positive: bool = False) -> str | None:
    if value is None:
        return None
    if not math.isfinite(value):
        return "must be a finite number"
    if abs(value) > MAX_MRR:
        return f"must be at most {MAX_MRR:,.0f} in size"
    if positive and value < 0:
        return "must not be negative"
    return None


def outcome_problems(o: CustomerOutcome) -> list[tuple[str, str]]:
    """What is wrong with ``o`` as ``(field, message)`` pairs; empty when it can be recorded.
    Used by the importer and (later) the API, so both refuse the same things."""
    problems: list[tuple[str, str]] = []
    text = o.account_id.strip()
    if not text:
        problems.append(("account_id", "is required"))
    elif len(o.account_id) > MAX_ID:
        problems.append(("account_id", f"is longer than {MAX_ID} characters"))
    if o.kind not in KINDS:
        problems.append(("kind", f"{o.kind!r} is not one of {', '.join(KINDS)}"))
        return problems
    for name in VALUE_FIELDS:
        given = getattr(o, name) is not None
        if given and name not in ALLOWED[o.kind]:
            problems.append((name, f"is not used by a {o.kind}; leave it empty"))
        elif not given and name in REQUIRED[o.kind]:
            problems.append((name, f"is required for a {o.kind}"))
    if o.reason is not None and len(o.reason) > MAX_REASON:
        problems.append(("reason", f"is longer than {MAX_REASON} characters"))
    for name in ("new_mrr", "mrr_lost"):
        msg = _mrr_problem(getattr(o, name), positive=True)
        if msg:
            problems.append((name, msg))
    msg = _mrr_problem(o.mrr_delta)
    if msg:
        problems.append(("mrr_delta", msg))
    elif o.mrr_delta is not None:
        if o.kind == "expansion" and o.mrr_delta <= 0:
            problems.append(("mrr_delta", "an expansion raises MRR: give a positive change"))
        if o.kind == "contraction" and o.mrr_delta >= 0:
            problems.append(
                ("mrr_delta", "a contraction lowers MRR: give a negative change, e.g. -200")
            )
    for name in ("effective_on", "new_term_end"):
        day = getattr(o, name)
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            problems.append((name, f"must be between {FIRST_DAY} and {LAST_DAY}"))
    if o.new_term_end is not None and o.new_term_end <= o.effective_on:
        problems.append(("new_term_end", "must be after the renewal's effective date"))
    return problems

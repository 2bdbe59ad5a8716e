"""A small hand-made portfolio with known outcomes, and a factory for account histories.

The figures the tests expect of it are worked out by hand in the tests (docs/retention.md's
formulas applied to the MRR written in each account's comment), not by the code under test.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from shared.outcomes.model import (
    AccountHistory,
    CustomerOutcome,
    account_start,
    in_day_order,
)
from shared.outcomes.mrr import derive_mrr_history

D = date


def create_history(
    account_id: str,
    start: date | None,
    *,
    mrr: float | None,
    outcomes: Sequence[CustomerOutcome] = (),
    plan: str | None = None,
    csm: str | None = None,
    renewal_date: date | None = None,
) -> AccountHistory:
    ordered = tuple(in_day_order(outcomes))
    begins = account_start(start, None, ordered)
    return AccountHistory(
        account_id=account_id,
        start=begins,
        plan=plan,
        csm=csm,
        renewal_date=renewal_date,
        outcomes=ordered,
        mrr=tuple(derive_mrr_history(ordered, profile_mrr=mrr, start=begins)),
    )


def cancellation(
    account_id: str, day: date, *, reason: str = "budget", mrr_lost: float | None = None
) -> CustomerOutcome:
    return CustomerOutcome(account_id, "cancellation", day, reason=reason, mrr_lost=mrr_lost)


def renewal(account_id: str, day: date, new_mrr: float, term_end: date) -> CustomerOutcome:
    return CustomerOutcome(account_id, "renewal", day, new_mrr=new_mrr, new_term_end=term_end)


def change(account_id: str, day: date, delta: float) -> CustomerOutcome:
    if delta > 0:
        return CustomerOutcome(account_id, "expansion", day, mrr_delta=delta)
    return CustomerOutcome(account_id, "contraction", day, mrr_delta=delta)


# MRR by day, as each account's outcomes make it (the tests' months are 2026-02 .. 2026-04):
PORTFOLIO = (
    # A: 1000 from 2025-06-01, 1500 from 2026-02-10 (expansion); the profile says 1500.
    create_history(
        "A",
        D(2025, 6, 1),
        mrr=1500,
        plan="pro",
        csm="ann@vendor.test",
        outcomes=[change("A", D(2026, 2, 10), 500)],
    ),
    # B: 800 from 2025-09-15, cancelled on 2026-03-05 (the profile's 800 is the MRR lost).
    create_history(
        "B",
        D(2025, 9, 15),
        mrr=800,
        plan="pro",
        csm="bob@vendor.test",
        outcomes=[cancellation("B", D(2026, 3, 5))],
    ),
    # C: 450 from 2025-03-01, 400 from 2026-02-15 (contraction), renewed flat at 400 on
    # 2026-03-01 until 2027-03-01.
    create_history(
        "C",
        D(2025, 3, 1),
        mrr=400,
        plan="basic",
        csm="ann@vendor.test",
        renewal_date=D(2027, 3, 1),
        outcomes=[
            change("C", D(2026, 2, 15), -50),
            renewal("C", D(2026, 3, 1), 400, D(2027, 3, 1)),
        ],
    ),
    # D: 200 from 2025-01-10, cancelled on 2026-02-01 (200 lost), back at 300 on 2026-04-20.
    create_history(
        "D",
        D(2025, 1, 10),
        mrr=300,
        plan="basic",
        csm="bob@vendor.test",
        outcomes=[
            cancellation("D", D(2026, 2, 1), mrr_lost=200),
            renewal("D", D(2026, 4, 20), 300, D(2027, 4, 20)),
        ],
    ),
    # E: signs up on 2026-02-20 at 600 (new business in February).
    create_history("E", D(2026, 2, 20), mrr=600, plan="pro"),
    # F: 150 from 2025-11-01, 250 from 2026-03-10, 100 from 2026-03-20; the profile says 100.
    create_history(
        "F",
        D(2025, 11, 1),
        mrr=100,
        plan="basic",
        csm="ann@vendor.test",
        outcomes=[change("F", D(2026, 3, 10), 100), change("F", D(2026, 3, 20), -150)],
    ),
)

"""``tend demo``'s outcomes: what some demo customers did, so the retention page, the retention
API, the Grafana panels and the backtest show real numbers (pure, seeded).

An operator records outcomes (``POST /v1/accounts/{id}/outcomes`` with the API token, sent by
:meth:`services.cli.demo_send.DemoSender.record_outcomes`); the demo does the same. Per
archetype, by the account's place among its archetype's accounts (the first going-dormant and
declining accounts are never cancelled, so an 8-account demo keeps every archetype's alerts):

- going dormant, every second one from the second, and declining, every third from the third:
  **cancelled** 3 weeks or more ago, losing their MRR (they stop alerting and leave the MRR at
  risk; the backtest sees what their scores said before);
- growing and out of seats: an **expansion** of a fifth of the MRR (the profile's MRR is the
  MRR after it);
- plateauing: a **contraction** of a quarter (idle seats given back), from the second on;
- healthy steady, never adopts and abandons a feature, every second one: a **renewal** at the
  same MRR, whose new term ends on the profile's renewal date.

Every date lies within the usage history and at least 3 weeks before today, so most fall in
complete months (the retention page's default range) and have scores before them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from services.cli.demo_plan import Archetype, DemoAccount, DemoPlan

MIN_DAYS_AGO = 21
"""Outcomes are at least this old (scores and alerts before them, mostly in complete months)."""
REASONS = ("budget cut", "moved to a competitor", "project ended", "no adoption")


@dataclass(frozen=True, slots=True)
class DemoOutcome:
    account_id: str
    kind: str
    effective_on: date
    values: tuple[tuple[str, Any], ...] = ()

    def body(self) -> dict[str, Any]:
        """The outcomes API's body for it."""
        return {
            "kind": self.kind,
            "effective_on": self.effective_on.isoformat(),
            **dict(self.values),
        }


def _kind_of(archetype: Archetype, place: int) -> str | None:
    """Which outcome the ``place``-th account (0-based) of its archetype gets, if any."""
    if archetype is Archetype.DORMANT:
        return "cancellation" if place % 2 == 1 else None
    if archetype is Archetype.DECLINING:
        return "cancellation" if place % 3 == 2 else None
    if archetype in (Archetype.GROWING, Archetype.OUT_OF_SEATS):
        return "expansion"
    if archetype is Archetype.PLATEAUING:
        return "contraction" if place >= 1 else None
    return "renewal" if place % 2 == 0 else None


def _outcome(account: DemoAccount, kind: str, day: date, rng: random.Random) -> DemoOutcome:
    if kind == "cancellation":
        values: dict[str, Any] = {"reason": rng.choice(REASONS), "mrr_lost": account.mrr}
    elif kind == "expansion":
        values = {"mrr_delta": round(account.mrr / 6, 2), "reason": "more seats"}
    elif kind == "contraction":
        values = {"mrr_delta": -round(account.mrr / 4, 2), "reason": "idle seats given back"}
    else:
        values = {"new_mrr": account.mrr, "new_term_end": account.renewal_date.isoformat()}
    return DemoOutcome(account.account_id, kind, day, tuple(values.items()))


def plan_outcomes(plan: DemoPlan) -> list[DemoOutcome]:
    """The demo's outcomes, oldest first; the same plan gives the same outcomes.

    The profile's MRR is the MRR after the last change (docs/retention.md), so an expansion of
    ``mrr / 6`` means the account grew by a fifth, and a contraction of ``mrr / 4`` that it
    gave back a fifth of what it paid before.
    """
    rng = random.Random(plan.seed * 7919 + 12)
    history_days = plan.weeks * 7
    latest = max(MIN_DAYS_AGO + 1, history_days - 14)
    places: dict[Archetype, int] = {}
    out = []
    for account in plan.accounts:
        place = places.get(account.archetype, 0)
        places[account.archetype] = place + 1
        kind = _kind_of(account.archetype, place)
        if kind is None:
            continue
        day = plan.today - timedelta(days=rng.randrange(MIN_DAYS_AGO, latest))
        out.append(_outcome(account, kind, day, rng))
    out.sort(key=lambda o: (o.effective_on, o.account_id))
    return out

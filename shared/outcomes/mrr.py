"""MRR history derived from an account's outcomes and its profile's MRR (pure).

Renewals set the MRR (``new_mrr``), expansions and contractions change it by ``mrr_delta``, a
cancellation sets it to 0 until a later renewal. The MRR before the first outcome (the
baseline) is worked back from the first figure that is known in full:

1. the first renewal: the MRR just before it is taken to be its ``new_mrr`` (a flat renewal;
   nothing else says what it was), or
2. the first cancellation that gives ``mrr_lost``: the MRR just before it, else
3. the profile's MRR, as the MRR after the last change (or, for a cancelled account, just
   before the first cancellation),

minus the expansions and contractions in between. With none of these the MRR is unknown and
the history is empty. An MRR that would go below 0, a change while cancelled and a second
cancellation without a renewal between are contradictions: :class:`InconsistentOutcomes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from shared.outcomes.model import CustomerOutcome, MrrPoint, in_day_order

_EPS = 1e-6


class InconsistentOutcomes(ValueError):
    """An account's outcomes contradict each other; the message names the account, the day
    and the outcome."""

    def __init__(self, outcome: CustomerOutcome, message: str) -> None:
        self.account_id = outcome.account_id
        self.effective_on = outcome.effective_on
        self.kind = outcome.kind
        super().__init__(
            f"account {outcome.account_id!r}: the {outcome.kind} on "
            f"{outcome.effective_on.isoformat()} {message}"
        )


def _baseline(ordered: Sequence[CustomerOutcome], profile_mrr: float | None) -> float | None:
    deltas = 0.0
    for o in ordered:
        if o.kind == "renewal" and o.new_mrr is not None:
            return float(o.new_mrr) - deltas
        if o.kind == "cancellation":
            if o.mrr_lost is not None:
                return float(o.mrr_lost) - deltas
            break
        if o.mrr_delta is not None:
            deltas += o.mrr_delta
    if profile_mrr is None:
        return None
    return float(profile_mrr) - deltas


def derive_mrr_history(
    outcomes: Sequence[CustomerOutcome], *, profile_mrr: float | None, start: date | None
) -> list[MrrPoint]:
    """The account's MRR points in date order: the baseline at its start (the day before the
    first outcome when the start is unknown or later), then one point per day with outcomes."""
    ordered = in_day_order(outcomes)
    if not ordered:
        if start is None or profile_mrr is None:
            return []
        return [MrrPoint(start, float(profile_mrr), "start")]
    baseline = _baseline(ordered, profile_mrr)
    if baseline is None:
        return []
    first = ordered[0].effective_on
    opened = start if start is not None and start < first else first - timedelta(days=1)
    if baseline < -_EPS:
        raise InconsistentOutcomes(
            ordered[0], f"leaves a negative MRR ({baseline:g}) before it; check the figures"
        )
    points: dict[date, MrrPoint] = {opened: MrrPoint(opened, max(baseline, 0.0), "start")}
    mrr = max(baseline, 0.0)
    cancelled_by: CustomerOutcome | None = None
    for o in ordered:
        if o.kind == "renewal":
            mrr = float(o.new_mrr) if o.new_mrr is not None else mrr
            cancelled_by = None
        elif o.kind == "cancellation":
            if cancelled_by is not None:
                raise InconsistentOutcomes(
                    o,
                    "follows the cancellation on "
                    f"{cancelled_by.effective_on.isoformat()} with no renewal between",
                )
            mrr = 0.0
            cancelled_by = o
        else:
            if cancelled_by is not None:
                raise InconsistentOutcomes(
                    o,
                    "changes the MRR of an account cancelled on "
                    f"{cancelled_by.effective_on.isoformat()} (record a renewal first)",
                )
            mrr += o.mrr_delta or 0.0
            if mrr < -_EPS:
                raise InconsistentOutcomes(o, f"takes the MRR below 0 ({mrr:g})")
            mrr = max(mrr, 0.0)
        points[o.effective_on] = MrrPoint(o.effective_on, mrr, o.kind)
    return list(points.values())


def mrr_before(points: Sequence[MrrPoint], day: date) -> float:
    """The MRR in force when ``day`` begins: the last point dated before it, 0 before the
    first point (not a customer yet) or when the history is empty (MRR unknown)."""
    value = 0.0
    for p in points:
        if p.effective_on >= day:
            break
        value = p.mrr
    return value

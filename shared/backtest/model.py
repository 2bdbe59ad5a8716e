"""What a backtest replay produced for each account, as plain values (no I/O).

The replay (``tend backtest``: the scorer's and the alert rules' real code run day by day in
event time) fills one :class:`AccountRun` per account and model; :mod:`shared.backtest.report`
joins them with the recorded outcomes. Band time is kept as spans (a band rarely changes from
one day to the next), so a year of 10,000 accounts stays small in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from shared.outcomes.model import AccountHistory
from shared.outcomes.mrr import mrr_before

__all__ = ["AccountRun", "BandSpan", "Churn", "RaisedAlert", "churns_of"]


@dataclass(frozen=True, slots=True)
class RaisedAlert:
    """One alert episode a replay opened (a return within the cool-down is not a new one)."""

    account_id: str
    rule: str
    feature: str
    started_on: date
    opened_on: date
    opportunity: bool = False
    """The rule is a positive signal (severity ``opportunity``, e.g. ``upsell_seats``): it is
    reported, but never counted as a churn warning."""


@dataclass(slots=True)
class BandSpan:
    """Consecutive judged days ``first .. last`` (inclusive) in one band."""

    band: str
    first: date
    last: date


@dataclass(slots=True)
class AccountRun:
    """One account under one model over the backtest window."""

    account_id: str
    spans: list[BandSpan] = field(default_factory=list)
    alerts: list[RaisedAlert] = field(default_factory=list)
    observed_days: int = 0
    """Days of the window the account was scored and judged (begun, not cancelled)."""

    def add_day(self, day: date, band: str) -> None:
        """Record ``day``'s band; days come in ascending order."""
        self.observed_days += 1
        last = self.spans[-1] if self.spans else None
        if last is not None and last.band == band and last.last + timedelta(days=1) == day:
            last.last = day
        else:
            self.spans.append(BandSpan(band, day, day))


@dataclass(frozen=True, slots=True)
class Churn:
    """A recorded cancellation and the MRR it lost (``mrr_lost`` when the operator gave it,
    else the MRR in force when the day began)."""

    account_id: str
    on: date
    mrr: float


def churns_of(history: AccountHistory) -> list[Churn]:
    """Every cancellation of the account, in day order."""
    out = []
    for o in history.outcomes:
        if o.kind != "cancellation":
            continue
        lost = o.mrr_lost if o.mrr_lost is not None else mrr_before(history.mrr, o.effective_on)
        out.append(Churn(history.account_id, o.effective_on, lost))
    return out

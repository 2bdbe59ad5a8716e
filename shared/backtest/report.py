"""The backtest's figures: a replay's bands and alerts joined with the recorded churn (pure).

docs/backtest.md writes out every figure. In short, for a window ``first .. last``:

- an alert opened on day ``a`` *precedes* a churn on day ``c`` when ``a < c <= a + 90``
  (``HORIZON_DAYS``); only alerts opened in the window count as raised;
- **per band**: the accounts with at least one judged day of the window in the band, and the
  share of them that churned within 90 days after such a day (calibration: red > yellow >
  green, or the report says it does not hold, or cannot tell when a band is empty);
- **per rule**: alerts raised; precision = raised alerts that preceded a churn / raised;
  recall = churned accounts (first cancellation in the window) with an alert of the rule
  opened in the 90 days before = flagged / churned; lead time = churn day minus the first such
  alert's day (median over flagged accounts); noise = raised / account-months observed
  (judged days / 30.4375);
- **overall**: the churned MRR of accounts flagged at least 30 days ahead (``AHEAD_DAYS``: a
  risk alert, not an opportunity, opened in ``c - 90 .. c - 30``) over all churned MRR.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from statistics import median
from typing import Any

from shared.backtest.model import AccountRun, Churn, RaisedAlert
from shared.format import percent

__all__ = [
    "AHEAD_DAYS",
    "DAYS_PER_MONTH",
    "HORIZON_DAYS",
    "BacktestReport",
    "BandRow",
    "Calibration",
    "Comparison",
    "Overall",
    "RuleRow",
    "build_report",
    "precedes",
]

HORIZON_DAYS = 90
AHEAD_DAYS = 30
DAYS_PER_MONTH = 365.25 / 12
BAND_ORDER = ("red", "yellow", "green", "new", "unknown")


def precedes(opened_on: date, churn_on: date, horizon: int = HORIZON_DAYS) -> bool:
    return opened_on < churn_on <= opened_on + timedelta(days=horizon)


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class BandRow:
    band: str
    accounts: int
    churned: int
    churn_share: float | None
    account_days: int


@dataclass(frozen=True, slots=True)
class Calibration:
    holds: bool | None
    """None: a band among red, yellow, green had no account, so the order cannot be told."""
    statement: str


@dataclass(frozen=True, slots=True)
class RuleRow:
    rule: str
    opportunity: bool
    alerts: int
    preceded_churn: int
    precision: float | None
    churned_flagged: int
    recall: float | None
    median_lead_days: float | None
    lead_days: tuple[int, ...]
    alerts_per_account_month: float | None


@dataclass(frozen=True, slots=True)
class Overall:
    accounts: int
    account_months: float
    churned_accounts: int
    churned_mrr: float
    flagged_mrr: float
    flagged_mrr_share: float | None
    """Churned MRR flagged at least ``AHEAD_DAYS`` ahead / churned MRR (None: no churned MRR)."""


@dataclass(frozen=True, slots=True)
class BacktestReport:
    """Everything ``tend backtest`` prints for one model; :meth:`to_dict` is its JSON."""

    label: str
    first: date
    last: date
    horizon_days: int
    ahead_days: int
    bands: tuple[BandRow, ...]
    calibration: Calibration
    rules: tuple[RuleRow, ...]
    overall: Overall

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["first"], out["last"] = self.first.isoformat(), self.last.isoformat()
        for row in out["rules"]:
            row["lead_days"] = list(row["lead_days"])
        return out


@dataclass(frozen=True, slots=True)
class Comparison:
    """The current model and, with ``--config``, a proposed one on the same history."""

    current: BacktestReport
    proposed: BacktestReport | None = None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "current": self.current.to_dict(),
            "proposed": None if self.proposed is None else self.proposed.to_dict(),
            "notes": list(self.notes),
        }


def _bands(
    runs: Sequence[AccountRun], churns: Mapping[str, Sequence[Churn]], first: date, last: date
) -> tuple[tuple[BandRow, ...], Calibration]:
    accounts: dict[str, set[str]] = {}
    churned: dict[str, set[str]] = {}
    days: dict[str, int] = {}
    for run in runs:
        for span in run.spans:
            lo, hi = max(span.first, first), min(span.last, last)
            if lo > hi:
                continue
            accounts.setdefault(span.band, set()).add(run.account_id)
            days[span.band] = days.get(span.band, 0) + (hi - lo).days + 1
            # Some day d of lo..hi with d < c <= d + horizon.
            if any(
                lo < c.on <= hi + timedelta(days=HORIZON_DAYS)
                for c in churns.get(run.account_id, ())
            ):
                churned.setdefault(span.band, set()).add(run.account_id)
    names = [b for b in BAND_ORDER if b in accounts] + sorted(set(accounts) - set(BAND_ORDER))
    rows = tuple(
        BandRow(
            band=b,
            accounts=len(accounts[b]),
            churned=len(churned.get(b, ())),
            churn_share=_share(len(churned.get(b, ())), len(accounts[b])),
            account_days=days[b],
        )
        for b in names
    )
    return rows, _calibration({r.band: r for r in rows})


def _calibration(rows: Mapping[str, BandRow]) -> Calibration:
    shares = {b: rows[b].churn_share if b in rows else None for b in ("red", "yellow", "green")}
    empty = [b for b, s in shares.items() if s is None]
    if empty:
        return Calibration(
            None, f"cannot tell: no account spent time in {' or '.join(empty)} in the window"
        )
    red, yellow, green = (shares[b] or 0.0 for b in ("red", "yellow", "green"))
    said = (
        f"red {percent(red)}, yellow {percent(yellow)}, green {percent(green)} churned "
        f"within {HORIZON_DAYS} days"
    )
    if red > yellow > green:
        return Calibration(True, f"holds: {said}")
    broken = []
    if not red > yellow:
        broken.append("red does not churn more than yellow")
    if not yellow > green:
        broken.append("yellow does not churn more than green")
    return Calibration(False, f"does not hold ({'; '.join(broken)}): {said}")


def _window_churn(
    runs: Sequence[AccountRun], churns: Mapping[str, Sequence[Churn]], first: date, last: date
) -> dict[str, Churn]:
    """Each account's first cancellation in the window (the churn recall is measured on)."""
    out: dict[str, Churn] = {}
    for run in runs:
        inside = [c for c in churns.get(run.account_id, ()) if first <= c.on <= last]
        if inside:
            out[run.account_id] = min(inside, key=lambda c: c.on)
    return out


def _rules(
    runs: Sequence[AccountRun],
    churns: Mapping[str, Sequence[Churn]],
    window_churn: Mapping[str, Churn],
    rule_names: Sequence[str],
    months: float,
    first: date,
    last: date,
) -> tuple[RuleRow, ...]:
    raised: dict[str, list[RaisedAlert]] = {r: [] for r in rule_names}
    opportunity: dict[str, bool] = {}
    for run in runs:
        for a in run.alerts:
            if first <= a.opened_on <= last:
                raised.setdefault(a.rule, []).append(a)
                opportunity[a.rule] = a.opportunity
    rows = []
    for rule, alerts in raised.items():
        preceded = sum(
            1
            for a in alerts
            if any(precedes(a.opened_on, c.on) for c in churns.get(a.account_id, ()))
        )
        by_account: dict[str, list[date]] = {}
        for a in alerts:
            by_account.setdefault(a.account_id, []).append(a.opened_on)
        leads = []
        for account_id, churn in sorted(window_churn.items()):
            before = [d for d in by_account.get(account_id, ()) if precedes(d, churn.on)]
            if before:
                leads.append((churn.on - min(before)).days)
        rows.append(
            RuleRow(
                rule=rule,
                opportunity=opportunity.get(rule, False),
                alerts=len(alerts),
                preceded_churn=preceded,
                precision=_share(preceded, len(alerts)),
                churned_flagged=len(leads),
                recall=_share(len(leads), len(window_churn)),
                median_lead_days=float(median(leads)) if leads else None,
                lead_days=tuple(leads),
                alerts_per_account_month=_share(len(alerts), months),
            )
        )
    return tuple(rows)


def build_report(
    label: str,
    runs: Iterable[AccountRun],
    churns: Mapping[str, Sequence[Churn]],
    first: date,
    last: date,
    rule_names: Sequence[str] = (),
) -> BacktestReport:
    """The figures of one model's replay over ``first .. last``; ``churns``: every recorded
    cancellation by account (any date: a churn after ``last`` still says a band or an alert
    was right); ``rule_names``: rules listed even when they raised nothing."""
    runs = list(runs)
    bands, calibration = _bands(runs, churns, first, last)
    months = sum(r.observed_days for r in runs) / DAYS_PER_MONTH
    window_churn = _window_churn(runs, churns, first, last)
    rules = _rules(runs, churns, window_churn, rule_names, months, first, last)
    ahead = timedelta(days=AHEAD_DAYS)
    horizon = timedelta(days=HORIZON_DAYS)
    flagged = 0.0
    by_account = {r.account_id: r for r in runs}
    for account_id, churn in window_churn.items():
        if any(
            not a.opportunity
            and first <= a.opened_on <= last
            and churn.on - horizon <= a.opened_on <= churn.on - ahead
            for a in by_account[account_id].alerts
        ):
            flagged += churn.mrr
    churned_mrr = sum(c.mrr for c in window_churn.values())
    return BacktestReport(
        label=label,
        first=first,
        last=last,
        horizon_days=HORIZON_DAYS,
        ahead_days=AHEAD_DAYS,
        bands=bands,
        calibration=calibration,
        rules=rules,
        overall=Overall(
            accounts=len(runs),
            account_months=round(months, 2),
            churned_accounts=len(window_churn),
            churned_mrr=churned_mrr,
            flagged_mrr=flagged,
            flagged_mrr_share=_share(flagged, churned_mrr),
        ),
    )

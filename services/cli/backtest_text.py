"""The text ``tend backtest`` prints: one table per part of the report, every figure as
``current / proposed`` when a proposed config was replayed beside the current one."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from shared import format as fmt
from shared.backtest.report import BacktestReport, Comparison, RuleRow

__all__ = ["describe"]


def _cells(reports: Sequence[BacktestReport], value: Callable[[BacktestReport], str]) -> str:
    return " / ".join(value(r) for r in reports)


def _lead(days: float | None) -> str:
    return fmt.MISSING if days is None else fmt.days(round(days))


def describe(result: Comparison) -> str:
    reports = [result.current] + ([result.proposed] if result.proposed else [])
    cur = result.current
    o = cur.overall
    lines = [
        f"Backtest {cur.first} .. {cur.last}: {fmt.plural(o.accounts, 'account')}, "
        f"{fmt.number(o.account_months, 1)} account-months observed, "
        f"{o.churned_accounts} churned in the window ({fmt.money(o.churned_mrr)} MRR)",
    ]
    if result.proposed is not None:
        lines.append("Each figure: current model / proposed model (--config).")
    lines += ["", f"Calibration: share of accounts churning within {cur.horizon_days} days"]
    lines.append(f"  {'band':<8} {'accounts':>14} {'churned':>14} {'share':>14}")
    bands = list(dict.fromkeys(b.band for r in reports for b in r.bands))
    for band in bands:

        def row(r: BacktestReport, band: str = band) -> tuple[str, str, str]:
            b = next((x for x in r.bands if x.band == band), None)
            if b is None:
                return ("0", "0", fmt.MISSING)
            return (fmt.count(b.accounts), fmt.count(b.churned), fmt.percent(b.churn_share))

        parts = [" / ".join(row(r)[k] for r in reports) for k in range(3)]
        lines.append(f"  {band:<8} {parts[0]:>14} {parts[1]:>14} {parts[2]:>14}")
    for r in reports:
        prefix = f"{r.label}: " if result.proposed is not None else ""
        lines.append(f"  {prefix}red > yellow > green {r.calibration.statement}")
    lines += [
        "",
        f"Rules: alerts opened in the window; a hit precedes a churn within {cur.horizon_days} "
        "days",
        f"  {'rule':<22} {'alerts':>11}  {'precision':>11}  {'recall':>11}  "
        f"{'median lead':>17}  {'per acct-month':>15}",
    ]
    for name in dict.fromkeys(row.rule for r in reports for row in r.rules):
        rows = [next((x for x in r.rules if x.rule == name), None) for r in reports]
        if all(x is None or x.alerts == 0 for x in rows):
            continue

        def cell(get: Callable[[RuleRow], str], rows: list[RuleRow | None] = rows) -> str:
            return " / ".join(fmt.MISSING if x is None else get(x) for x in rows)

        tag = f"{name} (+)" if any(x is not None and x.opportunity for x in rows) else name
        lines.append(
            f"  {tag:<22} {cell(lambda x: fmt.count(x.alerts)):>11}  "
            f"{cell(lambda x: fmt.percent(x.precision)):>11}  "
            f"{cell(lambda x: fmt.percent(x.recall)):>11}  "
            f"{cell(lambda x: _lead(x.median_lead_days)):>17}  "
            f"{cell(lambda x: fmt.number(x.alerts_per_account_month, 2)):>15}"
        )
    if all(row.alerts == 0 for r in reports for row in r.rules):
        lines.append("  (no alert opened in the window)")
    if any(row.alerts and row.opportunity for r in reports for row in r.rules):
        lines.append(
            "  (+) a positive signal (opportunity): listed, never counted as a churn warning"
        )
    lines += [
        "",
        f"Churned MRR flagged at least {cur.ahead_days} days ahead: "
        + _cells(
            reports,
            lambda r: (
                f"{fmt.percent(r.overall.flagged_mrr_share)} "
                f"({fmt.money(r.overall.flagged_mrr)} of {fmt.money(r.overall.churned_mrr)})"
            ),
        ),
    ]
    lines += [f"Note: {n}" for n in result.notes]
    return "\n".join(lines)

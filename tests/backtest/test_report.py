"""The backtest's figures on docs/backtest.md's worked example, worked out by hand (pure)."""

from __future__ import annotations

from datetime import date

import pytest

from shared.backtest.model import AccountRun, BandSpan, Churn, RaisedAlert
from shared.backtest.report import build_report

pytestmark = pytest.mark.unit

D = date
FIRST, LAST = D(2026, 3, 1), D(2026, 6, 30)


def alert(account: str, rule: str, opened: date, *, opportunity: bool = False) -> RaisedAlert:
    return RaisedAlert(account, rule, "", opened, opened, opportunity)


def example() -> tuple[list[AccountRun], dict[str, list[Churn]]]:
    runs = [
        AccountRun(
            "A",
            [
                BandSpan("green", D(2026, 3, 1), D(2026, 4, 9)),
                BandSpan("red", D(2026, 4, 10), D(2026, 5, 19)),
            ],
            [alert("A", "dormant", D(2026, 4, 10))],
            observed_days=80,
        ),
        AccountRun(
            "B",
            [
                BandSpan("green", D(2026, 3, 1), D(2026, 5, 31)),
                BandSpan("yellow", D(2026, 6, 1), D(2026, 6, 9)),
            ],
            [
                alert("B", "health_red", D(2026, 6, 1)),
                alert("B", "upsell_seats", D(2026, 3, 5), opportunity=True),
            ],
            observed_days=101,
        ),
        AccountRun(
            "C",
            [BandSpan("green", D(2026, 3, 1), D(2026, 6, 30))],
            # Opened before the window (warm-up): not raised in it.
            [alert("C", "dormant", D(2026, 5, 1)), alert("C", "health_red", D(2026, 2, 20))],
            observed_days=122,
        ),
    ]
    churns = {"A": [Churn("A", D(2026, 5, 20), 500.0)], "B": [Churn("B", D(2026, 6, 10), 300.0)]}
    return runs, churns


class TestWorkedExample:
    def test_rules(self) -> None:
        runs, churns = example()
        report = build_report("current", runs, churns, FIRST, LAST, ("dormant", "login_plateau"))
        rows = {r.rule: r for r in report.rules}
        months = (80 + 101 + 122) / (365.25 / 12)
        dormant = rows["dormant"]
        assert (dormant.alerts, dormant.preceded_churn, dormant.precision) == (2, 1, 0.5)
        assert (dormant.churned_flagged, dormant.recall, dormant.lead_days) == (1, 0.5, (40,))
        assert dormant.median_lead_days == 40
        assert dormant.alerts_per_account_month == pytest.approx(2 / months)
        red = rows["health_red"]
        assert (red.alerts, red.precision, red.recall, red.median_lead_days) == (1, 1.0, 0.5, 9)
        plateau = rows["login_plateau"]  # listed though it raised nothing
        assert (plateau.alerts, plateau.precision, plateau.recall) == (0, None, 0.0)
        assert rows["upsell_seats"].opportunity

    def test_overall_mrr_flagged_30_days_ahead(self) -> None:
        runs, churns = example()
        o = build_report("current", runs, churns, FIRST, LAST).overall
        assert (o.churned_accounts, o.churned_mrr, o.flagged_mrr) == (2, 800.0, 500.0)
        assert o.flagged_mrr_share == 0.625
        assert o.account_months == round((80 + 101 + 122) / (365.25 / 12), 2)

    def test_calibration(self) -> None:
        runs, churns = example()
        report = build_report("current", runs, churns, FIRST, LAST)
        bands = {b.band: (b.accounts, b.churned, b.account_days) for b in report.bands}
        assert bands == {"red": (1, 1, 40), "yellow": (1, 1, 9), "green": (3, 2, 40 + 92 + 122)}
        assert report.calibration.holds is False
        assert "red does not churn more than yellow" in report.calibration.statement

    def test_calibration_holds_and_cannot_tell(self) -> None:
        runs = [
            AccountRun("R", [BandSpan("red", FIRST, FIRST)]),
            AccountRun("Y1", [BandSpan("yellow", FIRST, FIRST)]),
            AccountRun("Y2", [BandSpan("yellow", FIRST, FIRST)]),
            AccountRun("G", [BandSpan("green", FIRST, FIRST)]),
        ]
        churns = {a: [Churn(a, D(2026, 5, 1), 1.0)] for a in ("R", "Y1")}
        assert build_report("x", runs, churns, FIRST, LAST).calibration.holds is True
        # A churn more than 90 days after the band's last day does not count.
        late = {"G": [Churn("G", D(2026, 6, 1), 1.0)]}
        assert build_report("x", runs, late, FIRST, LAST).bands[-1].churned == 0
        unknown = build_report("x", runs[:2], churns, FIRST, LAST).calibration
        assert unknown.holds is None and "green" in unknown.statement

"""Churn and retention per month and segment, CLV and time to value, against figures worked
out by hand (the small portfolio) or counted independently day by day (random portfolios)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.outcomes.model import CustomerOutcome, OutcomesPolicy
from shared.outcomes.retention import Month, RetentionRow, monthly_retention, months
from shared.outcomes.value import account_values, lifetime_value, segment_values, time_to_value
from tests.outcomes.portfolio import PORTFOLIO, cancellation, change, create_history, renewal

pytestmark = pytest.mark.unit

D = date
FEB, MAR, APR = Month(2026, 2), Month(2026, 3), Month(2026, 4)


def figures(row: RetentionRow) -> tuple[object, ...]:
    return (
        row.accounts_at_start,
        row.churned_accounts,
        row.starting_mrr,
        row.expansion_mrr,
        row.contraction_mrr,
        row.churned_mrr,
    )


class TestPortfolio:
    """The cohort of a month: customers when it begins (see tests/outcomes/portfolio.py)."""

    def test_whole_portfolio_by_month(self) -> None:
        feb, mar, apr = monthly_retention(PORTFOLIO, FEB, APR)
        # February: A 1000->1500, B 800, C 450->400, D 200 cancelled on the 1st, F 150;
        # E signs up on the 20th and is not in February's cohort.
        assert (feb.month, feb.segment) == (FEB, "all")
        assert figures(feb) == (5, 1, 2600, 500, 50, 200)
        assert feb.logo_churn_rate == pytest.approx(1 / 5)
        assert feb.gross_revenue_retention == pytest.approx((2600 - 50 - 200) / 2600)
        assert feb.net_revenue_retention == pytest.approx((2600 + 500 - 50 - 200) / 2600)
        # March: A 1500, B 800 cancelled on the 5th, C 400 (flat renewal), E 600, F 150->100;
        # D was cancelled when March began.
        assert figures(mar) == (5, 1, 3450, 0, 50, 800)
        assert mar.gross_revenue_retention == pytest.approx(2600 / 3450)
        assert mar.net_revenue_retention == mar.gross_revenue_retention
        # April: A, C, E, F unchanged; D comes back on the 20th (not in April's cohort).
        assert figures(apr) == (4, 0, 2600, 0, 0, 0)
        assert (apr.logo_churn_rate, apr.gross_revenue_retention) == (0, 1)

    def test_by_plan(self) -> None:
        basic, pro = monthly_retention(PORTFOLIO, FEB, FEB, by="plan")
        assert (basic.segment, pro.segment) == ("basic", "pro")
        # basic: C 450->400, D 200 churned, F 150; pro: A 1000->1500, B 800.
        assert figures(basic) == (3, 1, 800, 0, 50, 200)
        assert basic.gross_revenue_retention == pytest.approx(550 / 800)
        assert figures(pro) == (2, 0, 1800, 500, 0, 0)
        assert pro.net_revenue_retention == pytest.approx(2300 / 1800)

    def test_by_csm_names_the_accounts_without_one(self) -> None:
        rows = monthly_retention(PORTFOLIO, MAR, MAR, by="csm")
        assert [(r.segment, r.accounts_at_start) for r in rows] == [
            ("(none)", 1),  # E
            ("ann@vendor.test", 3),  # A, C, F
            ("bob@vendor.test", 1),  # B
        ]

    def test_by_cohort_is_the_signup_month(self) -> None:
        rows = monthly_retention(PORTFOLIO, MAR, MAR, by="cohort")
        assert [(r.segment, r.accounts_at_start) for r in rows] == [
            ("2025-03", 1),
            ("2025-06", 1),
            ("2025-09", 1),
            ("2025-11", 1),
            ("2026-02", 1),
        ]

    def test_by_stage_when_the_month_begins(self) -> None:
        rows = monthly_retention(PORTFOLIO, FEB, MAR, by="stage")
        assert [(str(r.month), r.segment, r.accounts_at_start) for r in rows] == [
            ("2026-02", "growing", 3),  # A, B, F
            ("2026-02", "renewal", 2),  # C (ends 2026-03-01), D (renews 2026-04-20)
            ("2026-03", "growing", 3),  # A, B, F
            ("2026-03", "new", 1),  # E
            ("2026-03", "renewal", 1),  # C, until it renews on the 1st
        ]

    def test_no_cohort_is_no_ratio(self) -> None:
        row = RetentionRow(FEB, "all", 0, 0, 0.0, 0.0, 0.0, 0.0)
        assert (row.logo_churn_rate, row.gross_revenue_retention) == (None, None)
        assert row.net_revenue_retention is None
        free = monthly_retention([create_history("z", D(2025, 1, 1), mrr=0)], FEB, FEB)[0]
        assert (free.accounts_at_start, free.logo_churn_rate, free.net_revenue_retention) == (
            1,
            0,
            None,
        )


class TestLifetimeValue:
    POLICY = OutcomesPolicy(gross_margin=0.8, max_lifetime_months=60)

    def test_segment_value_is_pooled_over_the_months(self) -> None:
        rows = monthly_retention(PORTFOLIO, FEB, APR)
        (value,) = segment_values(rows, self.POLICY)
        # 5 + 5 + 4 account-months, 2 churned: 1/7 a month; ARPA (2600 + 3450 + 2600) / 14.
        assert (value.account_months, value.churned_accounts) == (14, 2)
        assert value.lifetime.churn_rate == pytest.approx(1 / 7)
        assert value.lifetime.arpa == pytest.approx(8650 / 14)
        assert value.lifetime.months == pytest.approx(7)
        assert value.lifetime.clv == pytest.approx(8650 / 14 * 0.8 * 7)
        assert not value.lifetime.capped

    def test_zero_churn_is_capped(self) -> None:
        rows = monthly_retention(PORTFOLIO, APR, APR, by="plan")
        values = {v.segment: v.lifetime for v in segment_values(rows, self.POLICY)}
        # April: basic C 400, F 100; pro A 1500, E 600; nobody churns.
        assert values["basic"].capped and values["basic"].months == 60
        assert values["basic"].clv == pytest.approx(250 * 0.8 * 60)
        assert values["pro"].clv == pytest.approx(1050 * 0.8 * 60)

    @pytest.mark.parametrize(
        ("rate", "months", "capped"), [(0.0, 60, True), (0.01, 60, True), (0.5, 2, False)]
    )
    def test_the_cap_applies_to_any_long_lifetime(
        self, rate: float, months: float, capped: bool
    ) -> None:
        life = lifetime_value(100, rate, self.POLICY)
        assert (life.months, life.capped) == (months, capped)
        assert life.clv == pytest.approx(100 * 0.8 * months)

    def test_nothing_to_measure(self) -> None:
        life = lifetime_value(None, None, self.POLICY)
        assert (life.months, life.clv) == (None, None)

    def test_account_value_uses_its_own_arpa_and_its_segments_churn(self) -> None:
        values = {v.account_id: v for v in account_values(PORTFOLIO, FEB, APR, policy=self.POLICY)}
        assert sorted(values) == ["A", "B", "C", "D", "E", "F"]
        a = values["A"]
        # A at the start of Feb, Mar, Apr: 1000, 1500, 1500; the portfolio churns 1/7 a month.
        assert a.months == 3
        assert a.lifetime.arpa == pytest.approx(4000 / 3)
        assert a.lifetime.clv == pytest.approx(4000 / 3 * 0.8 * 7)
        assert values["D"].months == 1  # a customer only when February began
        by_plan = account_values(PORTFOLIO, FEB, APR, by="plan", policy=self.POLICY)
        b = next(v for v in by_plan if v.account_id == "B")
        # pro: Feb A, B; Mar A, B, E; Apr A, E: 7 account-months, 1 churned.
        assert b.segment == "pro"
        assert b.lifetime.churn_rate == pytest.approx(1 / 7)


class TestTimeToValue:
    def test_median_days_per_signup_month(self) -> None:
        cohorts = time_to_value(
            [
                (D(2026, 1, 5), D(2026, 1, 8)),  # 3 days
                (D(2026, 1, 20), D(2026, 2, 9)),  # 20 days
                (D(2026, 1, 31), None),  # not yet
                (D(2026, 1, 2), D(2026, 1, 1)),  # used before its start: day 0
                (D(2026, 2, 1), None),
            ]
        )
        jan, feb = cohorts
        assert (str(jan.cohort), jan.accounts, jan.reached) == ("2026-01", 4, 3)
        assert jan.median_days == 3  # of 0, 3, 20
        assert jan.share_reached == pytest.approx(3 / 4)
        assert (str(feb.cohort), feb.accounts, feb.reached, feb.median_days) == (
            "2026-02",
            1,
            0,
            None,
        )

    def test_even_count_is_the_mean_of_the_middle_two(self) -> None:
        (c,) = time_to_value([(D(2026, 1, 1), D(2026, 1, 3)), (D(2026, 1, 1), D(2026, 1, 8))])
        assert c.median_days == 4.5

    def test_nothing(self) -> None:
        assert time_to_value([]) == []


class TestMonth:
    @pytest.mark.parametrize(
        "text", ["2026-13", "2026-00", "26-01", "2026/01", "", "2026-1", "0000-01", "9999-12"]
    )
    def test_bad_months_name_the_field(self, text: str) -> None:
        with pytest.raises(ValueError, match=r"^from: "):
            Month.parse(text, field="from")

    def test_range(self) -> None:
        span = months(Month.parse("2025-11"), Month.parse("2026-02"))
        assert [str(m) for m in span] == ["2025-11", "2025-12", "2026-01", "2026-02"]
        with pytest.raises(ValueError, match="before it begins"):
            months(FEB, Month(2026, 1))


# --- random portfolios, counted day by day without the code under test ----------------------

BEGIN = D(2025, 10, 1)


@dataclass
class Simulated:
    """One account lived day by day: MRR and whether it is a customer at each day's end."""

    start: date
    mrr: dict[date, float] = field(default_factory=dict)
    active: dict[date, bool] = field(default_factory=dict)
    outcomes: list[CustomerOutcome] = field(default_factory=list)


@st.composite
def simulated(draw: st.DrawFn, account_id: str) -> Simulated:
    start = BEGIN + timedelta(days=draw(st.integers(0, 150)))
    event_days = set(draw(st.sets(st.integers(1, 200), max_size=5)))
    sim = Simulated(start)
    mrr, active, renewed = float(draw(st.integers(0, 2000))), True, False
    day = start
    for i in range(0, 240):
        day = start + timedelta(days=i)
        if i in event_days:
            if not active:
                # A reactivation; a first renewal is flat (nothing says otherwise).
                mrr = float(draw(st.integers(0, 2000)))
                sim.outcomes.append(renewal(account_id, day, mrr, day + timedelta(days=365)))
                active, renewed = True, True
            else:
                pick = draw(st.sampled_from(["cancel", "up", "down", "renew"]))
                if pick == "cancel":
                    sim.outcomes.append(cancellation(account_id, day, mrr_lost=mrr))
                    mrr, active = 0.0, False
                elif pick == "up":
                    up = draw(st.integers(1, 500))
                    sim.outcomes.append(change(account_id, day, up))
                    mrr += up
                elif pick == "down" and mrr >= 1:
                    down = draw(st.integers(1, int(mrr)))
                    sim.outcomes.append(change(account_id, day, -down))
                    mrr -= down
                elif pick == "renew":
                    mrr = mrr if not renewed else float(draw(st.integers(0, 2000)))
                    sim.outcomes.append(renewal(account_id, day, mrr, day + timedelta(days=365)))
                    renewed = True
        sim.mrr[day], sim.active[day] = mrr, active
    return sim


def expected_rows(
    sims: dict[str, Simulated], month: Month
) -> tuple[int, int, float, float, float, float]:
    before = month.first_day - timedelta(days=1)
    last = month.next().first_day - timedelta(days=1)
    n = churned = 0
    s_total = expansion = contraction = lost = 0.0
    for sim in sims.values():
        if sim.start > before or not sim.active.get(before, sim.active[max(sim.active)]):
            continue
        s = sim.mrr.get(before, sim.mrr[max(sim.mrr)])
        e = sim.mrr.get(last, sim.mrr[max(sim.mrr)])
        still = sim.active.get(last, sim.active[max(sim.active)])
        n += 1
        s_total += s
        if not still:
            churned += 1
            lost += s
        elif e > s:
            expansion += e - s
        else:
            contraction += s - e
    return (n, churned, s_total, expansion, contraction, lost)


class TestRandomPortfolios:
    @settings(max_examples=40, deadline=None)
    @given(st.data())
    def test_figures_equal_an_independent_day_by_day_count(self, data: st.DataObject) -> None:
        sims = {
            f"acc{i}": data.draw(simulated(f"acc{i}")) for i in range(data.draw(st.integers(1, 6)))
        }
        # The profile holds the MRR at the end (what an operator's import would say).
        histories = [
            create_history(a, s.start, mrr=s.mrr[max(s.mrr)], outcomes=s.outcomes)
            for a, s in sims.items()
        ]
        first, last = Month(2025, 11), Month(2026, 8)
        rows = {r.month: r for r in monthly_retention(histories, first, last)}
        for month in months(first, last):
            want = expected_rows(sims, month)
            got = rows.get(month)
            if want[0] == 0:
                assert got is None
                continue
            assert got is not None
            assert figures(got) == pytest.approx(want)
            if got.starting_mrr > 0:
                kept = got.starting_mrr + got.expansion_mrr - got.contraction_mrr
                kept -= got.churned_mrr
                assert got.net_revenue_retention == pytest.approx(kept / got.starting_mrr)
                assert got.gross_revenue_retention is not None
                assert got.net_revenue_retention is not None
                assert 0 <= got.gross_revenue_retention <= 1 + 1e-9
                assert got.gross_revenue_retention <= got.net_revenue_retention + 1e-9

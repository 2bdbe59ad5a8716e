"""The console's retention page and lifecycle stages, on a small portfolio this test writes
(profiles, and outcomes posted to the outcomes API) in a fresh SQLite file: the page shows the
figures ``GET /v1/retention`` gives, which equal the ones worked out by hand below; the
portfolio shows every account's stage and filters on it; the page needs a sign-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import format as fmt
from shared.clock import FixedClock
from shared.config import TendConfig
from shared.db.models import Account
from shared.db.session import transaction
from shared.outcomes.model import OutcomesPolicy
from tests.outcomes.web import noon, web_client
from tests.support import people
from tests.web.test_console import parse

D = date
TODAY = D(2026, 6, 30)
CONFIG = TendConfig(outcomes=OutcomesPolicy(gross_margin=0.5))

# Profiles (the MRR is today's) and outcomes. By hand, from the outcomes:
# - p1 pro, 1000 until it expands by 500 on 2026-04-10;
# - p2 basic, 400 until it cancels on 2026-04-05;
# - p3 basic, 600 until it contracts by 100 on 2026-05-15; renews 2026-07-15 (Renewal today);
# - p4 pro, 200, started 2026-06-10 (New today).
PROFILES = (
    ("p1", D(2025, 6, 1), "pro", 1500.0, None),
    ("p2", D(2025, 9, 1), "basic", 400.0, None),
    ("p3", D(2025, 1, 1), "basic", 500.0, D(2026, 7, 15)),
    ("p4", D(2026, 6, 10), "pro", 200.0, None),
)
OUTCOMES = {
    "p1": [{"kind": "expansion", "effective_on": "2026-04-10", "mrr_delta": 500}],
    "p2": [{"kind": "cancellation", "effective_on": "2026-04-05", "reason": "price"}],
    "p3": [{"kind": "contraction", "effective_on": "2026-05-15", "mrr_delta": -100}],
}
STAGES = {"p1": "growing", "p2": "cancelled", "p3": "renewal", "p4": "new"}
# Month: (customers at start, churned, MRR at start, expansion, contraction, churned MRR)
BY_HAND = {
    "2026-03": (3, 0, 2000.0, 0.0, 0.0, 0.0),
    "2026-04": (3, 1, 2000.0, 500.0, 0.0, 400.0),
    "2026-05": (2, 0, 2100.0, 0.0, 100.0, 0.0),
}


async def write_portfolio(sessions: async_sessionmaker[AsyncSession]) -> None:
    """The profiles written directly, the outcomes posted to the outcomes API."""
    async with transaction(sessions) as session:
        for account_id, start, plan, mrr, renewal in PROFILES:
            session.add(
                Account(
                    account_id=account_id,
                    name=f"Account {account_id}",
                    created_at=start,
                    plan=plan,
                    mrr=mrr,
                    renewal_date=renewal,
                )
            )
    async with web_client(sessions, FixedClock(noon(TODAY)), config=CONFIG) as client:
        for account_id, outcomes in OUTCOMES.items():
            r = await client.post(f"/v1/accounts/{account_id}/outcomes", json=outcomes)
            assert r.status_code == 201, r.text


@pytest_asyncio.fixture
async def retention_console(
    sqlite_sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[httpx.AsyncClient]:
    """The web app on the written portfolio, signed in to the console (and holding the API
    token for the APIs)."""
    await write_portfolio(sqlite_sessions)
    async with web_client(sqlite_sessions, FixedClock(noon(TODAY)), config=CONFIG) as client:
        await people.add_people(sqlite_sessions, {people.ADMIN: "admin"})
        r = await people.sign_in(client)
        assert r.status_code == 303
        yield client


async def page_rows(client: httpx.AsyncClient, path: str, table: str) -> list[Any]:
    r = await client.get(path)
    assert r.status_code == 200, r.text
    return parse(r.text).tables[table]


def cells(
    month: str, n: int, churned: int, s: float, exp: float, con: float, lost: float
) -> list[str]:
    """A row of the months table as the page writes it (after the month and segment)."""
    return [
        fmt.count(n),
        fmt.count(churned),
        fmt.percent(churned / n, 1),
        fmt.money(s, cents=True),
        fmt.money(exp, cents=True),
        fmt.money(con, cents=True),
        fmt.money(lost, cents=True),
        fmt.percent((s - con - lost) / s, 1),
        fmt.percent((s + exp - con - lost) / s, 1),
    ]


class TestRetentionPage:
    async def test_months_equal_the_hand_count_and_the_api(
        self, retention_console: httpx.AsyncClient
    ) -> None:
        rows = await page_rows(
            retention_console, "/console/retention?from=2026-03&to=2026-05", "retention"
        )
        shown = {attrs["data-month"]: texts[1:] for attrs, texts in rows}
        assert shown == {m: cells(m, *v) for m, v in BY_HAND.items()}
        assert shown["2026-04"][2] == "33.3%" and shown["2026-04"][-2:] == ["80.0%", "105.0%"]
        api = await retention_console.get(
            "/v1/retention", params={"from": "2026-03", "to": "2026-05"}
        )
        for m in api.json()["months"]:
            assert shown[m["month"]] == [
                fmt.count(m["accounts_at_start"]),
                fmt.count(m["churned_accounts"]),
                fmt.percent(m["logo_churn_rate"], 1),
                fmt.money(m["starting_mrr"], cents=True),
                fmt.money(m["expansion_mrr"], cents=True),
                fmt.money(m["contraction_mrr"], cents=True),
                fmt.money(m["churned_mrr"], cents=True),
                fmt.percent(m["gross_revenue_retention"], 1),
                fmt.percent(m["net_revenue_retention"], 1),
            ]

    async def test_by_plan_shows_the_apis_segments(
        self, retention_console: httpx.AsyncClient
    ) -> None:
        rows = await page_rows(
            retention_console, "/console/retention?from=2026-03&to=2026-05&by=plan", "retention"
        )
        api = await retention_console.get(
            "/v1/retention", params={"from": "2026-03", "to": "2026-05", "by": "plan"}
        )
        expected = {
            (m["month"], m["segment"]): (
                fmt.count(m["churned_accounts"]),
                m["net_revenue_retention"],
            )
            for m in api.json()["months"]
        }
        shown = {(a["data-month"], a["data-segment"]): (texts[3], texts[-1]) for a, texts in rows}
        assert set(shown) == set(expected) == {(m, p) for m in BY_HAND for p in ("basic", "pro")}
        for key, (churned, nrr) in expected.items():
            assert shown[key] == (churned, fmt.percent(nrr, 1))
        # April, basic: p2 (400) churned and p3 (600) stayed: NRR 600 / 1000.
        assert shown[("2026-04", "basic")] == ("1", "60.0%")

    async def test_lifetime_value_uses_the_configured_margin(
        self, retention_console: httpx.AsyncClient
    ) -> None:
        r = await retention_console.get("/console/retention?from=2026-03&to=2026-05")
        assert "gross margin (50%)" in r.text
        rows = parse(r.text).tables["clv"]
        api = await retention_console.get(
            "/v1/retention", params={"from": "2026-03", "to": "2026-05"}
        )
        (value,) = api.json()["lifetime_value"]
        # Pooled: 1 churned of 8 account-months; ARPA 6100 / 8; CLV = ARPA x 0.5 x 8.
        assert (value["account_months"], value["churned_accounts"]) == (8, 1)
        assert value["clv"] == pytest.approx(6100 / 8 * 0.5 * 8)
        ((attrs, texts),) = rows
        assert attrs["data-segment"] == "all"
        assert texts[1:3] == ["8", "1"]
        assert texts[-1] == fmt.money(value["clv"], cents=True)

    async def test_chart_draws_nrr_grr_and_churn(
        self, retention_console: httpx.AsyncClient
    ) -> None:
        r = await retention_console.get("/console/retention?from=2026-03&to=2026-05")
        for css in ("nrr", "grr", "churn"):
            assert r.text.count(f'class="dot dot-{css}"') == 3
        assert (
            "Net revenue retention March 2026 100.0%, April 2026 105.0%, May 2026 95.2%; "
            "Gross revenue retention March 2026 100.0%, April 2026 80.0%, May 2026 95.2%; "
            "Logo churn March 2026 0.0%, April 2026 33.3%, May 2026 0.0%"
        ) in r.text

    async def test_a_bad_range_shows_the_defaults_and_says_why(
        self, retention_console: httpx.AsyncClient
    ) -> None:
        r = await retention_console.get("/console/retention?from=2026-13&by=region")
        assert r.status_code == 200
        assert "there is no segment &#39;region&#39;" in r.text
        assert "not a month written YYYY-MM" in r.text
        assert 'name="from" type="month" value="2025-06"' in r.text
        assert 'name="to" type="month" value="2026-05"' in r.text

    async def test_linked_from_the_navigation(self, retention_console: httpx.AsyncClient) -> None:
        r = await retention_console.get("/console/")
        assert '<a href="/console/retention">Retention</a>' in r.text
        r = await retention_console.get("/console/retention")
        assert '<a href="/console/retention" aria-current="page">Retention</a>' in r.text

    async def test_sign_in_required(self, retention_console: httpx.AsyncClient) -> None:
        retention_console.cookies.clear()
        r = await retention_console.get("/console/retention?by=plan")
        assert r.status_code == 303
        assert r.headers["location"].startswith("/console/login?next=")


class TestStages:
    async def test_portfolio_shows_each_accounts_stage(
        self, retention_console: httpx.AsyncClient
    ) -> None:
        rows = await page_rows(retention_console, "/console/", "portfolio")
        stage_column = 3  # account, score, band, stage
        shown = {a["data-account-id"]: texts[stage_column] for a, texts in rows}
        assert shown == {a: fmt.label(s) for a, s in STAGES.items()}

    @pytest.mark.parametrize("stage", ["new", "growing", "renewal", "cancelled"])
    async def test_portfolio_filters_on_stage(
        self, retention_console: httpx.AsyncClient, stage: str
    ) -> None:
        rows = await page_rows(retention_console, f"/console/?stage={stage}", "portfolio")
        assert [a["data-account-id"] for a, _ in rows] == [
            a for a, s in STAGES.items() if s == stage
        ]
        api = await retention_console.get("/v1/accounts", params={"stage": stage})
        assert [a["account_id"] for a in api.json()["accounts"]] == [
            a["data-account-id"] for a, _ in rows
        ]

    async def test_unknown_stage_is_no_filter(self, retention_console: httpx.AsyncClient) -> None:
        rows = await page_rows(retention_console, "/console/?stage=gone", "portfolio")
        assert len(rows) == len(STAGES)

    async def test_account_page_shows_the_stage(self, retention_console: httpx.AsyncClient) -> None:
        r = await retention_console.get("/console/accounts/p3")
        assert '<span class="stage stage-renewal">Renewal</span>' in r.text
        r = await retention_console.get("/console/accounts/p2")
        assert '<span class="stage stage-cancelled">Cancelled</span>' in r.text

"""The "tend / Customer health" dashboard's churn and retention panels (SQL on PostgreSQL, as
every panel of that dashboard) give the retention API's figures, month by month, on a portfolio
this test writes (tests/web/test_console_retention.py's: profiles, outcomes through the API)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.clock import FixedClock
from tests.ops.test_dashboards import DASHBOARDS, load, panels
from tests.outcomes.web import noon, web_client
from tests.web.test_console_retention import CONFIG, TODAY, write_portfolio

pytestmark = pytest.mark.integration

TITLES = ("Churn and retention, last complete month", "Churn and revenue retention per month")


def retention_queries() -> list[str]:
    (health,) = [load(p) for p in DASHBOARDS if load(p)["title"] == "tend / Customer health"]
    found = {p["title"]: p["targets"][0]["rawSql"] for p in panels(health) if p["title"] in TITLES}
    assert set(found) == set(TITLES)
    return list(found.values())


def as_of_today(query: str) -> str:
    """The query as it runs on TODAY (the panels read the last 12 months before now())."""
    assert "now()" in query
    return query.replace("now()", f"'{TODAY.isoformat()}T12:00:00Z'::timestamptz")


async def api_months(sessions: async_sessionmaker[AsyncSession]) -> list[dict[str, Any]]:
    async with web_client(sessions, FixedClock(noon(TODAY)), config=CONFIG) as client:
        r = await client.get("/v1/retention", params={"from": "2025-06", "to": "2026-05"})
    assert r.status_code == 200, r.text
    months: list[dict[str, Any]] = r.json()["months"]
    return months


class TestRetentionPanels:
    async def test_panels_equal_the_retention_api(
        self, database: tuple[str, async_sessionmaker[AsyncSession]]
    ) -> None:
        url, sessions = database
        await write_portfolio(sessions)
        expected = {
            m["month"]: (
                m["logo_churn_rate"],
                m["gross_revenue_retention"],
                m["net_revenue_retention"],
            )
            for m in await api_months(sessions)
        }
        assert expected["2026-04"] == pytest.approx((1 / 3, 0.8, 1.05))
        conn = await asyncpg.connect(url.replace("+asyncpg", "", 1))
        try:
            for query in retention_queries():
                rows = await conn.fetch(as_of_today(query))
                got = {
                    r["time"].strftime("%Y-%m"): (
                        r["Logo churn"],
                        r["Gross revenue retention"],
                        r["Net revenue retention"],
                    )
                    for r in rows
                }
                assert set(got) == set(expected)
                for month, figures in expected.items():
                    assert got[month] == pytest.approx(figures), month
        finally:
            await conn.close()

"""The console's backtest page: the latest run ``tend backtest`` saved (shared.backtest.runs),
its figures as the report computed them; an empty page says how to run one; sign-in needed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import format as fmt
from shared.backtest.model import AccountRun, Churn, RaisedAlert
from shared.backtest.report import Comparison, build_report
from shared.backtest.runs import save_run
from shared.clock import FixedClock
from shared.db.session import transaction
from tests.outcomes.web import noon, web_client
from tests.support import people
from tests.web.test_console import parse

FIRST, LAST = date(2026, 1, 1), date(2026, 3, 31)
TODAY = date(2026, 6, 30)


def day(n: int) -> date:
    return FIRST + timedelta(days=n)


def comparison(label_alerts: int) -> Comparison:
    """Two accounts over the window: ``red`` is red from the start, gets ``label_alerts``
    dormant alerts and cancels on day 60; ``fine`` stays green."""
    red, fine = AccountRun("red"), AccountRun("fine")
    for n in range(60):
        red.add_day(day(n), "red")
    for n in range(90):
        fine.add_day(day(n), "green")
    red.alerts = [
        RaisedAlert("red", "dormant", "", day(5 + 10 * i), day(5 + 10 * i))
        for i in range(label_alerts)
    ]
    churns = {"red": [Churn("red", day(60), 500.0)]}
    current = build_report("current", [red, fine], churns, FIRST, LAST, ("dormant", "health_red"))
    proposed = build_report("proposed", [red, fine], churns, FIRST, LAST, ("dormant",))
    return Comparison(current, proposed, ("The proposed model disables health_red.",))


@pytest_asyncio.fixture
async def backtest_console(
    sqlite_sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[tuple[httpx.AsyncClient, async_sessionmaker[AsyncSession]]]:
    async with web_client(sqlite_sessions, FixedClock(noon(TODAY))) as client:
        await people.add_people(sqlite_sessions, {people.ADMIN: "admin"})
        r = await people.sign_in(client)
        assert r.status_code == 303
        yield client, sqlite_sessions


class TestBacktestPage:
    async def test_no_run_yet_says_how(
        self, backtest_console: tuple[httpx.AsyncClient, async_sessionmaker[AsyncSession]]
    ) -> None:
        client, _ = backtest_console
        r = await client.get("/console/backtest")
        assert r.status_code == 200
        assert "No backtest yet" in r.text and "tend backtest --from" in r.text
        assert '<a href="/console/backtest" aria-current="page">Backtest</a>' in r.text

    async def test_shows_the_latest_runs_figures(
        self, backtest_console: tuple[httpx.AsyncClient, async_sessionmaker[AsyncSession]]
    ) -> None:
        client, sessions = backtest_console
        older, latest = comparison(1), comparison(2)
        async with transaction(sessions) as session:
            await save_run(session, older, ran_at=datetime(2026, 6, 1, tzinfo=UTC))
            await save_run(session, latest, ran_at=datetime(2026, 6, 2, 9, 30, tzinfo=UTC))
        r = await client.get("/console/backtest")
        assert r.status_code == 200
        assert "Run 2026-06-02 09:30 UTC over" in r.text
        assert "The proposed model disables health_red." in r.text
        tables = parse(r.text).tables
        report = latest.current
        assert report.rules[0].alerts == 2  # the latest run's, not the older one's
        bands = {a["data-band"]: texts[1:] for a, texts in tables["current-bands"]}
        assert bands == {
            b.band: [
                fmt.count(b.accounts),
                fmt.count(b.churned),
                fmt.percent(b.churn_share, 1),
                fmt.count(b.account_days),
            ]
            for b in report.bands
        }
        assert bands["red"][2] == "100.0%" and bands["green"][2] == "0.0%"
        rules = {a["data-rule"]: texts[1:] for a, texts in tables["current-rules"]}
        assert set(rules) == {"dormant", "health_red"}
        dormant = next(x for x in report.rules if x.rule == "dormant")
        assert rules["dormant"] == [
            fmt.count(dormant.alerts),
            f"{fmt.percent(dormant.precision, 1)} ({dormant.preceded_churn})",
            f"{fmt.percent(dormant.recall, 1)} ({dormant.churned_flagged})",
            fmt.number(dormant.median_lead_days, 1),
            fmt.number(dormant.alerts_per_account_month, 2),
        ]
        assert rules["dormant"][2] == "100.0% (1)" and rules["dormant"][3] == "55.0"
        assert {a["data-rule"] for a, _ in tables["proposed-rules"]} == {"dormant"}
        flagged = fmt.percent(report.overall.flagged_mrr_share, 1)
        assert f"<strong>{flagged}</strong> of the churned MRR" in r.text

    async def test_sign_in_required(
        self, backtest_console: tuple[httpx.AsyncClient, async_sessionmaker[AsyncSession]]
    ) -> None:
        client, _ = backtest_console
        client.cookies.clear()
        r = await client.get("/console/backtest")
        assert r.status_code == 303
        assert r.headers["location"].startswith("/console/login?next=")

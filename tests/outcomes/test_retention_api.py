"""GET /v1/retention on a small portfolio this test writes (profiles, outcomes posted to the API,
feature-day rollups), on a fresh PostgreSQL database and a fresh SQLite file: every figure
equals an independent count over the MRR timeline written below, and bad ranges are 422
naming the field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from statistics import median
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.clock import FixedClock
from shared.config import TendConfig
from shared.db.models import Account, FeatureDay
from shared.db.session import create_engine, create_sessionmaker, transaction
from tests.outcomes.web import noon, web_client

pytestmark = pytest.mark.integration

D = date
TODAY = D(2026, 6, 30)
KEY = "reports"
MONTHS = ("2026-02", "2026-03", "2026-04")


@dataclass(frozen=True)
class Written:
    """One account as the test writes it, and its MRR timeline written out by hand: the MRR
    from each day on, and the days it is cancelled (from, until exclusive)."""

    account_id: str
    start: date
    plan: str
    profile_mrr: float
    steps: tuple[tuple[date, float], ...]
    cancelled: tuple[tuple[date, date | None], ...] = ()
    outcomes: tuple[dict[str, Any], ...] = ()
    first_key_use: date | None = None
    other_use: date | None = None

    def mrr_on(self, day: date) -> float:
        value = 0.0
        for since, mrr in self.steps:
            if since <= day:
                value = mrr
        return value

    def cancelled_on(self, day: date) -> bool:
        return any(a <= day and (b is None or day < b) for a, b in self.cancelled)


PORTFOLIO = (
    Written(
        "a1",
        D(2025, 6, 1),
        "pro",
        1500,
        ((D(2025, 6, 1), 1000), (D(2026, 2, 10), 1500)),
        outcomes=({"kind": "expansion", "effective_on": "2026-02-10", "mrr_delta": 500},),
    ),
    Written(
        "a2",
        D(2025, 9, 15),
        "pro",
        800,
        ((D(2025, 9, 15), 800), (D(2026, 3, 5), 0)),
        cancelled=((D(2026, 3, 5), None),),
        outcomes=({"kind": "cancellation", "effective_on": "2026-03-05", "reason": "price"},),
    ),
    Written(
        "a3",
        D(2025, 3, 1),
        "basic",
        400,
        ((D(2025, 3, 1), 450), (D(2026, 2, 15), 400)),
        outcomes=(
            {"kind": "contraction", "effective_on": "2026-02-15", "mrr_delta": -50},
            {
                "kind": "renewal",
                "effective_on": "2026-03-01",
                "new_mrr": 400,
                "new_term_end": "2027-03-01",
            },
        ),
    ),
    Written(
        "a4",
        D(2025, 1, 10),
        "basic",
        300,
        ((D(2025, 1, 10), 200), (D(2026, 2, 1), 0), (D(2026, 4, 20), 300)),
        cancelled=((D(2026, 2, 1), D(2026, 4, 20)),),
        outcomes=(
            {
                "kind": "cancellation",
                "effective_on": "2026-02-01",
                "reason": "merged",
                "mrr_lost": 200,
            },
            {
                "kind": "renewal",
                "effective_on": "2026-04-20",
                "new_mrr": 300,
                "new_term_end": "2027-04-20",
            },
        ),
    ),
    Written(
        "a5",
        D(2026, 2, 20),
        "pro",
        600,
        ((D(2026, 2, 20), 600),),
        first_key_use=D(2026, 2, 24),
    ),
    Written(
        "a6",
        D(2025, 11, 1),
        "basic",
        100,
        ((D(2025, 11, 1), 150), (D(2026, 3, 10), 250), (D(2026, 3, 20), 100)),
        outcomes=(
            {"kind": "expansion", "effective_on": "2026-03-10", "mrr_delta": 100},
            {"kind": "contraction", "effective_on": "2026-03-20", "mrr_delta": -150},
        ),
    ),
    Written("a7", D(2026, 3, 3), "basic", 50, ((D(2026, 3, 3), 50),), other_use=D(2026, 3, 4)),
    Written(
        "a8",
        D(2026, 3, 10),
        "pro",
        70,
        ((D(2026, 3, 10), 70),),
        first_key_use=D(2026, 3, 20),
        other_use=D(2026, 3, 11),
    ),
    Written(
        "a9",
        D(2026, 3, 12),
        "pro",
        90,
        ((D(2026, 3, 12), 90),),
        first_key_use=D(2026, 3, 12),
    ),
)


@dataclass
class Tally:
    n: int = 0
    churned: int = 0
    start: float = 0.0
    expansion: float = 0.0
    contraction: float = 0.0
    churned_mrr: float = 0.0
    members: list[str] = field(default_factory=list)


def first_of(month: str) -> date:
    return date.fromisoformat(f"{month}-01")


def next_first(month: str) -> date:
    return (first_of(month) + timedelta(days=32)).replace(day=1)


def independent_count(by: str | None) -> dict[tuple[str, str], Tally]:
    """Per (month, segment): the cohort is who is a customer on the month's eve; churned, who
    is cancelled on its last day; the rest expand or contract by their MRR change."""
    out: dict[tuple[str, str], Tally] = {}
    for month in MONTHS:
        eve, last = first_of(month) - timedelta(days=1), next_first(month) - timedelta(days=1)
        for a in PORTFOLIO:
            if a.start > eve or a.cancelled_on(eve):
                continue
            segment = {"plan": a.plan, None: "all"}[by]
            t = out.setdefault((month, segment), Tally())
            s, e = a.mrr_on(eve), a.mrr_on(last)
            t.n += 1
            t.start += s
            t.members.append(a.account_id)
            if a.cancelled_on(last):
                t.churned += 1
                t.churned_mrr += s
            elif e > s:
                t.expansion += e - s
            else:
                t.contraction += s - e
    return out


@pytest_asyncio.fixture
async def portfolio_db(own_db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The portfolio written into a database of this test alone: profiles and rollups
    directly, outcomes through the API."""
    engine = create_engine(own_db_url)
    made = create_sessionmaker(engine)
    async with transaction(made) as session:
        for a in PORTFOLIO:
            session.add(
                Account(account_id=a.account_id, created_at=a.start, plan=a.plan, mrr=a.profile_mrr)
            )
            for feature, day in ((KEY, a.first_key_use), ("chat", a.other_use)):
                if day is not None:
                    session.add(
                        FeatureDay(
                            account_id=a.account_id, feature=feature, day=day, uses=3, users=1
                        )
                    )
                    later = day + timedelta(days=5)
                    session.add(
                        FeatureDay(
                            account_id=a.account_id, feature=feature, day=later, uses=1, users=1
                        )
                    )
    async with web_client(made, FixedClock(noon(TODAY))) as client:
        for a in PORTFOLIO:
            if a.outcomes:
                r = await client.post(
                    f"/v1/accounts/{a.account_id}/outcomes", json=list(a.outcomes)
                )
                assert r.status_code == 201, r.text
    yield made
    await engine.dispose()


async def retention(sessions: async_sessionmaker[AsyncSession], **params: Any) -> Any:
    config = TendConfig(key_features=(KEY,))
    async with web_client(sessions, FixedClock(noon(TODAY)), config=config) as client:
        r = await client.get("/v1/retention", params=params)
    assert r.status_code == 200, r.text
    return r.json()


class TestFiguresEqualAnIndependentCount:
    @pytest.mark.parametrize("by", [None, "plan"])
    async def test_monthly_churn_and_retention(
        self, portfolio_db: async_sessionmaker[AsyncSession], by: str | None
    ) -> None:
        params = {"from": MONTHS[0], "to": MONTHS[-1], **({"by": by} if by else {})}
        body = await retention(portfolio_db, **params)
        expected = independent_count(by)
        assert [(m["month"], m["segment"]) for m in body["months"]] == sorted(expected)
        for row in body["months"]:
            t = expected[(row["month"], row["segment"])]
            assert row["accounts_at_start"] == t.n
            assert row["churned_accounts"] == t.churned
            assert row["starting_mrr"] == pytest.approx(t.start)
            assert row["expansion_mrr"] == pytest.approx(t.expansion)
            assert row["contraction_mrr"] == pytest.approx(t.contraction)
            assert row["churned_mrr"] == pytest.approx(t.churned_mrr)
            assert row["logo_churn_rate"] == pytest.approx(t.churned / t.n)
            kept = t.start - t.contraction - t.churned_mrr
            assert row["gross_revenue_retention"] == pytest.approx(kept / t.start)
            assert row["net_revenue_retention"] == pytest.approx((kept + t.expansion) / t.start)

    async def test_february_is_the_worked_example_of_docs_retention(
        self, portfolio_db: async_sessionmaker[AsyncSession]
    ) -> None:
        body = await retention(portfolio_db, **{"from": "2026-02", "to": "2026-02"})
        [feb] = body["months"]
        assert (feb["accounts_at_start"], feb["starting_mrr"]) == (5, 2600)
        assert (feb["expansion_mrr"], feb["contraction_mrr"], feb["churned_mrr"]) == (500, 50, 200)
        assert round(feb["gross_revenue_retention"], 3) == 0.904
        assert round(feb["net_revenue_retention"], 3) == 1.096

    @pytest.mark.parametrize("by", [None, "plan"])
    async def test_lifetime_value_per_segment(
        self, portfolio_db: async_sessionmaker[AsyncSession], by: str | None
    ) -> None:
        params = {"from": MONTHS[0], "to": MONTHS[-1], **({"by": by} if by else {})}
        body = await retention(portfolio_db, **params)
        assert (body["gross_margin"], body["max_lifetime_months"]) == (0.8, 60)
        pooled: dict[str, list[float]] = {}
        for (_, segment), t in independent_count(by).items():
            n, churned, mrr = pooled.setdefault(segment, [0, 0, 0.0])
            pooled[segment] = [n + t.n, churned + t.churned, mrr + t.start]
        assert [v["segment"] for v in body["lifetime_value"]] == sorted(pooled)
        for v in body["lifetime_value"]:
            n, churned, mrr = pooled[v["segment"]]
            assert (v["account_months"], v["churned_accounts"]) == (n, churned)
            rate, arpa = churned / n, mrr / n
            life = min(1 / rate, 60) if rate else 60
            assert v["churn_rate"] == pytest.approx(rate)
            assert v["arpa"] == pytest.approx(arpa)
            assert v["expected_lifetime_months"] == pytest.approx(life)
            assert v["capped"] is (not rate or 1 / rate > 60)
            assert v["clv"] == pytest.approx(arpa * 0.8 * life)

    async def test_lifetime_value_per_account(
        self, portfolio_db: async_sessionmaker[AsyncSession]
    ) -> None:
        body = await retention(
            portfolio_db, **{"from": MONTHS[0], "to": MONTHS[-1], "accounts": "true"}
        )
        expected = independent_count(None)
        n = sum(t.n for t in expected.values())
        rate = sum(t.churned for t in expected.values()) / n
        months_of: dict[str, list[float]] = {}
        for month in MONTHS:
            for account_id in expected[(month, "all")].members:
                a = next(a for a in PORTFOLIO if a.account_id == account_id)
                months_of.setdefault(account_id, []).append(
                    a.mrr_on(first_of(month) - timedelta(days=1))
                )
        assert [v["account_id"] for v in body["accounts"]] == sorted(months_of)
        for v in body["accounts"]:
            mrrs = months_of[v["account_id"]]
            assert v["months"] == len(mrrs)
            assert v["clv"] == pytest.approx(sum(mrrs) / len(mrrs) * 0.8 * min(1 / rate, 60))

    async def test_time_to_value_per_signup_cohort(
        self, portfolio_db: async_sessionmaker[AsyncSession]
    ) -> None:
        body = await retention(portfolio_db, **{"from": MONTHS[0], "to": MONTHS[-1]})
        assert body["key_features"] == [KEY]
        cohorts: dict[str, list[int | None]] = {}
        for a in PORTFOLIO:
            month = a.start.isoformat()[:7]
            if MONTHS[0] <= month <= MONTHS[-1]:
                cohorts.setdefault(month, []).append(
                    None if a.first_key_use is None else (a.first_key_use - a.start).days
                )
        assert [c["cohort"] for c in body["time_to_value"]] == sorted(cohorts)
        for c in body["time_to_value"]:
            days = [d for d in cohorts[c["cohort"]] if d is not None]
            assert (c["accounts"], c["reached"]) == (len(cohorts[c["cohort"]]), len(days))
            assert c["median_days"] == (median(days) if days else None)
        march = next(c for c in body["time_to_value"] if c["cohort"] == "2026-03")
        assert (march["accounts"], march["reached"], march["median_days"]) == (3, 2, 5)


class TestBadRequests:
    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"from": "2026-13"}, "from"),
            ({"from": "March"}, "from"),
            ({"to": "2026-1"}, "to"),
            ({"from": "2026-05", "to": "2026-04"}, "from"),
            ({"from": "2023-01", "to": "2026-01"}, "from"),
            ({"to": "2026-07"}, "to"),
            ({"by": "region"}, "by"),
            ({"from": "0001-01", "to": "0001-12"}, "from"),
        ],
    )
    async def test_422_names_the_field(
        self, sqlite_sessions: async_sessionmaker[AsyncSession], params: dict[str, str], field: str
    ) -> None:
        async with web_client(sqlite_sessions, FixedClock(noon(TODAY))) as client:
            r = await client.get("/v1/retention", params=params)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == field
        assert r.json()["error"]["code"] == "invalid"

    async def test_36_months_is_the_most(
        self, sqlite_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        async with web_client(sqlite_sessions, FixedClock(noon(TODAY))) as client:
            r = await client.get("/v1/retention", params={"from": "2023-07", "to": "2026-06"})
            assert r.status_code == 200
            assert r.json()["months"] == []
            default = (await client.get("/v1/retention")).json()
            assert (default["from"], default["to"]) == ("2025-06", "2026-05")
            r = await client.get("/v1/retention", headers={"Authorization": "Bearer nope"})
            assert r.status_code == 401

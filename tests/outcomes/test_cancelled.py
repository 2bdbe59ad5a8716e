"""A cancelled account never alerts again: its open alerts resolve with the reason "account
cancelled" (recorded through the API, or when a cancellation dated ahead comes into effect in
the alerts consumer), and the real alerts consumer (AlertsHandler.flush, the batch step of the
alerts service) raises nothing for it afterwards, on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.consumer import AlertsHandler
from services.web.console import pages, views
from shared.clock import FixedClock
from shared.db.models import Account
from shared.db.session import transaction
from shared.outcomes.model import CustomerOutcome
from shared.outcomes.recording import record_outcomes
from tests.alerts.snapshots import (
    DAY0,
    alerts_of,
    create_defaults,
    create_snapshot,
    only_rules,
    outbox_of,
)
from tests.outcomes.web import noon, web_client

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]


async def create_account(sessions: Sessions, account_id: str) -> None:
    async with transaction(sessions) as session:
        session.add(Account(account_id=account_id, created_at=DAY0 - timedelta(days=400), mrr=900))


class Consumer:
    """The alerts consumer's batch step on a clock the test moves, judging the dormant rule."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        self.clock = FixedClock(noon(DAY0))
        self.handler = AlertsHandler(
            only_rules("dormant"),
            self.clock,
            defaults=create_defaults(),
            console_url="http://console.example",
        )

    async def score(self, account_id: str, *days: int) -> None:
        """One batch per day, each on that day's clock (a dormant account's daily score)."""
        for day in days:
            self.clock.set(noon(DAY0 + timedelta(days=day)))
            async with self.sessions() as session, session.begin():
                await self.handler.flush(session, [create_snapshot(account_id, day)])


async def open_dormant_alert(consumer: Consumer, account_id: str) -> int:
    await consumer.score(account_id, 0, 1)
    [alert] = await alerts_of(consumer.sessions, account_id)
    assert alert.status == "open"
    assert len(await outbox_of(consumer.sessions, account_id)) == 2  # email and Slack
    return alert.id


class TestCancelledAccountStopsAlerting:
    async def test_a_cancellation_posted_resolves_its_alerts_and_none_follow(
        self, db: Sessions, uid: str
    ) -> None:
        account = f"{uid}-gone"
        await create_account(db, account)
        consumer = Consumer(db)
        alert_id = await open_dormant_alert(consumer, account)

        cancellation = {"kind": "cancellation", "effective_on": str(DAY0 + timedelta(days=1))}
        async with web_client(db, consumer.clock) as client:
            r = await client.post(
                f"/v1/accounts/{account}/outcomes", json={**cancellation, "reason": "budget"}
            )
            assert r.status_code == 201
            assert r.json()["alerts_resolved"] == 1
            assert r.json()["stage"] == "cancelled"
            shown = (await client.get(f"/v1/alerts/{alert_id}")).json()
            active = (await client.get("/v1/alerts", params={"account": account})).json()
        assert (shown["status"], shown["resolved_by"]) == ("resolved", "account cancelled")
        assert active["total"] == 0

        # Three weeks of dormant scores: the rule holds every day, and nothing is raised.
        await consumer.score(account, *range(2, 23))
        [alert] = await alerts_of(db, account)
        assert (alert.status, alert.resolved_by) == ("resolved", "account cancelled")
        assert alert.notifications == 1
        # The open alone (no resolve, no repeat), and not sent: it was still in the outbox.
        outbox = await outbox_of(db, account)
        assert [(n.kind, n.status) for n in outbox] == [("open", "skipped")] * 2
        assert all(n.last_error == "not sent: account cancelled" for n in outbox)

    async def test_a_cancellation_dated_ahead_takes_effect_on_its_day(
        self, db: Sessions, uid: str
    ) -> None:
        account = f"{uid}-leaving"
        await create_account(db, account)
        consumer = Consumer(db)
        await open_dormant_alert(consumer, account)
        leaves = CustomerOutcome(
            account, "cancellation", DAY0 + timedelta(days=4), reason="not renewing"
        )
        async with transaction(db) as session:
            recorded = await record_outcomes(session, [leaves], now=consumer.clock.now())
        assert recorded.alerts_resolved == 0  # not cancelled yet

        await consumer.score(account, 2, 3)
        [alert] = await alerts_of(db, account)
        assert alert.status == "open"

        await consumer.score(account, *range(4, 20))
        [alert] = await alerts_of(db, account)
        assert (alert.status, alert.resolved_by) == ("resolved", "account cancelled")
        assert all(n.kind == "open" for n in await outbox_of(db, account))

    async def test_a_renewal_after_the_cancellation_makes_it_alert_again(
        self, db: Sessions, uid: str
    ) -> None:
        account = f"{uid}-back"
        await create_account(db, account)
        consumer = Consumer(db)
        await open_dormant_alert(consumer, account)
        outcomes = [
            CustomerOutcome(account, "cancellation", DAY0 + timedelta(days=2), reason="budget"),
            CustomerOutcome(
                account,
                "renewal",
                DAY0 + timedelta(days=10),
                new_mrr=500,
                new_term_end=DAY0 + timedelta(days=375),
            ),
        ]
        consumer.clock.set(noon(DAY0 + timedelta(days=2)))
        async with transaction(db) as session:
            await record_outcomes(session, outcomes[:1], now=consumer.clock.now())
        await consumer.score(account, *range(2, 10))
        [alert] = await alerts_of(db, account)
        assert alert.status == "resolved"
        notified = len(await outbox_of(db, account))

        async with transaction(db) as session:
            await record_outcomes(session, outcomes[1:], now=consumer.clock.now())
        await consumer.score(account, *range(10, 14))
        [alert] = await alerts_of(db, account)
        assert alert.status == "open"
        assert len(await outbox_of(db, account)) > notified


class TestCancelledAccountLeavesTheAtRiskTotals:
    async def test_the_portfolio_lists_it_but_counts_it_nowhere(
        self, db: Sessions, uid: str
    ) -> None:
        csm = f"{uid}@vendor.test"
        async with transaction(db) as session:
            for name, mrr in (("stays", 1000.0), ("gone", 700.0)):
                session.add(
                    Account(
                        account_id=f"{uid}-{name}",
                        created_at=DAY0 - timedelta(days=400),
                        mrr=mrr,
                        band="red",
                        score=20.0,
                        csm_email=csm,
                    )
                )
        today = DAY0 + timedelta(days=10)
        filtered = views.PortfolioFilter(csm=csm)
        async with db() as session:
            before = pages.portfolio_context(
                await views.portfolio(session, filtered, today), views.BANDS, views.RENEWAL_WINDOWS
            )
        gone = CustomerOutcome(f"{uid}-gone", "cancellation", DAY0, reason="budget")
        async with transaction(db) as session:
            await record_outcomes(session, [gone], now=noon(today))
        async with db() as session:
            portfolio = await views.portfolio(session, filtered, today)
            after = pages.portfolio_context(portfolio, views.BANDS, views.RENEWAL_WINDOWS)
        assert before["at_risk"] == 1700.0
        assert after["at_risk"] == 1000.0
        assert (portfolio.accounts_by_band, portfolio.total_mrr) == ({"red": 1}, 1000.0)
        assert sorted(r.account_id for r in portfolio.rows) == [f"{uid}-gone", f"{uid}-stays"]

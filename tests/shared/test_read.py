"""The read models (shared/read/): what the read API, the console and the reports all read
through, on a fresh SQLite file (the same SQL runs on PostgreSQL in the API and console tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.migrate import upgrade_async
from shared.db.models import (
    Account,
    AccountDay,
    Alert,
    FeatureDay,
    FeatureUserDay,
    HealthScore,
    UserDay,
)
from shared.db.session import create_engine, create_sessionmaker
from shared.read import accounts, alerts, scores, usage
from shared.read.accounts import AccountFilter

Sessions = async_sessionmaker[AsyncSession]
TODAY = date(2026, 11, 20)
AT = datetime(2026, 11, 20, 9, tzinfo=UTC)


def _alert(account_id: str, rule: str, status: str, minutes: int) -> Alert:
    at = AT + timedelta(minutes=minutes)
    return Alert(
        account_id=account_id,
        rule=rule,
        feature="",
        status=status,
        severity="warning",
        csm_email="ana@cs.example" if account_id == "a" else None,
        created_at=at,
        updated_at=at,
    )


@pytest_asyncio.fixture(scope="module")
async def read_db(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Sessions]:
    """One migrated SQLite file for the module (its tests only read): three accounts, a (red,
    Ana, renews in 20 days), b (green, a webhook as CSM, renews in 200), c (never scored); a's
    scores, usage and alerts."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('read') / 'read.db'}"
    await upgrade_async(url)
    engine = create_engine(url)
    try:
        await _seed(create_sessionmaker(engine))
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


async def _seed(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        s.add_all(
            [
                Account(
                    account_id="a",
                    name="Acme",
                    mrr=500.0,
                    score=30.0,
                    band="red",
                    scored_as_of=TODAY,
                    csm_email="ana@cs.example",
                    renewal_date=TODAY + timedelta(days=20),
                ),
                Account(
                    account_id="b",
                    name="Bolt",
                    mrr=900.0,
                    score=80.0,
                    band="green",
                    scored_as_of=TODAY,
                    csm_slack="https://hooks.example/T/B/secret",
                    renewal_date=TODAY + timedelta(days=200),
                ),
                Account(account_id="c", name="Cork"),
            ]
        )
        for d in range(3):
            day = TODAY - timedelta(days=2 - d)
            s.add(
                HealthScore(
                    account_id="a",
                    as_of=day,
                    score=50.0 - 10 * d,
                    band="red",
                    metrics={"mau": 3 + d},
                )
            )
            s.add(AccountDay(account_id="a", day=day, events=10, logins=2, active_users=d))
            s.add(UserDay(account_id="a", user_id=f"u{d % 2}", day=day, events=5, logins=1))
            s.add(FeatureDay(account_id="a", feature="exports", day=day, uses=4, users=1))
            s.add(FeatureUserDay(account_id="a", feature="exports", user_id="u0", day=day, uses=4))
        s.add(HealthScore(account_id="b", as_of=TODAY, score=80.0, band="green", metrics={}))
        s.add_all(
            [
                _alert("a", "dormant", "open", 0),
                _alert("a", "login_decline", "acknowledged", 5),
                _alert("a", "health_drop", "pending", 10),
                _alert("a", "login_plateau", "resolved", 15),
                _alert("b", "seat_utilization", "none", 20),
            ]
        )


@pytest.mark.integration  # a SQLite file
class TestAccounts:
    async def test_pages_sorted_with_nulls_last_and_the_total(self, read_db: Sessions) -> None:
        async with read_db() as s:
            total, page = await accounts.list_accounts(s, AccountFilter(), sort="-score", limit=2)
            assert total == 3
            assert [a.account_id for a in page] == ["b", "a"]
            _, rest = await accounts.list_accounts(s, AccountFilter(), sort="-score", offset=2)
            assert [a.account_id for a in rest] == ["c"]

    async def test_filters(self, read_db: Sessions) -> None:
        async with read_db() as s:
            by_csm = await accounts.find_accounts(s, AccountFilter(csm="ana@cs.example"))
            by_hook = await accounts.find_accounts(
                s, AccountFilter(csm="https://hooks.example/T/B/secret")
            )
            soon = await accounts.find_accounts(
                s, AccountFilter(renewal_from=TODAY, renewal_to=TODAY + timedelta(days=30))
            )
            green = await accounts.find_accounts(s, AccountFilter(band="green"))
        assert [a.account_id for a in by_csm] == ["a"]
        assert [a.account_id for a in by_hook] == ["b"]
        assert [a.account_id for a in soon] == ["a"]
        assert [a.account_id for a in green] == ["b"]

    async def test_a_webhook_url_is_never_offered_as_a_csm(self, read_db: Sessions) -> None:
        async with read_db() as s:
            assert await accounts.csm_names(s) == ["ana@cs.example"]

    async def test_current_health(self, read_db: Sessions) -> None:
        async with read_db() as s:
            assert await accounts.current_health(s, ["a", "c", "a"]) == {
                "a": (30.0, "red"),
                "c": (None, None),
            }
            assert await accounts.current_health(s, []) == {}


@pytest.mark.integration  # a SQLite file
class TestScores:
    async def test_latest_and_history(self, read_db: Sessions) -> None:
        async with read_db() as s:
            latest = await scores.latest_score(s, "a")
            assert latest is not None and latest.as_of == TODAY
            window = await scores.score_history(s, "a", TODAY - timedelta(days=1), TODAY)
            assert [h.score for h in window] == [40.0, 30.0]
            points = await scores.score_points(s, "a", TODAY - timedelta(days=5))
            assert points == [
                (TODAY - timedelta(days=2), 50.0, "red"),
                (TODAY - timedelta(days=1), 40.0, "red"),
                (TODAY, 30.0, "red"),
            ]
            assert await scores.latest_score(s, "c") is None

    async def test_many_accounts_at_once(self, read_db: Sessions) -> None:
        ids = AccountFilter(band="red").ids()
        async with read_db() as s:
            series = list(await scores.score_series(s, ids, TODAY - timedelta(days=1)))
            metrics = await scores.current_metrics(s, AccountFilter().ids())
        assert series == [("a", TODAY - timedelta(days=1), 40.0), ("a", TODAY, 30.0)]
        assert metrics == {"a": {"mau": 5}, "b": {}}


@pytest.mark.integration  # a SQLite file
class TestUsage:
    async def test_days_and_totals(self, read_db: Sessions) -> None:
        start = TODAY - timedelta(days=1)
        async with read_db() as s:
            days = await usage.account_days(s, "a", start, TODAY)
            features = await usage.feature_days(s, "a", start, TODAY)
            totals = await usage.usage_totals(s, "a", TODAY - timedelta(days=2), TODAY)
            by_feature = await usage.feature_totals(s, "a", TODAY - timedelta(days=2), TODAY)
            nothing = await usage.usage_totals(s, "c", TODAY, TODAY)
        assert [(d.day, d.active_users) for d in days] == [(start, 1), (TODAY, 2)]
        assert [f.day for f in features] == [start, TODAY]
        assert totals == usage.UsageTotals(
            events=30, logins=6, active_days=2, active_user_days=3, users=2, days=3
        )
        assert by_feature == {"exports": (12, 1)}
        assert nothing == usage.UsageTotals(days=1)


@pytest.mark.integration  # a SQLite file
class TestAlerts:
    async def test_search(self, read_db: Sessions) -> None:
        async with read_db() as s:
            total, rows = await alerts.search_alerts(s, statuses=alerts.ACTIVE_STATUSES)
            assert total == 2
            assert [a.rule for a in rows] == ["login_decline", "dormant"]  # latest change first
            _, pending = await alerts.search_alerts(s, statuses=["pending"], account="a")
            assert [a.rule for a in pending] == ["health_drop"]
            _, by_csm = await alerts.search_alerts(
                s, statuses=alerts.SHOWN_STATUSES, csm="ana@cs.example", limit=1, offset=1
            )
            assert [a.rule for a in by_csm] == ["login_decline"]

    async def test_what_people_see_of_an_account(self, read_db: Sessions) -> None:
        async with read_db() as s:
            shown = await alerts.account_alerts(s, "a")
            active = await alerts.active_alerts(s, "ana@cs.example")
            counts = await alerts.active_counts(s, AccountFilter().ids())
            one = await alerts.get_alert(s, active[0].id)
            missing = await alerts.get_alert(s, 10**12)
            sent = await alerts.deliveries(s, active[0].id)
        assert [a.rule for a in shown] == ["login_plateau", "login_decline", "dormant"]
        assert [a.rule for a in active] == ["dormant", "login_decline"]
        assert counts == {"a": 2}
        assert one is not None and one.rule == "dormant"
        assert missing is None and sent == []

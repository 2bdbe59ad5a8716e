"""The outcomes repository and migration 0008 on PostgreSQL and SQLite: idempotent recording,
the derived MRR history and stage changes, refusals that leave nothing behind, and retention
over what was stored equal to the figures worked out by hand."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import date

import pytest
from alembic import command
from sqlalchemy import func, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.migrate import alembic_config, upgrade_async
from shared.db.models import Account, FeatureDay, Outcome
from shared.db.session import create_engine, create_sessionmaker, transaction
from shared.outcomes.model import CustomerOutcome, MrrPoint, OutcomesPolicy, StageChange
from shared.outcomes.mrr import InconsistentOutcomes
from shared.outcomes.repository import OutcomeRepository, UnknownAccounts
from shared.outcomes.retention import Month, monthly_retention
from tests.outcomes.portfolio import PORTFOLIO, cancellation, change
from tests.support.postgres import create_database, drop_database

pytestmark = pytest.mark.integration

D = date
TODAY = D(2026, 6, 30)
PROFILE_MRR = {"A": 1500, "B": 800, "C": 400, "D": 300, "E": 600, "F": 100}
OUTCOME_TABLES = {"outcomes", "mrr_history", "lifecycle_stage_changes"}


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(url)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


def engines(pg_url: str, sqlite_url: str) -> list[tuple[str, str]]:
    """Both databases: the run's PostgreSQL (shared: every test uses its own account ids) and
    a fresh SQLite file."""
    return [("postgresql", pg_url), ("sqlite", sqlite_url)]


async def create_portfolio(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    """The hand-made portfolio's profiles under fresh ids; returns letter -> account id."""
    prefix = uuid.uuid4().hex[:10]
    ids = {h.account_id: f"{prefix}-{h.account_id}" for h in PORTFOLIO}
    async with transaction(sessions) as session:
        session.add_all(
            Account(
                account_id=ids[h.account_id],
                created_at=h.start,
                plan=h.plan,
                csm_email=h.csm,
                renewal_date=h.renewal_date,
                mrr=PROFILE_MRR[h.account_id],
            )
            for h in PORTFOLIO
        )
    return ids


def portfolio_outcomes(ids: dict[str, str]) -> list[CustomerOutcome]:
    return [replace(o, account_id=ids[o.account_id]) for h in PORTFOLIO for o in h.outcomes]


async def record(
    sessions: async_sessionmaker[AsyncSession], outcomes: list[CustomerOutcome]
) -> tuple[int, int, int]:
    async with transaction(sessions) as session:
        r = await OutcomeRepository(session, OutcomesPolicy()).record(outcomes, as_of=TODAY)
    return (r.inserted, r.updated, r.unchanged)


async def count_outcomes(sessions: async_sessionmaker[AsyncSession], ids: list[str]) -> int:
    async with sessions() as session:
        n = await session.scalar(
            select(func.count()).select_from(Outcome).where(Outcome.account_id.in_(ids))
        )
    return int(n or 0)


class TestRecording:
    async def test_a_reimport_changes_nothing(self, pg_url: str, sqlite_url: str) -> None:
        for engine, url in engines(pg_url, sqlite_url):
            async with opened(url) as sessions:
                ids = await create_portfolio(sessions)
                outcomes = portfolio_outcomes(ids)
                assert await record(sessions, outcomes) == (8, 0, 0), engine
                assert await record(sessions, outcomes) == (0, 0, 8), engine
                assert await count_outcomes(sessions, list(ids.values())) == 8, engine
                async with sessions() as session:
                    repo = OutcomeRepository(session)
                    assert await repo.outcomes(ids["D"]) == [
                        replace(o, account_id=ids["D"]) for o in PORTFOLIO[3].outcomes
                    ], engine
                    assert await repo.mrr_history(ids["C"]) == [
                        MrrPoint(D(2025, 3, 1), 450, "start"),
                        MrrPoint(D(2026, 2, 15), 400, "contraction"),
                        MrrPoint(D(2026, 3, 1), 400, "renewal"),
                    ], engine
                    assert await repo.stage_changes(ids["D"]) == [
                        StageChange(D(2025, 1, 10), "new"),
                        StageChange(D(2025, 2, 9), "growing"),
                        StageChange(D(2026, 1, 20), "renewal"),
                        StageChange(D(2026, 2, 1), "cancelled"),
                        StageChange(D(2026, 4, 20), "growing"),
                    ], engine

    async def test_a_corrected_figure_updates_the_row_and_the_history(
        self, pg_url: str, sqlite_url: str
    ) -> None:
        for engine, url in engines(pg_url, sqlite_url):
            async with opened(url) as sessions:
                ids = await create_portfolio(sessions)
                await record(sessions, portfolio_outcomes(ids))
                fixed = change(ids["A"], D(2026, 2, 10), 700)
                assert await record(sessions, [fixed]) == (0, 1, 0), engine
                assert await count_outcomes(sessions, [ids["A"]]) == 1, engine
                async with sessions() as session:
                    history = await OutcomeRepository(session).mrr_history(ids["A"])
                # The profile still says 1500 now, so the baseline is 1500 - 700.
                assert [p.mrr for p in history] == [800, 1500], engine

    async def test_an_unknown_account_records_nothing(self, pg_url: str, sqlite_url: str) -> None:
        for engine, url in engines(pg_url, sqlite_url):
            async with opened(url) as sessions:
                ids = await create_portfolio(sessions)
                ghost = f"{ids['A']}-ghost"
                batch = [change(ids["A"], D(2026, 5, 1), 10), change(ghost, D(2026, 5, 1), 10)]
                with pytest.raises(UnknownAccounts, match="account_id: no such account") as err:
                    await record(sessions, batch)
                assert err.value.account_ids == [ghost], engine
                assert await count_outcomes(sessions, [ids["A"], ghost]) == 0, engine

    async def test_a_contradiction_rolls_the_batch_back(self, pg_url: str, sqlite_url: str) -> None:
        for engine, url in engines(pg_url, sqlite_url):
            async with opened(url) as sessions:
                ids = await create_portfolio(sessions)
                await record(sessions, portfolio_outcomes(ids))
                late = change(ids["B"], D(2026, 5, 1), 10)  # B was cancelled on 2026-03-05
                with pytest.raises(InconsistentOutcomes, match="2026-03-05"):
                    await record(sessions, [late, cancellation(ids["E"], D(2026, 5, 1))])
                assert await count_outcomes(sessions, [ids["B"], ids["E"]]) == 1, engine
                async with sessions() as session:
                    stages = await OutcomeRepository(session).stage_changes(ids["B"])
                assert [s.stage for s in stages] == ["new", "growing", "cancelled"], engine

    async def test_the_same_key_twice_in_a_batch(self, pg_url: str, sqlite_url: str) -> None:
        for _engine, url in engines(pg_url, sqlite_url):
            async with opened(url) as sessions:
                ids = await create_portfolio(sessions)
                twice = [change(ids["A"], D(2026, 5, 1), 10), change(ids["A"], D(2026, 5, 1), 20)]
                with pytest.raises(ValueError, match=r"effective_on: .* given twice"):
                    await record(sessions, twice)

    async def test_a_large_import(self, pg_url: str, sqlite_url: str) -> None:
        for engine, url in engines(pg_url, sqlite_url):
            async with opened(url) as sessions:
                prefix = uuid.uuid4().hex[:10]
                ids = [f"{prefix}-{i}" for i in range(1500)]
                async with transaction(sessions) as session:
                    await session.execute(
                        insert(Account),
                        [{"account_id": a, "created_at": D(2025, 1, 1), "mrr": 100} for a in ids],
                    )
                batch = [change(a, D(2026, m, 1), 10) for a in ids for m in (1, 2)]
                assert await record(sessions, batch) == (3000, 0, 0), engine
                assert await record(sessions, batch) == (0, 0, 3000), engine
                assert await count_outcomes(sessions, ids) == 3000, engine


class TestReading:
    async def test_retention_over_the_stored_portfolio(self, pg_url: str, sqlite_url: str) -> None:
        for engine, url in engines(pg_url, sqlite_url):
            async with opened(url) as sessions:
                ids = await create_portfolio(sessions)
                await record(sessions, portfolio_outcomes(ids))
                async with sessions() as session:
                    repo = OutcomeRepository(session)
                    derived = await repo.histories(list(ids.values()))
                    # E has no outcome, so recording did not rebuild it; the daily job would.
                    assert not (await repo.histories([ids["E"]], stored=True))[0].mrr
                    assert await repo.rebuild([ids["E"]], as_of=TODAY) == 1
                    stored = await repo.histories(list(ids.values()), stored=True)
                assert stored == derived, engine
                rows = monthly_retention(derived, Month(2026, 2), Month(2026, 4))
                # The same figures as tests/outcomes/test_retention.py worked out by hand.
                assert [
                    (r.accounts_at_start, r.churned_accounts, r.starting_mrr, r.churned_mrr)
                    for r in rows
                ] == [(5, 1, 2600, 200), (5, 1, 3450, 800), (4, 0, 2600, 0)], engine

    async def test_first_key_feature_use(self, pg_url: str, sqlite_url: str) -> None:
        for engine, url in engines(pg_url, sqlite_url):
            async with opened(url) as sessions:
                ids = await create_portfolio(sessions)
                a, b, c = ids["A"], ids["B"], ids["C"]
                async with transaction(sessions) as session:
                    session.add_all(
                        [
                            FeatureDay(account_id=a, feature="reports", day=D(2025, 6, 9), uses=3),
                            FeatureDay(account_id=a, feature="export", day=D(2025, 6, 4), uses=1),
                            FeatureDay(account_id=a, feature="chat", day=D(2025, 6, 2), uses=9),
                            FeatureDay(account_id=b, feature="chat", day=D(2025, 9, 16), uses=2),
                            FeatureDay(account_id=c, feature="export", day=D(2025, 3, 20), uses=0),
                        ]
                    )
                async with sessions() as session:
                    repo = OutcomeRepository(session)
                    first = await repo.first_key_feature_use(["reports", "export"], [a, b, c])
                    assert first == {a: D(2025, 6, 4)}, engine
                    assert await repo.first_key_feature_use([], [a]) == {}, engine


def _tables(sync_conn: object) -> set[str]:
    return set(inspect(sync_conn).get_table_names())


async def _outcome_tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return OUTCOME_TABLES & await conn.run_sync(_tables)
    finally:
        await engine.dispose()


class TestMigration:
    @pytest.mark.parametrize("engine", ["postgresql", "sqlite"])
    async def test_upgrade_downgrade_upgrade(self, engine: str, tmp_path: object) -> None:
        if engine == "postgresql":
            url = await create_database("tend_outcomes_migr")
        else:
            url = f"sqlite+aiosqlite:///{tmp_path}/migr.db"
        try:
            await upgrade_async(url)
            assert await _outcome_tables(url) == OUTCOME_TABLES
            await asyncio.to_thread(command.downgrade, alembic_config(url), "0007")
            assert await _outcome_tables(url) == set()
            await upgrade_async(url)
            async with opened(url) as sessions:
                async with transaction(sessions) as session:
                    session.add(Account(account_id="a", created_at=D(2026, 1, 1), mrr=10))
                await record(sessions, [change("a", D(2026, 2, 1), 5)])
                assert await count_outcomes(sessions, ["a"]) == 1
        finally:
            if engine == "postgresql":
                await drop_database(url)

"""Migrations build, from an empty database, exactly the schema the models describe."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import bindparam, inspect

from shared.db.models import Base
from shared.db.session import create_engine, create_sessionmaker
from shared.db.types import UTCDateTime
from tests.support.postgres import create_database, drop_database


def _diff(sync_conn: Any) -> list[Any]:
    ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, Base.metadata))


def _tables(sync_conn: Any) -> set[str]:
    return set(inspect(sync_conn).get_table_names())


class TestMigrations:
    @pytest.mark.integration
    async def test_postgres_empty_database_matches_models(self) -> None:
        from shared.db.migrate import upgrade_async

        url = await create_database("tend_migr")
        try:
            await upgrade_async(url)
            engine = create_engine(url)
            async with engine.connect() as conn:
                assert await conn.run_sync(_diff) == []
                tables = await conn.run_sync(_tables)
            await engine.dispose()
            assert set(Base.metadata.tables) <= tables
        finally:
            await drop_database(url)

    async def test_sqlite_empty_database_matches_models(self, sqlite_url: str) -> None:
        engine = create_engine(sqlite_url)
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            tables = await conn.run_sync(_tables)
        await engine.dispose()
        assert set(Base.metadata.tables) <= tables


async def _recent_events_through_0016(url: str) -> None:
    """0015's ``recent_events`` rows, migrated to pages (0016) and back."""
    from alembic import command
    from sqlalchemy import text

    from services.scorer.writer import RollupWriter
    from shared.db.migrate import alembic_config, upgrade_async
    from shared.read.events import PAGE_SLOTS, last_events
    from tests.support.events import create_event

    at = datetime(2026, 11, 2, 10, 0, 0, 123456, tzinfo=UTC)
    await upgrade_async(url, "0015")
    engine = create_engine(url)
    rows = [
        {
            "account_id": account,
            "event_id": f"{account}-{i}",
            "type": "track",
            "name": f"Event {i}",
            "user_id": None if i == 1 else "u",
            "write_key_id": None,
            "occurred_at": at + timedelta(minutes=i),
            "received_at": at + timedelta(minutes=i, seconds=1),
            "stored_at": at + timedelta(minutes=i, seconds=2),
        }
        for i in range(3)
        for account in ("a", "b")
    ]
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO recent_events (account_id, event_id, type, name, user_id, "
                "write_key_id, occurred_at, received_at, stored_at) VALUES (:account_id, "
                ":event_id, :type, :name, :user_id, :write_key_id, :occurred_at, "
                ":received_at, :stored_at)"
            ).bindparams(
                *(
                    bindparam(c, type_=UTCDateTime(timezone=True))
                    for c in ("occurred_at", "received_at", "stored_at")
                )
            ),
            rows,
        )
        old_ids = [i for (i,) in await conn.execute(text("SELECT id FROM recent_events"))]
    await engine.dispose()
    await upgrade_async(url)
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        shown = await last_events(session, "a")
        assert [e.event_id for e in shown] == ["a-2", "a-1", "a-0"]
        assert [(e.user_id, e.occurred_at, e.received_at, e.stored_at) for e in shown][1] == (
            None,
            at + timedelta(minutes=1),
            at + timedelta(minutes=1, seconds=1),
            at + timedelta(minutes=1, seconds=2),
        )
        assert sorted(e.id // PAGE_SLOTS for e in await last_events(session)) == sorted(old_ids)
    async with sessions() as session, session.begin():
        await RollupWriter().flush(session, "g", [create_event("a-new", account_id="a")], {})
    async with sessions() as session:
        newest, *older = await last_events(session, "a")
        assert newest.event_id == "a-new" and newest.id > max(e.id for e in older)
    await engine.dispose()
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0015")
    engine = create_engine(url)
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT event_id FROM recent_events WHERE account_id = 'a' ORDER BY id")
        )
        assert [e for (e,) in result] == ["a-0", "a-1", "a-2", "a-new"]
    await engine.dispose()


@pytest.mark.integration
class TestRecentEventPages:
    async def test_postgres_rows_become_pages_and_back(self) -> None:
        url = await create_database("tend_migr")
        try:
            await _recent_events_through_0016(url)
        finally:
            await drop_database(url)

    async def test_sqlite_rows_become_pages_and_back(self, tmp_path: Path) -> None:
        await _recent_events_through_0016(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")

    async def test_postgres_down_with_a_nul_in_a_name(self) -> None:
        """A page's JSON holds a NUL in an event name (a record from another producer than
        ingest: the old table refused it, so the old writer dead-lettered the record); the
        downgrade still goes through, the NUL shown as U+FFFD."""
        from alembic import command
        from sqlalchemy import text

        from services.scorer.writer import RollupWriter
        from shared.db.migrate import alembic_config, upgrade_async
        from shared.read.events import last_events
        from tests.support.events import create_event

        url = await create_database("tend_migr")
        try:
            await upgrade_async(url)
            engine = create_engine(url)
            sessions = create_sessionmaker(engine)
            async with sessions() as session, session.begin():
                event = create_event("nul-1", account_id="a", name="Sign\x00ed up")
                await RollupWriter().flush(session, "g", [event], {})
            async with sessions() as session:
                assert [e.name for e in await last_events(session, "a")] == ["Sign\x00ed up"]
            await engine.dispose()
            await asyncio.to_thread(command.downgrade, alembic_config(url), "0015")
            engine = create_engine(url)
            async with engine.connect() as conn:
                names = (await conn.execute(text("SELECT name FROM recent_events"))).scalars()
                assert list(names) == ["Sign\ufffded up"]
            await engine.dispose()
        finally:
            await drop_database(url)

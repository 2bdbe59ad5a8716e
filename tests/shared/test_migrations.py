"""Migrations build, from an empty database, exactly the schema the models describe."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from shared.db.models import Base
from shared.db.session import create_engine
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

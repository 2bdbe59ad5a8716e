"""The engine's pool: a connection idle in the pool is pinged at checkout and replaced when its
server session is gone; one used moments ago is handed out as it is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import session as db_session
from shared.db.session import create_engine
from tests.support.postgres import SERVER_DSN

pytestmark = pytest.mark.integration


async def backend(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def terminate(pid: int) -> None:
    conn = await asyncpg.connect(SERVER_DSN)
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


@pytest.fixture
async def pooled_one(pg_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine of the project's (its pool's checkout checks) with one pooled connection."""
    engine = create_engine(pg_url, pool_size=1)
    try:
        yield engine
    finally:
        await engine.dispose()


class TestIdlePing:
    async def test_a_connection_ended_while_idle_is_replaced(
        self, pooled_one: AsyncEngine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        engine = pooled_one
        monkeypatch.setattr(db_session, "PING_IDLE_S", 0.0)  # every checkout counts as idle
        first = await backend(engine)
        await terminate(first)
        second = await backend(engine)
        assert second != first
        assert await backend(engine) == second  # alive: kept

    async def test_a_connection_used_moments_ago_is_reused_unpinged(
        self, pooled_one: AsyncEngine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        engine = pooled_one
        monkeypatch.setattr(db_session, "PING_IDLE_S", 3600.0)
        first = await backend(engine)
        pings = 0
        dialect = engine.sync_engine.dialect
        ping = dialect.do_ping

        def counted(conn: object) -> bool:
            nonlocal pings
            pings += 1
            return ping(conn)

        monkeypatch.setattr(dialect, "do_ping", counted)
        assert await backend(engine) == first
        assert pings == 0

    async def test_a_connection_closed_moments_ago_is_replaced_unpinged(
        self, pooled_one: AsyncEngine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        engine = pooled_one
        # Used moments ago (no ping is due), but its server session was ended meanwhile and
        # the driver saw its socket close: it is replaced at checkout, not handed out.
        monkeypatch.setattr(db_session, "PING_IDLE_S", 3600.0)
        async with engine.connect() as conn:
            first = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            driver = (await conn.get_raw_connection()).driver_connection
        await terminate(first)
        async with asyncio.timeout(10):
            while not driver.is_closed():  # noqa: ASYNC110 (asyncpg has no event for it)
                await asyncio.sleep(0.01)
        second = await backend(engine)
        assert second != first

"""Engine and session factories. Repositories never commit; the caller's boundary does."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def create_engine(database_url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine for PostgreSQL (asyncpg) or SQLite (aiosqlite).

    SQLite gets WAL mode and a busy timeout, so the services of ``tend up`` can share one file.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
    _ping_when_idle(engine)
    return engine


PING_IDLE_S = 1.0
"""A pooled connection idle longer than this is pinged when checked out (``pool_pre_ping``
pings at every checkout: three round trips on asyncpg, 2-3% of a re-scoring sweep's CPU, for
connections used a few milliseconds before)."""


def _ping_when_idle(engine: AsyncEngine) -> None:
    """``pool_pre_ping`` for connections back in the pool for more than ``PING_IDLE_S``: a
    server restarted or a connection dropped while it sat idle is replaced at checkout (and
    the connections older than it with it). One the driver already knows is closed (the
    server ended its session, the socket is gone) is replaced at checkout however recently it
    was used: that check is local, no round trip. One that breaks while in use fails its
    statement, as with ``pool_pre_ping``, and SQLAlchemy then invalidates the pool."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _checked_in(dbapi_conn: Any, record: Any) -> None:
        record.info["tend_idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop("tend_idle_since", None)
        if _known_closed(dbapi_conn):
            raise exc.InvalidatePoolError("the connection was closed while in the pool")
        if since is None or time.monotonic() - since < PING_IDLE_S:
            return  # connected just now, or in use moments ago
        try:
            dialect.do_ping(dbapi_conn)
        except Exception as e:
            raise exc.InvalidatePoolError(f"ping failed: {e}") from e


def _known_closed(dbapi_conn: Any) -> bool:
    """True when the driver (asyncpg) already knows the connection is closed."""
    closed = getattr(getattr(dbapi_conn, "driver_connection", None), "is_closed", None)
    return bool(closed()) if callable(closed) else False


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits when the block ends, rolls back when it raises."""
    async with sessions() as session, session.begin():
        yield session

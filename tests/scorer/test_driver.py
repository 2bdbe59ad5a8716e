"""Driver-level SQLite statements store exactly what Core's ``executemany`` stores."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import bindparam, insert, select
from sqlalchemy.dialects.sqlite import aiosqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.driver import DriverStatement
from services.scorer.recent import _INSERT_SQLITE, COLUMNS, RECENT
from services.scorer.writer import _CLAIM_SQLITE, USER_DAYS, _increment_sqlite

Sessions = async_sessionmaker[AsyncSession]
PARIS = timezone(timedelta(hours=2))


async def raw(session: AsyncSession, sql: str) -> list[tuple[Any, ...]]:
    result = await (await session.connection()).exec_driver_sql(sql)
    return [tuple(r) for r in result.all()]


async def test_recent_rows_are_stored_as_core_stores_them(sqlite_sessions: Sessions) -> None:
    # Aware times in two zones, with and without microseconds, one repeated (memoised once).
    times = [
        datetime(2026, 11, 2, 10, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 11, 2, 12, 0, 0, tzinfo=PARIS),
        datetime(2026, 11, 2, 10, 0, 0, 123456, tzinfo=UTC),
    ]

    def row(account: str, i: int, at: datetime) -> tuple[Any, ...]:
        return (account, f"{account}-{i}", "track", "Ev", "u", None, at, at, times[0])

    async with sqlite_sessions() as session, session.begin():
        core_rows = [
            dict(zip(COLUMNS, row("core", i, t), strict=True)) for i, t in enumerate(times)
        ]
        await session.execute(insert(RECENT), core_rows)
        await _INSERT_SQLITE.executemany(session, [row("drv", i, t) for i, t in enumerate(times)])
        columns = "type, name, user_id, write_key_id, occurred_at, received_at, stored_at"
        core = await raw(session, f"SELECT {columns} FROM recent_events WHERE account_id='core'")
        driver = await raw(session, f"SELECT {columns} FROM recent_events WHERE account_id='drv'")
    assert driver == core
    assert core[1][4] == "2026-11-02 10:00:00.000000"


async def test_increments_store_dates_as_core_and_add_up(sqlite_sessions: Sessions) -> None:
    statement = _increment_sqlite(
        USER_DAYS, ("account_id", "user_id", "day"), ("events", "logins"), None
    )
    day = date(2026, 11, 2)
    async with sqlite_sessions() as session, session.begin():
        core = {"account_id": "core", "user_id": "u", "day": day, "events": 1, "logins": 0}
        await session.execute(insert(USER_DAYS), [core])
        await statement.executemany(session, [("drv", "u", day, 1, 0), ("drv", "u", day, 2, 1)])
        query = "SELECT account_id, day, events, logins FROM user_days ORDER BY 1"
        rows = await raw(session, query)
    assert rows == [("core", "2026-11-02", 1, 0), ("drv", "2026-11-02", 3, 1)]


async def test_claim_returns_only_ids_it_added_across_statements(
    sqlite_sessions: Sessions,
) -> None:
    at = datetime(2026, 11, 2, tzinfo=UTC)
    async with sqlite_sessions() as session, session.begin():
        first = await _CLAIM_SQLITE.returning(session, [("a", at), ("b", at)], per_statement=3)
        ids = [(f"{c}", at) for c in "abcdefg"]
        second = await _CLAIM_SQLITE.returning(session, ids, per_statement=3)
    assert sorted(first) == ["a", "b"]
    assert sorted(second) == ["c", "d", "e", "f", "g"]


def test_a_parameter_no_row_value_feeds_is_refused() -> None:
    query = select(USER_DAYS.c.events).where(USER_DAYS.c.day == bindparam("when"))
    with pytest.raises(ValueError):
        DriverStatement(query, ("day",))._compile(aiosqlite.dialect())

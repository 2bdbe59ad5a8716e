"""Driver-level SQLite statements store exactly what Core's ``executemany`` stores."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import bindparam, insert, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite import aiosqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.driver import DriverStatement
from services.scorer.recent import _INSERT_SQLITE, COLUMNS, PAGES
from services.scorer.writer import (
    _ACCOUNT_ROW,
    _CLAIM_SQLITE,
    _USER_ROW,
    ACCOUNTS,
    USER_DAYS,
    USERS,
    RollupWriter,
    Upsert,
    _account_upsert,
    _increment_sqlite,
    _sqlite_upsert,
    _user_upsert_seen,
    _user_upsert_traits,
)
from shared.bus.base import TopicPartition
from shared.db.offsets import store_offsets

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
        return (account, i + 1, f'["{account}-{i}"]', at)

    async with sqlite_sessions() as session, session.begin():
        core_rows = [
            dict(zip(COLUMNS, row("core", i, t), strict=True)) for i, t in enumerate(times)
        ]
        await session.execute(insert(PAGES), core_rows)
        await _INSERT_SQLITE.executemany(session, [row("drv", i, t) for i, t in enumerate(times)])
        columns = "size, substr(events, length(account_id) + 3), stored_at"
        core = await raw(session, f"SELECT {columns} FROM {PAGES.name} WHERE account_id='core'")
        driver = await raw(session, f"SELECT {columns} FROM {PAGES.name} WHERE account_id='drv'")
    assert driver == core
    assert core[1][2] == "2026-11-02 10:00:00.000000"


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


def test_rows_convert_each_column_as_its_processor_does_row_by_row() -> None:
    # Shared and distinct JSON objects (equal or not), repeated and distinct aware times,
    # None: the rows bound column by column equal each value converted on its own.
    dialect = aiosqlite.dialect()
    statement = _sqlite_upsert(_user_upsert_traits, USERS, _USER_ROW)
    shared: dict[str, Any] = {}
    at = datetime(2026, 11, 2, 10, tzinfo=UTC)
    rows = [
        ("a", "u1", at, at, shared),
        ("a", "u2", at, at.astimezone(PARIS), {}),
        ("b", "u3", at + timedelta(days=1), at, {"plan": "pro"}),
        ("b", "u4", at, at, shared),
        ("b", "u5", at, at, None),
    ]
    sql, bound = statement._rows(dialect, rows)
    compiled = statement.statement.compile(dialect=dialect, column_keys=list(_USER_ROW))
    assert sql == compiled.string
    processors = [
        compiled.binds[p].type.dialect_impl(dialect).bind_processor(dialect)
        for p in compiled.positiontup or ()
    ]
    where = [_USER_ROW.index(p) for p in compiled.positiontup or ()]
    expected = [
        tuple(row[i] if f is None else f(row[i]) for i, f in zip(where, processors, strict=True))
        for row in rows
    ]
    assert bound == expected
    assert statement._rows(dialect, []) == (sql, [])


async def core_and_driver(
    session: AsyncSession,
    table: Any,
    build: Upsert,
    names: tuple[str, ...],
    core_rows: list[tuple[Any, ...]],
    driver_rows: list[tuple[Any, ...]],
) -> None:
    """``core_rows`` written by Core's executemany, ``driver_rows`` by the driver's."""
    dicts = [dict(zip(names, r, strict=True)) for r in core_rows]
    await session.execute(build(sqlite.insert(table)), dicts)
    await _sqlite_upsert(build, table, names).executemany(session, driver_rows)


async def test_accounts_store_json_booleans_dates_floats_as_core(
    sqlite_sessions: Sessions,
) -> None:
    at = datetime(2026, 11, 2, 12, 0, 0, 5, tzinfo=PARIS)
    profile = ("Acme", "pro", 12, 99.5, date(2027, 1, 1), "customer", None, "c@x.io", "#csm")

    def row(account: str, traits: dict[str, Any] | None) -> tuple[Any, ...]:
        return (account, date(2026, 11, 1), at, True, *profile, date(2026, 11, 1), traits)

    traits = {"tier": "gold", "n": [1, 2.5], "ok": False, "none": None, "é": "ü"}
    async with sqlite_sessions() as session, session.begin():
        rows = [row("core", traits), row("core-null", None)]
        drv = [row("drv", traits), row("drv-null", None)]
        await core_and_driver(session, ACCOUNTS, _account_upsert, _ACCOUNT_ROW, rows, drv)
        columns = ", ".join(c for c in _ACCOUNT_ROW if c != "account_id")
        query = f"SELECT {columns} FROM accounts WHERE account_id IN (%s) ORDER BY account_id"
        core = await raw(session, query % "'core', 'core-null'")
        driver = await raw(session, query % "'drv', 'drv-null'")
    assert driver == core
    assert core[0][2] == 1 and core[1][-1] == "null"


async def test_users_upserts_widen_seen_and_replace_traits_only_when_asked(
    sqlite_sessions: Sessions,
) -> None:
    day = datetime(2026, 11, 2, 10, tzinfo=UTC)
    hour = timedelta(hours=1)

    def row(account: str, first: datetime, last: datetime, **traits: Any) -> tuple[Any, ...]:
        return (account, "u", first, last, traits)

    async with sqlite_sessions() as session, session.begin():
        for build, plan in ((_user_upsert_traits, "pro"), (_user_upsert_seen, "free")):
            first = [row(a, day, day, plan=plan, on=True) for a in ("core", "drv")]
            await core_and_driver(session, USERS, build, _USER_ROW, first[:1], first[1:])
            later = [row(a, day - hour, day - hour, plan="x") for a in ("core", "drv")]
            await core_and_driver(session, USERS, build, _USER_ROW, later[:1], later[1:])
        query = "SELECT first_seen, last_seen, traits FROM users WHERE account_id = '%s'"
        core = await raw(session, query % "core")
        driver = await raw(session, query % "drv")
    assert driver == core
    # The traits upsert replaced them; the seen-only one kept them; times only widened.
    assert core == [("2026-11-02 09:00:00.000000", "2026-11-02 10:00:00.000000", '{"plan": "x"}')]


async def test_writer_offsets_on_sqlite_store_what_the_shared_upsert_stores(
    sqlite_sessions: Sessions,
) -> None:
    at = datetime(2026, 11, 2, 10, 0, 0, 1, tzinfo=UTC)
    tp1 = TopicPartition("t", 1)
    async with sqlite_sessions() as session, session.begin():
        await RollupWriter.store_offsets(session, "drv", {("t", 0): 5, ("t", 1): 7}, at)
        await RollupWriter.store_offsets(session, "drv", {("t", 0): 9}, at + timedelta(1))
        await store_offsets(session, "core", {TopicPartition("t", 0): 5, tp1: 7}, now=at)
        await store_offsets(session, "core", {TopicPartition("t", 0): 9}, now=at + timedelta(1))
        query = "SELECT topic, partition, next_offset, updated_at FROM consumer_offsets "
        core = await raw(session, query + "WHERE group_id = 'core' ORDER BY 2")
        driver = await raw(session, query + "WHERE group_id = 'drv' ORDER BY 2")
    assert driver == core
    assert driver[0][2:] == (9, "2026-11-03 10:00:00.000001")

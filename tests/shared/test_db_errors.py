"""Which database failures are the data's fault, judged on errors the real databases raise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.bus import BusUnavailable
from shared.consumer import describe_error
from shared.db.errors import is_data_error
from shared.db.session import create_engine


async def raised(engine: AsyncEngine, *statements: tuple[str, dict[str, Any]]) -> BaseException:
    """The error the last of ``statements`` raises, run in one rolled-back transaction."""
    try:
        async with engine.connect() as conn, conn.begin():
            for sql, params in statements:
                await conn.execute(text(sql), params)
    except Exception as err:
        return err
    raise AssertionError(f"{statements[-1][0]!r} did not fail")


@pytest_asyncio.fixture
async def pg(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_url)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture
async def lite(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(sqlite_url)
    yield engine
    await engine.dispose()


CHECKED: tuple[str, dict[str, Any]] = (
    "CREATE TEMPORARY TABLE checked (v TEXT NOT NULL CHECK (v <> 'refused') UNIQUE)",
    {},
)


class TestPostgresql:
    @pytest.mark.parametrize(
        ("statements", "sqlstate"),
        [
            ([("SELECT CAST(:v AS TEXT)", {"v": "a\x00b"})], "22021"),
            ([CHECKED, ("INSERT INTO checked VALUES (:v)", {"v": "refused"})], "23514"),
            ([CHECKED, ("INSERT INTO checked VALUES (:v)", {"v": None})], "23502"),
            (
                [CHECKED, ("INSERT INTO checked VALUES ('x'), (:v)", {"v": "x"})],
                "23505",
            ),
            ([("SELECT CAST(:v AS jsonb)", {"v": '{"a": "\\u0000"}'})], "22P05"),
            ([("SELECT CAST(CAST(:v AS TEXT) AS date)", {"v": "2026-13-45"})], "22008"),
        ],
        ids=["nul", "check", "not-null", "unique", "jsonb-nul", "bad-date"],
    )
    async def test_data_errors_are_the_datas_fault(
        self, pg: AsyncEngine, statements: list[tuple[str, dict[str, Any]]], sqlstate: str
    ) -> None:
        err = await raised(pg, *statements)
        assert is_data_error(err), repr(err)
        assert f"SQLSTATE {sqlstate}" in describe_error(err)

    async def test_a_value_asyncpg_cannot_bind_is_the_datas_fault(self, pg: AsyncEngine) -> None:
        err = await raised(pg, ("SELECT CAST(:v AS SMALLINT)", {"v": 10**30}))
        assert is_data_error(err), repr(err)

    @pytest.mark.parametrize(
        "statements",
        [
            [("SET TRANSACTION READ ONLY", {}), ("CREATE TABLE read_only_t (v int)", {})],
            [("SELECT * FROM no_such_table_here", {})],
            [("SET LOCAL statement_timeout = 1", {}), ("SELECT pg_sleep(1)", {})],
            [("SET LOCAL ROLE pg_monitor", {}), ("CREATE TABLE denied_t (v int)", {})],
        ],
        ids=["read-only", "undefined-table", "statement-timeout", "permission"],
    )
    async def test_refusals_that_are_not_about_the_values_are_transient(
        self, pg: AsyncEngine, statements: list[tuple[str, dict[str, Any]]]
    ) -> None:
        err = await raised(pg, *statements)
        assert not is_data_error(err), repr(err)

    async def test_a_server_that_does_not_answer_is_transient(self) -> None:
        engine = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
        try:
            err = await raised(engine, ("SELECT 1", {}))
        finally:
            await engine.dispose()
        assert not is_data_error(err), repr(err)


class TestSqlite:
    @pytest.mark.parametrize(
        "statements",
        [
            [CHECKED, ("INSERT INTO checked VALUES (:v)", {"v": "refused"})],
            [CHECKED, ("INSERT INTO checked VALUES (:v)", {"v": None})],
            [CHECKED, ("INSERT INTO checked VALUES ('x'), (:v)", {"v": "x"})],
        ],
        ids=["check", "not-null", "unique"],
    )
    async def test_integrity_errors_are_the_datas_fault(
        self, lite: AsyncEngine, statements: list[tuple[str, dict[str, Any]]]
    ) -> None:
        assert is_data_error(await raised(lite, *statements))

    async def test_a_missing_table_is_transient(self, lite: AsyncEngine) -> None:
        assert not is_data_error(await raised(lite, ("SELECT * FROM no_such_table_here", {})))


@pytest.mark.unit
class TestOutsideTheDatabase:
    def test_values_python_refuses_are_the_datas_fault(self) -> None:
        try:
            int("²")
        except ValueError as err:
            assert is_data_error(err)

    @pytest.mark.parametrize(
        "err",
        [BusUnavailable("broker down"), TimeoutError(), ConnectionResetError(), RuntimeError()],
    )
    def test_everything_else_is_transient(self, err: BaseException) -> None:
        assert not is_data_error(err)

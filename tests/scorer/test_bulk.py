"""The text form of the set-based writes: an array literal reads back as the binary array did."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.bulk import array_literal

Sessions = async_sessionmaker[AsyncSession]

STRINGS = [
    "plain",
    "",
    None,
    "NULL",
    "null",
    'a "quoted" word',
    "back\\slash",
    "\\",
    '\\"',
    "new\nline\ttab\rreturn",
    "\x01\x1f\x7f",
    "{braces},commas",
    "  spaces  ",
    "é ü 日本 🙂 \u2028",
    "\\u0041 written out",
]
CASES: list[tuple[str, list[Any]]] = [
    ("TEXT[]", STRINGS),
    ("TEXT[]", ["only", "plain", "text"]),
    ("INTEGER[]", [0, 1, -5, None, 2**31 - 1]),
    ("BIGINT[]", [2**63 - 1, -(2**63), None]),
    ("FLOAT[]", [0.0, 1.5, 4500.0, 1e300, -2.5e-300, 0.1 + 0.2, None]),
    ("FLOAT[]", [math.nan, math.inf, -math.inf, 1.0, None]),
    ("BOOLEAN[]", [True, False, None]),
    ("DATE[]", [date(2026, 11, 2), date(1, 1, 1), date(9999, 12, 31), None]),
    (
        "TIMESTAMP WITH TIME ZONE[]",
        [
            datetime(2026, 11, 2, 10, 15, tzinfo=UTC),
            datetime(2026, 11, 2, 23, 59, 59, 999999, tzinfo=UTC),
            datetime(2026, 11, 2, 1, 2, 3, 450, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            datetime(2026, 11, 2, 1, 2, 3, tzinfo=timezone(-timedelta(hours=8))),
            None,
        ],
    ),
    ("TEXT[]", []),
]


@pytest.mark.parametrize(("array_type", "values"), CASES)
async def test_a_literal_reads_as_the_binary_array(
    pg_sessions: Sessions, array_type: str, values: list[Any]
) -> None:
    async with pg_sessions() as session:
        binary = (
            await session.execute(text(f"SELECT CAST(:v AS {array_type})"), {"v": values})
        ).scalar_one()
        literal = (
            await session.execute(
                text(f"SELECT CAST(CAST(:v AS TEXT) AS {array_type})"),
                {"v": array_literal(values)},
            )
        ).scalar_one()
    assert binary == values or array_type == "FLOAT[]"
    if array_type == "FLOAT[]":  # NaN is not equal to itself
        assert [repr(v) for v in literal] == [repr(v) for v in binary]
    else:
        assert literal == binary


async def test_a_nul_is_refused_as_data(pg_sessions: Sessions) -> None:
    from shared.db.errors import is_data_error

    async with pg_sessions() as session:
        with pytest.raises(Exception) as raised:
            await session.execute(
                text("SELECT CAST(CAST(:v AS TEXT) AS TEXT[])"), {"v": array_literal(["a\x00b"])}
            )
    assert is_data_error(raised.value)


def test_a_literal_without_escapes_is_the_json_text() -> None:
    assert array_literal(["a", None, 'b"c']) == '{"a",null,"b\\"c"}'
    assert array_literal([1, 2]) == "{1,2}"
    assert array_literal([]) == "{}"

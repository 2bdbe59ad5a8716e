"""Set-based writes on PostgreSQL: a whole batch as one statement per table.

The rows travel as one array per column (asyncpg sends each list as one binary parameter) and
``unnest`` turns them back into rows inside the database, so a batch costs one statement and
one round trip per table however many rows it has, where the row-per-row upsert cost an
execution (and its Python binding) per row. SQLite has no arrays: its writers keep an
``executemany``, at the driver's level (:mod:`services.scorer.driver`).

Strings are cast to ``text[]``, not to the column's ``varchar(n)[]``: a cast would cut an
over-long value silently, while the assignment to the column refuses it as a data error, as the
row-per-row insert did (so the consumer still dead-letters that one record). JSON values travel
as their text (``json.dumps``, the serialiser the engine uses) in ``text[]`` and the statement
casts them back.

Text form (``unnest(..., text_form=True)`` with :func:`text_form`): each column travels as ONE
text parameter, the array's literal (``{"a","b",NULL}``), encoded by msgspec's JSON encoder in
C and parsed by PostgreSQL's ``array_in``; the binary arrays cost asyncpg about 0.2 µs of Python
per element (two ``isinstance`` checks against ABCs per element, ``timestamptz`` 0.8 µs), the
literal about 0.03 µs, for a little more parsing in the database. JSON and array literals agree
on the quoted string, ``null``, numbers, ``true``/``false`` and the ``\\"`` and ``\\\\``
escapes; a column whose JSON holds anything else (another escape, a float that is not finite,
a value msgspec cannot encode) is written out element by element in Python, so the values are
always the ones the binary arrays carried.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any, Final

import msgspec
from sqlalchemy import JSON, Column, String, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

Columns = dict[str, list[Any]]
"""A batch as one list per column, all of one length."""

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def is_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def columns(names: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> Columns:
    """``rows`` (tuples in the order of ``names``) as one list per column."""
    lists = [list(c) for c in zip(*rows, strict=True)]
    return dict(zip(names, lists or [[] for _ in names], strict=True))


def keyed_columns(names: Sequence[str], keyed: Mapping[tuple[Any, ...], Any]) -> Columns:
    """The keys of ``keyed`` (tuples in the order of ``names``) as one list per column, in the
    mapping's order; add its values' columns to it. Transposes the key tuples as they are,
    where :func:`columns` of ``(*key, value)`` rows built a new tuple a row first."""
    if not keyed:
        return {name: [] for name in names}
    return dict(zip(names, map(list, zip(*keyed, strict=True)), strict=True))


def _array_type(column: Column[Any]) -> str:
    if isinstance(column.type, String | JSON):
        return "TEXT[]"
    return f"{column.type.compile(dialect=_DIALECT)}[]"


def unnest(
    table: Table, names: Sequence[str], *, ordinality: bool = False, text_form: bool = False
) -> str:
    """A ``FROM`` item of the rows of a :data:`Columns` batch (bound parameters named like the
    columns), as ``batch`` with those column names; with ``ordinality`` also ``batch.n``, the
    row's position (1, 2, ...), to insert in the batch's order. With ``text_form`` each
    parameter is the array's literal (bind :func:`text_form` of the batch)."""
    cast = "CAST(CAST(:{0} AS TEXT) AS {1})" if text_form else "CAST(:{0} AS {1})"
    arrays = ", ".join(cast.format(name, _array_type(table.c[name])) for name in names)
    aliases = ", ".join([*names, "n"] if ordinality else names)
    ordered = " WITH ORDINALITY" if ordinality else ""
    return f"unnest({arrays}){ordered} AS batch({aliases})"


_ENCODE: Final = msgspec.json.Encoder().encode
_OTHER_ESCAPE: Final = re.compile(rb'\\[^"\\]')
"""A JSON escape an array literal reads differently (all but ``\\"`` and ``\\\\``); it may also
match the second half of an escaped backslash, which only costs the slow path."""


def text_form(batch: Mapping[str, list[Any]]) -> dict[str, str]:
    """Each column of ``batch`` as the literal of its PostgreSQL array (for the parameters of
    ``unnest(..., text_form=True)``)."""
    return {name: array_literal(values) for name, values in batch.items()}


def array_literal(values: list[Any]) -> str:
    """``values`` (strings, numbers, booleans, dates, aware datetimes or None) as a PostgreSQL
    array literal, read by ``CAST(... AS type[])`` into the values asyncpg would have sent."""
    try:
        encoded = _ENCODE(values)
    except (msgspec.MsgspecError, ValueError, TypeError):
        return _slow_literal(values)
    if (b"\\" in encoded and _OTHER_ESCAPE.search(encoded)) or (
        # A float that is not finite is JSON null: more nulls than Nones.
        b"null" in encoded and encoded.count(b"null") != values.count(None)
    ):
        return _slow_literal(values)
    return "{" + encoded[1:-1].decode() + "}"


def _slow_literal(values: list[Any]) -> str:
    return "{" + ",".join(map(_element, values)) + "}"


def _element(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):  # datetimes too: ISO form, with the offset when aware
        return value.isoformat()
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f'"{value!r}"' if isinstance(value, float) else str(value)

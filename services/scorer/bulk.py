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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

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


def _array_type(column: Column[Any]) -> str:
    if isinstance(column.type, String | JSON):
        return "TEXT[]"
    return f"{column.type.compile(dialect=_DIALECT)}[]"


def unnest(table: Table, names: Sequence[str], *, ordinality: bool = False) -> str:
    """A ``FROM`` item of the rows of a :data:`Columns` batch (bound parameters named like the
    columns), as ``batch`` with those column names; with ``ordinality`` also ``batch.n``, the
    row's position (1, 2, ...), to insert in the batch's order."""
    arrays = ", ".join(f"CAST(:{name} AS {_array_type(table.c[name])})" for name in names)
    aliases = ", ".join([*names, "n"] if ordinality else names)
    ordered = " WITH ORDINALITY" if ordinality else ""
    return f"unnest({arrays}){ordered} AS batch({aliases})"

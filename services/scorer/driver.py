"""Driver-level writes on SQLite: a Core statement compiled once, its rows bound without Core.

SQLAlchemy's ``executemany`` runs each row through its bind processing (``UTCDateTime``'s UTC
handling, SQLite's date and datetime text formats): most of the scorer's CPU on ``tend up``.
:class:`DriverStatement` compiles the statement once per dialect, keeps the bind processors of
its parameters, and passes the rows to the driver's own ``executemany`` with each processor
applied once per distinct value (a batch has few distinct days and receipt times). The SQL and
the stored values are therefore the ones Core would produce: the same column types convert
them, so readers and other writers see the same text. The technique is the in-process bus's
(:mod:`shared.bus.memory`).

PostgreSQL does not use this: its writes are set-based (:mod:`services.scorer.bulk`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import chain
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

_Compiled = tuple[str, list[int], list[Callable[[Any], Any] | None]]
"""The SQL, each parameter's index in the row, and each parameter's bind processor."""


def _convert_column(convert: Callable[[Any], Any], values: Sequence[Any]) -> Sequence[Any]:
    """``convert`` applied to each of ``values``, once per distinct value (a batch has few
    distinct days and receipt times); a column holding an unhashable value (a JSON document)
    once per distinct object. ``None`` is converted too, as Core does (a JSON column stores
    it as ``'null'``)."""
    try:
        distinct = dict.fromkeys(values)
    except TypeError:
        # Unhashable values: once per distinct object instead (``values`` keeps each alive,
        # so no two share an id), as when a writer passes one ``{}`` for every row.
        by_id = {id(v): v for v in values}
        converted = {i: convert(v) for i, v in by_id.items()}
        return [converted[id(v)] for v in values]
    for v in distinct:
        distinct[v] = convert(v)
    return [distinct[v] for v in values]


class DriverStatement:
    """``statement`` run with rows given as tuples in the order of ``names``.

    ``same_as`` names parameters that take another name's value (a key repeated in a
    subquery). The statement must have no parameter other than those, nor a column with a
    Python-side default left out of ``names`` (Core would compute it per row): compiling
    refuses either with a ``ValueError``.
    """

    def __init__(
        self,
        statement: ClauseElement,
        names: Sequence[str],
        same_as: Mapping[str, str] | None = None,
    ) -> None:
        self.statement = statement
        self.names = tuple(names)
        self.same_as = dict(same_as or {})
        self._compiled: dict[type[Dialect], _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        known = self._compiled.get(type(dialect))
        if known is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=list(self.names))
            if (
                not isinstance(compiled, SQLCompiler)
                or dialect.paramstyle != "qmark"
                or compiled.positiontup is None
            ):
                raise NotImplementedError(f"no driver-level statements for {dialect.name}")
            where = [self.names.index(self.same_as.get(p, p)) for p in compiled.positiontup]
            processors: list[Callable[[Any], Any] | None] = [
                compiled.binds[p].type.dialect_impl(dialect).bind_processor(dialect)
                for p in compiled.positiontup
            ]
            known = self._compiled[type(dialect)] = (compiled.string, where, processors)
        return known

    def _rows(
        self, dialect: Dialect, rows: Iterable[Sequence[Any]]
    ) -> tuple[str, list[tuple[Any, ...]]]:
        sql, where, processors = self._compile(dialect)
        rows = rows if isinstance(rows, list) else list(rows)
        if not rows:
            return sql, []
        # Column by column: each column's values converted once per distinct value, by the
        # first processor among the parameters that take it (a repeated key converts once),
        # then the rows put back together with ``zip``.
        by_column: dict[int, Callable[[Any], Any]] = {}
        for i, p in zip(where, processors, strict=True):
            if p is not None and i not in by_column:
                by_column[i] = p
        values: list[Sequence[Any]] = list(zip(*rows, strict=True))
        for i, p in by_column.items():
            values[i] = _convert_column(p, values[i])
        return sql, list(zip(*(values[i] for i in where), strict=True))

    async def executemany(self, session: AsyncSession, rows: Iterable[Sequence[Any]]) -> None:
        """Run the statement once per row (the driver's ``executemany``), in ``session``'s
        transaction."""
        connection = await session.connection()
        sql, bound = self._rows(connection.dialect, rows)
        if bound:
            await connection.exec_driver_sql(sql, bound)

    async def returning(
        self, session: AsyncSession, rows: Sequence[Sequence[Any]], per_statement: int
    ) -> list[Any]:
        """For an ``INSERT ... VALUES (...) ... RETURNING x`` of plain parameters: insert
        ``rows`` as multi-row ``VALUES`` lists of at most ``per_statement`` rows (as Core's
        own "insertmanyvalues" does), and return the ``x`` of every row the statements
        returned."""
        connection = await session.connection()
        sql, bound = self._rows(connection.dialect, rows)
        head, values, tail = _values_group(sql)
        found: list[Any] = []
        for start in range(0, len(bound), per_statement):
            chunk = bound[start : start + per_statement]
            many = f"{head}{', '.join([values] * len(chunk))}{tail}"
            flat = tuple(chain.from_iterable(chunk))
            result = await connection.exec_driver_sql(many, flat)
            found.extend(result.scalars().all())
        return found


def _values_group(sql: str) -> tuple[str, str, str]:
    """``sql`` split around its one ``VALUES`` group of plain markers: (before, group, after)."""
    head, marker, rest = sql.partition(" VALUES (")
    inside, close, tail = rest.partition(")")
    if not marker or not close or set(inside) - set("?, "):
        raise ValueError(f"not a single-row INSERT of plain parameters: {sql}")
    return f"{head} VALUES ", f"({inside})", tail

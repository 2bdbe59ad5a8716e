"""Which database failures are the data's fault (retrying cannot help) and which are not.

A batch writer needs the difference: a record the database refuses for what it holds (a NUL in
a text column on PostgreSQL, a value out of range, a constraint it breaks) fails the same way on
every attempt, so it has to be set aside; a database that is down, read-only, out of
connections or slow may answer next time, so the batch is retried as it is.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc

DATA_SQLSTATE_CLASSES = frozenset({"22", "23"})
"""SQLSTATE classes that depend on the values written: 22 data exception (invalid byte
sequence, numeric out of range, invalid datetime...), 23 integrity constraint violation."""

DATA_SQLSTATES = frozenset({"54000"})
"""Single codes outside those classes that also depend only on the values: 54000 program limit
exceeded (e.g. an index row too large)."""


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        orig = getattr(e, "orig", None)
        todo.extend([orig if isinstance(orig, BaseException) else None, e.__cause__, e.__context__])


def _sqlstate(err: BaseException) -> str | None:
    for attr in ("sqlstate", "pgcode"):
        code = getattr(err, attr, None)
        if isinstance(code, str) and len(code) == 5:
            return code
    return None


def is_data_error(err: BaseException) -> bool:
    """True when ``err`` says the written values are at fault, so the same write fails again.

    PostgreSQL (asyncpg) errors are judged by SQLSTATE; SQLite has none, so its integrity and
    data errors count, while "database is locked" and other operational errors do not. Errors
    raised while binding values (asyncpg refusing a parameter, a number too large) count too.
    Connection loss, timeouts, permissions, read-only transactions and everything unknown are
    transient.
    """
    chain = list(_chain(err))
    for e in chain:
        if isinstance(e, OSError | TimeoutError):
            return False
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return False
        code = _sqlstate(e)
        if code is not None:
            return code[:2] in DATA_SQLSTATE_CLASSES or code in DATA_SQLSTATES
    for e in chain:
        if isinstance(e, sa_exc.IntegrityError | sa_exc.DataError):
            return True
        if isinstance(e, sqlite3.IntegrityError | sqlite3.DataError):
            return True
        if isinstance(e, ValueError | ArithmeticError) and not isinstance(
            e, sa_exc.SQLAlchemyError
        ):
            return True
    return False

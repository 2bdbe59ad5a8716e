"""Dialect-aware upserts (INSERT ... ON CONFLICT), the write every retryable step uses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement


def insert_for(session: AsyncSession, table: Table) -> Any:
    """``insert(table)`` from the session's dialect, so ``on_conflict_*`` is available."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {name!r}")


async def upsert(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    keys: Sequence[str],
    update: Mapping[str, ColumnElement[Any] | Any] | Sequence[str] | None = None,
) -> None:
    """Insert ``rows``; on a conflict on ``keys`` update ``update`` (or do nothing when None).

    ``update`` is either column names (take the incoming value) or a mapping of column to
    expression; ``excluded`` is reachable as ``insert_for(...).excluded`` for increments.
    """
    if not rows:
        return
    stmt = insert_for(session, table).values(list(rows))
    if update is None:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    else:
        if isinstance(update, Mapping):
            set_ = dict(update)
        else:
            set_ = {col: stmt.excluded[col] for col in update}
        stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=set_)
    await session.execute(stmt)

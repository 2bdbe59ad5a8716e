"""Stored backtest runs: ``tend backtest`` saves each run's figures, the console shows the
latest. The repository never commits (the caller's transaction does)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.backtest.report import Comparison
from shared.db.models import BacktestRun


@dataclass(frozen=True, slots=True)
class StoredRun:
    ran_at: datetime
    first: date
    last: date
    result: dict[str, Any]
    """:meth:`Comparison.to_dict`: ``current``, ``proposed`` (or None) and ``notes``."""


async def save_run(session: AsyncSession, comparison: Comparison, *, ran_at: datetime) -> None:
    session.add(
        BacktestRun(
            ran_at=ran_at,
            first_day=comparison.current.first,
            last_day=comparison.current.last,
            result=comparison.to_dict(),
        )
    )


async def latest_run(session: AsyncSession) -> StoredRun | None:
    row = (
        await session.execute(
            select(BacktestRun).order_by(BacktestRun.ran_at.desc(), BacktestRun.id.desc()).limit(1)
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    return StoredRun(row.ran_at, row.first_day, row.last_day, dict(row.result))

"""Health scores: an account's latest one, its history, and the series of many accounts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Account, HealthScore


async def latest_score(session: AsyncSession, account_id: str) -> HealthScore | None:
    """The account's score of its latest day (with components, metrics and what moved)."""
    return await session.scalar(
        select(HealthScore)
        .where(HealthScore.account_id == account_id)
        .order_by(HealthScore.as_of.desc())
        .limit(1)
    )


async def score_history(
    session: AsyncSession, account_id: str, start: date, end: date | None = None
) -> list[HealthScore]:
    """The account's daily scores from ``start`` to ``end`` (open: to the latest), oldest first."""
    stmt = select(HealthScore).where(
        HealthScore.account_id == account_id, HealthScore.as_of >= start
    )
    if end is not None:
        stmt = stmt.where(HealthScore.as_of <= end)
    return list(await session.scalars(stmt.order_by(HealthScore.as_of)))


async def score_points(
    session: AsyncSession, account_id: str, start: date
) -> list[tuple[date, float | None, str]]:
    """(day, score, band) of the account from ``start`` on, oldest first (a chart's points)."""
    found = await session.execute(
        select(HealthScore.as_of, HealthScore.score, HealthScore.band)
        .where(HealthScore.account_id == account_id, HealthScore.as_of >= start)
        .order_by(HealthScore.as_of)
    )
    return [(d, s, b) for d, s, b in found]


async def score_series(
    session: AsyncSession, account_ids: Select[tuple[str]], start: date
) -> Iterable[tuple[str, date, float | None]]:
    """(account, day, score) of many accounts from ``start`` on, by account then day: one
    query whatever the number of accounts (``account_ids`` is a subquery of ids)."""
    found = await session.execute(
        select(HealthScore.account_id, HealthScore.as_of, HealthScore.score)
        .where(HealthScore.account_id.in_(account_ids), HealthScore.as_of >= start)
        .order_by(HealthScore.account_id, HealthScore.as_of)
    )
    return [(a, d, s) for a, d, s in found]


async def current_metrics(
    session: AsyncSession, account_ids: Select[tuple[str]]
) -> dict[str, dict[str, Any]]:
    """The metrics of each account's current score (the row of its ``scored_as_of``)."""
    found = await session.execute(
        select(HealthScore.account_id, HealthScore.metrics)
        .join(
            Account,
            (Account.account_id == HealthScore.account_id)
            & (Account.scored_as_of == HealthScore.as_of),
        )
        .where(HealthScore.account_id.in_(account_ids))
    )
    return {a: m for a, m in found if isinstance(m, dict)}


async def scored_key_features(session: AsyncSession, account_id: str) -> list[str]:
    """The key features of the account's latest score: what the scorer was configured with,
    for callers that have no configuration of their own."""
    metrics = await session.scalar(
        select(HealthScore.metrics)
        .where(HealthScore.account_id == account_id)
        .order_by(HealthScore.as_of.desc())
        .limit(1)
    )
    features = (metrics or {}).get("features") or []
    return [f["feature"] for f in features if isinstance(f, dict) and "feature" in f]

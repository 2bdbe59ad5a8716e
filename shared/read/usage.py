"""Usage: an account's daily rollups, overall and per feature, and their totals over a period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import AccountDay, FeatureDay, FeatureUserDay, UserDay


async def account_days(
    session: AsyncSession, account_id: str, start: date, end: date
) -> list[AccountDay]:
    """The account's days with activity from ``start`` to ``end``, oldest first."""
    return list(
        await session.scalars(
            select(AccountDay)
            .where(AccountDay.account_id == account_id, AccountDay.day.between(start, end))
            .order_by(AccountDay.day)
        )
    )


async def feature_days(
    session: AsyncSession, account_id: str, start: date, end: date
) -> list[FeatureDay]:
    """The account's feature days from ``start`` to ``end``, by feature then day."""
    return list(
        await session.scalars(
            select(FeatureDay)
            .where(FeatureDay.account_id == account_id, FeatureDay.day.between(start, end))
            .order_by(FeatureDay.feature, FeatureDay.day)
        )
    )


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """An account's activity summed over a period of ``days`` days."""

    events: int = 0
    logins: int = 0
    active_days: int = 0
    """Days with at least one active user."""
    active_user_days: int = 0
    """Daily active users summed over the days (divide by ``days`` for the mean)."""
    users: int = 0
    """Distinct users active in the period."""
    days: int = 1


async def usage_totals(
    session: AsyncSession, account_id: str, start: date, end: date
) -> UsageTotals:
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(AccountDay.events), 0),
                func.coalesce(func.sum(AccountDay.logins), 0),
                func.count().filter(AccountDay.active_users > 0),
                func.coalesce(func.sum(AccountDay.active_users), 0),
            ).where(AccountDay.account_id == account_id, AccountDay.day.between(start, end))
        )
    ).one()
    users = await session.scalar(
        select(func.count(distinct(UserDay.user_id))).where(
            UserDay.account_id == account_id, UserDay.day.between(start, end)
        )
    )
    return UsageTotals(
        events=int(row[0]),
        logins=int(row[1]),
        active_days=int(row[2]),
        active_user_days=int(row[3]),
        users=int(users or 0),
        days=(end - start).days + 1,
    )


async def feature_totals(
    session: AsyncSession, account_id: str, start: date, end: date
) -> dict[str, tuple[int, int]]:
    """feature -> (uses, distinct users) in the period, for every feature used in it."""
    uses: dict[str, int] = dict(
        (
            await session.execute(
                select(FeatureDay.feature, func.sum(FeatureDay.uses))
                .where(FeatureDay.account_id == account_id, FeatureDay.day.between(start, end))
                .group_by(FeatureDay.feature)
            )
        ).all()
    )
    users: dict[str, int] = dict(
        (
            await session.execute(
                select(FeatureUserDay.feature, func.count(distinct(FeatureUserDay.user_id)))
                .where(
                    FeatureUserDay.account_id == account_id,
                    FeatureUserDay.day.between(start, end),
                )
                .group_by(FeatureUserDay.feature)
            )
        ).all()
    )
    return {f: (int(n or 0), int(users.get(f, 0))) for f, n in uses.items()}

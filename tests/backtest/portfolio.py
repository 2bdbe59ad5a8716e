"""A simulated portfolio with known outcomes for the backtest: daily rollups written straight
into the tables the scorer keeps (no events, no broker), profiles through the importer and
churn through the outcomes repository (the operator's path).

Each account follows one behaviour over ``start .. end``; the churning ones are cancelled on
a day the portfolio states, so a test knows every churn date and MRR. Deterministic (seeded).
Also used by ``bench/backtest.py``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.accounts_csv import AccountRow, import_accounts
from shared.db.models import AccountDay, FeatureDay, FeatureUserDay, UserDay
from shared.outcomes.model import CustomerOutcome
from shared.outcomes.repository import OutcomeRepository

KEY_FEATURES = ("reports", "dashboards", "exports")
BEHAVIOURS = ("steady", "declines", "goes_dormant", "surprise_churn", "renews")
"""steady: used all year. declines: usage falls to nothing over six weeks from ``change``,
cancelled 50 days after it. goes_dormant: stops dead on ``change``, cancelled 40 days later.
surprise_churn: used all year, cancelled on ``change`` (no sign to see). renews: used all
year, renewed on ``change``."""

_TABLES = {
    "account_days": cast(Table, AccountDay.__table__),
    "user_days": cast(Table, UserDay.__table__),
    "feature_days": cast(Table, FeatureDay.__table__),
    "feature_user_days": cast(Table, FeatureUserDay.__table__),
}


@dataclass(frozen=True, slots=True)
class SimAccount:
    account_id: str
    behaviour: str
    seats: int
    users: int
    mrr: float
    change: date
    """When the behaviour turns (see :data:`BEHAVIOURS`)."""

    @property
    def churn_on(self) -> date | None:
        days = {"declines": 50, "goes_dormant": 40, "surprise_churn": 0}.get(self.behaviour)
        return None if days is None else self.change + timedelta(days=days)

    def share_active(self, day: date) -> float:
        """The chance each user is active on ``day``."""
        base = 0.7
        if self.behaviour == "declines" and day >= self.change:
            return max(0.0, base * (1 - (day - self.change).days / 42))
        if self.behaviour == "goes_dormant" and day >= self.change:
            return 0.0
        return base


def create_portfolio(
    prefix: str, per_behaviour: int, start: date, end: date, *, seed: int = 12
) -> list[SimAccount]:
    rng = random.Random(seed)
    out = []
    span = (end - start).days
    for behaviour in BEHAVIOURS:
        for n in range(per_behaviour):
            users = rng.randint(4, 12)
            change = start + timedelta(days=rng.randint(span // 3, span - 120))
            out.append(
                SimAccount(
                    account_id=f"{prefix}{behaviour}-{n}",
                    behaviour=behaviour,
                    seats=users + rng.randint(0, 3),
                    users=users,
                    mrr=float(100 * rng.randint(2, 30)),
                    change=change,
                )
            )
    return out


def _rows(account: SimAccount, start: date, end: date, rng: random.Random) -> dict[str, list[Any]]:
    rows: dict[str, list[Any]] = {name: [] for name in _TABLES}
    last = min(end, account.churn_on or end)
    day = start
    while day <= last:
        share = account.share_active(day)
        active = [f"u{i:02d}" for i in range(account.users) if rng.random() < share]
        uses: dict[str, int] = {}
        for user in active:
            rows["user_days"].append(
                {
                    "account_id": account.account_id,
                    "user_id": user,
                    "day": day,
                    "events": 5,
                    "logins": 1,
                }
            )
            for feature in KEY_FEATURES:
                if rng.random() < 0.5:
                    uses[feature] = uses.get(feature, 0) + 1
                    rows["feature_user_days"].append(
                        {
                            "account_id": account.account_id,
                            "feature": feature,
                            "user_id": user,
                            "day": day,
                            "uses": 1,
                        }
                    )
        if active:
            rows["account_days"].append(
                {
                    "account_id": account.account_id,
                    "day": day,
                    "events": 5 * len(active),
                    "logins": len(active),
                    "active_users": len(active),
                }
            )
        for feature, n in uses.items():
            rows["feature_days"].append(
                {
                    "account_id": account.account_id,
                    "feature": feature,
                    "day": day,
                    "uses": n,
                    "users": n,
                }
            )
        day += timedelta(days=1)
    return rows


def outcomes_of(accounts: Sequence[SimAccount]) -> list[CustomerOutcome]:
    out = []
    for a in accounts:
        if a.churn_on is not None:
            out.append(
                CustomerOutcome(a.account_id, "cancellation", a.churn_on, reason="simulated")
            )
        elif a.behaviour == "renews":
            out.append(
                CustomerOutcome(
                    a.account_id,
                    "renewal",
                    a.change,
                    new_mrr=a.mrr,
                    new_term_end=a.change + timedelta(days=365),
                )
            )
    return out


async def write_portfolio(
    sessions: async_sessionmaker[AsyncSession],
    accounts: Sequence[SimAccount],
    start: date,
    end: date,
    *,
    seed: int = 12,
) -> None:
    """Profiles, a year of rollups and the outcomes of ``accounts``, one transaction each."""
    rng = random.Random(seed)
    async with sessions() as session, session.begin():
        await import_accounts(
            session,
            [
                AccountRow(
                    a.account_id,
                    {
                        "name": a.account_id,
                        "plan": "pro",
                        "seats": a.seats,
                        "mrr": a.mrr,
                        "created_at": start,
                        "renewal_date": start + timedelta(days=365),
                    },
                )
                for a in accounts
            ],
        )
    for a in accounts:
        rows = _rows(a, start, end, rng)
        async with sessions() as session, session.begin():
            for name, values in rows.items():
                if values:
                    await session.execute(insert(_TABLES[name]), values)
    async with sessions() as session, session.begin():
        await OutcomeRepository(session).record(outcomes_of(accounts), as_of=end)

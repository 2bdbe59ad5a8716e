"""The console's queries: a portfolio, one account, the open alerts.

Read-only, a fixed number of queries per page whatever the number of accounts. The numbers are
the ones the read API serves (``accounts`` for the current score, ``health_scores`` for history
and the explanation), so the console and ``/v1/accounts`` never disagree.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.lifecycle import ACTIVE
from shared.db.models import Account, Alert, HealthScore
from shared.redact import mask_url

SPARK_DAYS = 12 * 7
"""The sparkline covers the last 12 weeks of daily scores."""
TREND_DAYS = 7
"""The trend arrow compares the current score with the one this many days before."""
HISTORY_DAYS = 180
"""The account page's score chart."""
RENEWAL_WINDOWS = (30, 60, 90, 180)
BANDS = ("red", "yellow", "green", "new", "unknown")

SortKey = Literal[
    "score", "-score", "trend", "-trend", "mrr", "-mrr", "renewal", "-renewal", "name", "-name"
]
SORT_KEYS: tuple[str, ...] = (
    "score", "-score", "trend", "-trend", "mrr", "-mrr", "renewal", "-renewal", "name", "-name",
)  # fmt: skip
ACTIVE_STATUSES: tuple[str, ...] = tuple(sorted(ACTIVE))
SHOWN_STATUSES: tuple[str, ...] = (*ACTIVE_STATUSES, "resolved")
"""Alert rows the console lists (``none`` and ``pending`` are remembered conditions only)."""


@dataclass(frozen=True, slots=True)
class PortfolioFilter:
    csm: str | None = None
    band: str | None = None
    renewal_days: int | None = None
    sort: str = "score"


@dataclass(slots=True)
class PortfolioRow:
    account_id: str
    name: str | None
    score: float | None
    band: str | None
    scored_as_of: date | None
    mrr: float | None
    seats: int | None
    mau: int | None
    renewal_date: date | None
    csm: str | None
    open_alerts: int = 0
    regular_users: int | None = None
    score_before: float | None = None
    """The score :data:`TREND_DAYS` before ``scored_as_of`` (the latest one at or before)."""
    spark: list[tuple[date, float | None]] = field(default_factory=list)

    @property
    def trend(self) -> float | None:
        if self.score is None or self.score_before is None:
            return None
        return round(self.score - self.score_before, 1)

    @property
    def seats_used(self) -> int | None:
        """Seats used regularly (users active in most recent weeks), else seen in 28 days."""
        return self.regular_users if self.regular_users is not None else self.mau

    @property
    def seat_utilization(self) -> float | None:
        if self.seats_used is None or not self.seats:
            return None
        return self.seats_used / self.seats


@dataclass(slots=True)
class Portfolio:
    rows: list[PortfolioRow]
    mrr_by_band: dict[str, float]
    accounts_by_band: dict[str, int]
    csms: list[str]
    today: date

    @property
    def total_mrr(self) -> float:
        return sum(self.mrr_by_band.values())


def csm_label(csm_email: str | None, csm_slack: str | None) -> str | None:
    """Who the CSM is, as the console shows it: a webhook URL is a secret, so it is masked."""
    return csm_email or (mask_url(csm_slack) if csm_slack else None)


def _csm(a: Account) -> str | None:
    return csm_label(a.csm_email, a.csm_slack)


def _account_filter(stmt: Select[Any], f: PortfolioFilter, today: date) -> Select[Any]:
    if f.csm:
        stmt = stmt.where((Account.csm_email == f.csm) | (Account.csm_slack == f.csm))
    if f.band:
        stmt = stmt.where(Account.band == f.band)
    if f.renewal_days is not None:
        stmt = stmt.where(
            Account.renewal_date >= today,
            Account.renewal_date <= today + timedelta(days=f.renewal_days),
        )
    return stmt


def _nulls_last(value: Any, descending: bool) -> tuple[int, Any]:
    if value is None:
        return (1, 0)
    if descending and isinstance(value, int | float):
        return (0, -value)
    return (0, value)


def sort_rows(rows: list[PortfolioRow], sort: str) -> list[PortfolioRow]:
    """Sorted like the read API: by the key (nulls last), then by account id."""
    descending = sort.startswith("-")
    key = sort.lstrip("-")

    def value(r: PortfolioRow) -> Any:
        if key == "score":
            return r.score
        if key == "trend":
            return r.trend
        if key == "mrr":
            return r.mrr
        if key == "renewal":
            return r.renewal_date
        return r.name

    ordered = sorted(rows, key=lambda r: r.account_id)
    present = [r for r in ordered if value(r) is not None]
    missing = [r for r in ordered if value(r) is None]
    # A stable sort on the key alone keeps account-id order among ties, in both directions.
    present.sort(key=value, reverse=descending)
    return present + missing


async def csm_names(session: AsyncSession) -> list[str]:
    found = await session.scalars(
        select(func.coalesce(Account.csm_email, Account.csm_slack))
        .where(func.coalesce(Account.csm_email, Account.csm_slack).is_not(None))
        .distinct()
    )
    # A webhook URL names no one and is a secret: not offered as a CSM to filter by.
    return sorted(c for c in found if c and "://" not in c)


async def portfolio(session: AsyncSession, f: PortfolioFilter, today: date) -> Portfolio:
    """Every account matching ``f`` with its score, trend, sparkline and open alerts."""
    accounts = list(await session.scalars(_account_filter(select(Account), f, today)))
    ids = select(Account.account_id)
    ids = _account_filter(ids, f, today)
    rows = {
        a.account_id: PortfolioRow(
            account_id=a.account_id,
            name=a.name,
            score=a.score,
            band=a.band,
            scored_as_of=a.scored_as_of,
            mrr=a.mrr,
            seats=a.seats,
            mau=None,
            renewal_date=a.renewal_date,
            csm=_csm(a),
        )
        for a in accounts
    }
    anchors = [a.scored_as_of for a in accounts if a.scored_as_of is not None]
    if anchors:
        since = min(anchors) - timedelta(days=SPARK_DAYS - 1)
        history = await session.execute(
            select(HealthScore.account_id, HealthScore.as_of, HealthScore.score)
            .where(HealthScore.account_id.in_(ids), HealthScore.as_of >= since)
            .order_by(HealthScore.account_id, HealthScore.as_of)
        )
        for account_id, as_of, score in history:
            row = rows.get(account_id)
            if row is None or row.scored_as_of is None or as_of > row.scored_as_of:
                continue
            if as_of > row.scored_as_of - timedelta(days=SPARK_DAYS):
                row.spark.append((as_of, score))
            if as_of <= row.scored_as_of - timedelta(days=TREND_DAYS):
                row.score_before = score  # ascending: the last one seen is the latest
        latest = await session.execute(
            select(HealthScore.account_id, HealthScore.metrics)
            .join(
                Account,
                (Account.account_id == HealthScore.account_id)
                & (Account.scored_as_of == HealthScore.as_of),
            )
            .where(HealthScore.account_id.in_(ids))
        )
        for account_id, metrics in latest:
            if account_id in rows and isinstance(metrics, dict):
                mau = metrics.get("mau")
                rows[account_id].mau = int(mau) if isinstance(mau, int | float) else None
                regular = metrics.get("regular_users")
                rows[account_id].regular_users = (
                    int(regular) if isinstance(regular, int | float) else None
                )
    counts = await session.execute(
        select(Alert.account_id, func.count())
        .where(Alert.account_id.in_(ids), Alert.status.in_(ACTIVE_STATUSES))
        .group_by(Alert.account_id)
    )
    for account_id, n in counts:
        if account_id in rows:
            rows[account_id].open_alerts = int(n)

    mrr_by_band: dict[str, float] = defaultdict(float)
    accounts_by_band: dict[str, int] = defaultdict(int)
    for r in rows.values():
        band = r.band or "unknown"
        mrr_by_band[band] += r.mrr or 0.0
        accounts_by_band[band] += 1
    return Portfolio(
        rows=sort_rows(list(rows.values()), f.sort),
        mrr_by_band=dict(mrr_by_band),
        accounts_by_band=dict(accounts_by_band),
        csms=await csm_names(session),
        today=today,
    )


@dataclass(slots=True)
class AccountPage:
    account: Account
    latest: HealthScore | None
    history: list[tuple[date, float | None, str]]
    alerts: list[Alert]

    @property
    def metrics(self) -> dict[str, Any]:
        m = self.latest.metrics if self.latest is not None else None
        return m if isinstance(m, dict) else {}


async def account_page(session: AsyncSession, account_id: str) -> AccountPage | None:
    account = await session.get(Account, account_id)
    if account is None:
        return None
    latest = await session.scalar(
        select(HealthScore)
        .where(HealthScore.account_id == account_id)
        .order_by(HealthScore.as_of.desc())
        .limit(1)
    )
    history: list[tuple[date, float | None, str]] = []
    if latest is not None:
        since = latest.as_of - timedelta(days=HISTORY_DAYS - 1)
        found = await session.execute(
            select(HealthScore.as_of, HealthScore.score, HealthScore.band)
            .where(HealthScore.account_id == account_id, HealthScore.as_of >= since)
            .order_by(HealthScore.as_of)
        )
        history = [(d, s, b) for d, s, b in found]
    alerts = await session.scalars(
        select(Alert)
        .where(Alert.account_id == account_id, Alert.status.in_(SHOWN_STATUSES))
        .order_by(Alert.updated_at.desc(), Alert.id.desc())
    )
    return AccountPage(account, latest, history, list(alerts))


async def open_alerts(session: AsyncSession, csm: str | None) -> dict[str, list[Alert]]:
    """Active alerts by rule (rules with the most first), most severe then richest first."""
    stmt = select(Alert).where(Alert.status.in_(ACTIVE_STATUSES))
    if csm:
        stmt = stmt.where((Alert.csm_email == csm) | (Alert.csm_slack == csm))
    rows = list(await session.scalars(stmt.order_by(Alert.id)))
    severity = {"critical": 0, "warning": 1, "info": 2, "opportunity": 3}
    rows.sort(key=lambda a: (severity.get(a.severity, 5), -(a.mrr or 0.0), a.account_id))
    grouped: dict[str, list[Alert]] = defaultdict(list)
    for a in rows:
        grouped[a.rule].append(a)
    return dict(sorted(grouped.items(), key=lambda kv: (-len(kv[1]), kv[0])))


async def current_health(
    session: AsyncSession, account_ids: list[str]
) -> dict[str, tuple[float | None, str | None]]:
    """Each account's current score and band (an alert row keeps the ones it was decided on)."""
    if not account_ids:
        return {}
    found = await session.execute(
        select(Account.account_id, Account.score, Account.band).where(
            Account.account_id.in_(sorted(set(account_ids)))
        )
    )
    return {a: (s, b) for a, s, b in found}

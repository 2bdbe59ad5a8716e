"""The console's view models: a portfolio, one account, the open alerts.

Read through the read models (:mod:`shared.read`), the same queries the read API and the
reports use, so the console and ``/v1/accounts`` never disagree; a fixed number of queries per
page whatever the number of accounts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from shared.alerting.cancellation import load_cancellations
from shared.db.models import Account, Alert, AlertNotification, HealthScore
from shared.outcomes.model import STAGES, OutcomesPolicy, Stage
from shared.outcomes.stages import current_stages
from shared.read import accounts, alerts, scores
from shared.read.accounts import AccountFilter
from shared.read.alerts import SHOWN_STATUSES
from shared.read.events import LastEvent, last_events
from shared.redact import mask_url

SPARK_DAYS = 12 * 7
"""The sparkline covers the last 12 weeks of daily scores."""
TREND_DAYS = 7
"""The trend arrow compares the current score with the one this many days before."""
HISTORY_DAYS = 180
"""The account page's score chart."""
LAST_EVENTS_SHOWN = 20
"""The account page's "Last events" section (the API gives up to 50)."""
RENEWAL_WINDOWS = (30, 60, 90, 180)
BANDS = ("red", "yellow", "green", "new", "unknown")

SortKey = Literal[
    "score", "-score", "trend", "-trend", "mrr", "-mrr", "renewal", "-renewal", "name", "-name"
]
SORT_KEYS: tuple[str, ...] = (
    "score", "-score", "trend", "-trend", "mrr", "-mrr", "renewal", "-renewal", "name", "-name",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PortfolioFilter:
    csm: str | None = None
    band: str | None = None
    renewal_days: int | None = None
    stage: str | None = None
    """A lifecycle stage (:data:`STAGES`): only the accounts in it today."""
    sort: str = "score"
    book: str | None = None
    """The signed-in CSM's book (their email), None: every account (``shared.people``)."""


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
    """Who the CSM is, as accounts name them (email, Slack handle, a masked webhook)."""
    open_alerts: int = 0
    csm_name: str | None = None
    """The CSM's name where one is known (shown instead of ``csm``)."""
    stage: Stage | None = None
    """The lifecycle stage today (derived from the profile and outcomes)."""
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
    csm_names: dict[str, str] = field(default_factory=dict)
    """CSM names by the contact accounts name them with."""

    @property
    def total_mrr(self) -> float:
        return sum(self.mrr_by_band.values())


def csm_label(csm_email: str | None, csm_slack: str | None) -> str | None:
    """Who the CSM is, as the console shows it: a webhook URL is a secret, so it is masked."""
    return csm_email or (mask_url(csm_slack) if csm_slack else None)


def _csm(a: Account) -> str | None:
    return csm_label(a.csm_email, a.csm_slack)


def account_filter(f: PortfolioFilter, today: date) -> AccountFilter:
    """The read layer's filter for a portfolio filter (its lifecycle stage aside)."""
    window = f.renewal_days is not None
    return AccountFilter(
        book=f.book,
        csm=f.csm,
        band=f.band,
        renewal_from=today if window else None,
        renewal_to=today + timedelta(days=f.renewal_days or 0) if window else None,
    )


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


async def csm_names(session: AsyncSession, book: str | None = None) -> list[str]:
    """The CSMs to filter by (a CSM limited to their book: only themselves)."""
    return [book] if book is not None else await accounts.csm_names(session)


async def portfolio(
    session: AsyncSession, f: PortfolioFilter, today: date, policy: OutcomesPolicy | None = None
) -> Portfolio:
    """Every account matching ``f`` with its score, trend, sparkline, open alerts and
    lifecycle stage (``policy``: the configured stage windows)."""
    where = account_filter(f, today)
    if f.stage in STAGES:
        found_stages = await current_stages(session, None, today, policy)
        in_stage = tuple(sorted(a for a, s in found_stages.items() if s == f.stage))
        where = replace(where, account_ids=in_stage)
    found = await accounts.find_accounts(session, where)
    ids = where.ids()
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
        for a in found
    }
    anchors = [a.scored_as_of for a in found if a.scored_as_of is not None]
    if anchors:
        since = min(anchors) - timedelta(days=SPARK_DAYS - 1)
        for account_id, as_of, score in await scores.score_series(session, ids, since):
            row = rows.get(account_id)
            if row is None or row.scored_as_of is None or as_of > row.scored_as_of:
                continue
            if as_of > row.scored_as_of - timedelta(days=SPARK_DAYS):
                row.spark.append((as_of, score))
            if as_of <= row.scored_as_of - timedelta(days=TREND_DAYS):
                row.score_before = score  # ascending: the last one seen is the latest
        for account_id, metrics in (await scores.current_metrics(session, ids)).items():
            if account_id in rows:
                mau = metrics.get("mau")
                rows[account_id].mau = int(mau) if isinstance(mau, int | float) else None
                regular = metrics.get("regular_users")
                rows[account_id].regular_users = (
                    int(regular) if isinstance(regular, int | float) else None
                )
    names = await accounts.csm_display_names(session)
    for r in rows.values():
        r.csm_name = names.get(r.csm) if r.csm else None
    for account_id, n in (await alerts.active_counts(session, ids)).items():
        if account_id in rows:
            rows[account_id].open_alerts = n
    for account_id, stage in (await current_stages(session, list(rows), today, policy)).items():
        if account_id in rows:
            rows[account_id].stage = stage

    mrr_by_band: dict[str, float] = defaultdict(float)
    accounts_by_band: dict[str, int] = defaultdict(int)
    # A cancelled account is listed, but no longer at risk: it leaves the totals.
    cancelled = set((await load_cancellations(session, list(rows))).cancelled_on(today))
    for r in rows.values():
        if r.account_id in cancelled:
            continue
        band = r.band or "unknown"
        mrr_by_band[band] += r.mrr or 0.0
        accounts_by_band[band] += 1
    return Portfolio(
        rows=sort_rows(list(rows.values()), f.sort),
        mrr_by_band=dict(mrr_by_band),
        accounts_by_band=dict(accounts_by_band),
        csms=await csm_names(session, f.book),
        today=today,
        csm_names=names,
    )


@dataclass(slots=True)
class AccountPage:
    account: Account
    latest: HealthScore | None
    history: list[tuple[date, float | None, str]]
    alerts: list[Alert]
    people: dict[str, str] = field(default_factory=dict)
    """Names of the account's champion and most active user by user id, where known."""
    csm_name: str | None = None
    events: list[LastEvent] = field(default_factory=list)
    """The last events counted for the account, newest first."""
    sent: dict[int, list[AlertNotification]] = field(default_factory=dict)
    """Each alert -> the notifications that spoke of it (where each went, or why not)."""

    @property
    def metrics(self) -> dict[str, Any]:
        m = self.latest.metrics if self.latest is not None else None
        return m if isinstance(m, dict) else {}


async def account_page(session: AsyncSession, account_id: str) -> AccountPage | None:
    account = await accounts.get_account(session, account_id)
    if account is None:
        return None
    latest = await scores.latest_score(session, account_id)
    history: list[tuple[date, float | None, str]] = []
    if latest is not None:
        since = latest.as_of - timedelta(days=HISTORY_DAYS - 1)
        history = await scores.score_points(session, account_id, since)
    shown = await alerts.account_alerts(session, account_id, SHOWN_STATUSES)
    metrics = latest.metrics if latest is not None and isinstance(latest.metrics, dict) else {}
    people = await _people(session, {account_id: metrics})
    csm = csm_label(account.csm_email, account.csm_slack)
    csm_name = (await accounts.csm_display_names(session)).get(csm) if csm else None
    events = await last_events(session, account_id, limit=LAST_EVENTS_SHOWN)
    sent = await alerts.account_deliveries(session, account_id)
    return AccountPage(
        account,
        latest,
        history,
        shown,
        people.get(account_id, {}),
        csm_name=csm_name,
        events=events,
        sent=sent,
    )


_PEOPLE_KEYS = ("champion", "top_user")
"""The users an account's alerts speak of (metrics keys holding a user id)."""


async def _people(
    session: AsyncSession, metrics: dict[str, dict[str, Any]]
) -> dict[str, dict[str, str]]:
    """Per account, the names of the users its alert texts name, by user id."""
    wanted = [
        (account_id, m[k])
        for account_id, m in metrics.items()
        for k in _PEOPLE_KEYS
        if isinstance(m.get(k), str) and m[k]
    ]
    names: dict[str, dict[str, str]] = defaultdict(dict)
    for (account_id, user_id), name in (await accounts.user_names(session, wanted)).items():
        if name != user_id:
            names[account_id][user_id] = name
    return dict(names)


SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2, "opportunity": 3}


@dataclass(frozen=True, slots=True)
class AlertsFilter:
    """Which open alerts: of a CSM, of a severity, of a rule (None: any)."""

    csm: str | None = None
    severity: str | None = None
    rule: str | None = None
    book: str | None = None
    """The signed-in CSM's book (their email); None: every account (``shared.people``)."""


@dataclass(slots=True)
class OpenAlerts:
    """The open alerts a filter keeps, most severe then most revenue at risk first, with what
    the page needs around them."""

    alerts: list[Alert]
    rules: list[str]
    """Every rule with an open alert of the CSM, and the one filtered by (the rule filter's
    choices)."""
    people: dict[str, dict[str, str]]
    """Per account, user names by id (for the alert texts)."""
    health: dict[str, tuple[float | None, str | None]]
    csm_names: dict[str, str]


def alert_order(a: Alert) -> tuple[int, float, str, str]:
    """Most severe first, then most revenue at risk (MRR), then by account and rule."""
    return (SEVERITY_RANK.get(a.severity, 5), -(a.mrr or 0.0), a.account_id, a.rule)


async def open_alerts(session: AsyncSession, f: AlertsFilter) -> OpenAlerts:
    rows = await alerts.active_alerts(session, f.csm, f.book)
    rules = sorted({a.rule for a in rows} | ({f.rule} if f.rule else set()))
    kept = [
        a
        for a in rows
        if (f.severity is None or a.severity == f.severity) and (f.rule is None or a.rule == f.rule)
    ]
    kept.sort(key=alert_order)
    ids = sorted({a.account_id for a in kept})
    metrics = await scores.current_metrics(session, AccountFilter(account_ids=tuple(ids)).ids())
    return OpenAlerts(
        alerts=kept,
        rules=rules,
        people=await _people(session, metrics),
        health=await current_health(session, ids),
        csm_names=await accounts.csm_display_names(session),
    )


async def current_health(
    session: AsyncSession, account_ids: Sequence[str]
) -> dict[str, tuple[float | None, str | None]]:
    """Each account's current score and band (an alert row keeps the ones it was decided on)."""
    return await accounts.current_health(session, account_ids)

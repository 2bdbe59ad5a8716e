"""The monthly value report of one account (its data): the proof a customer's champion shows
their CFO.

What it says, for one calendar month (UTC days) and compared with the month before: active users
and seat utilization, logins and activity, each key feature's uses and users (and the other
features used), the health trend (the daily scores), and a few plain sentences on what changed.

Three parts: :func:`build_report` (here) reads the rollups and scores through the read models
(:mod:`shared.read`; no commit) into a :class:`MonthlyReport`;
:func:`services.web.reports.render.render_html` turns it into a printable page;
:mod:`services.web.reports.send` delivers it to the customer's contacts with the CSM in copy
(``tend report --send``, and the monthly schedule of :mod:`services.web.reports.schedule`) or
to the CSM alone (``tend report --email``).

It speaks the customer's language: features by the names the feature catalog gives them
(``label``), their adoption in words, and the time they saved where the catalog declares
``minutes_saved_per_use``. A month the account was silent claims no feature "in use".

Seat utilization uses the account's current seats: traits have no history.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from services.web.reports.highlights import highlights
from shared import format as fmt
from shared.config import TendConfig
from shared.db.models import Account, HealthScore
from shared.outcomes.lifecycle import is_cancelled
from shared.outcomes.model import account_start, in_day_order
from shared.outcomes.repository import OutcomeRepository
from shared.read.scores import score_history, scored_key_features
from shared.read.usage import feature_totals, usage_totals

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class MonthError(ValueError):
    """A ``month`` that is not YYYY-MM, or has not started yet; the message names the field."""


def parse_month(text: str, today: date) -> date:
    """The first day of ``YYYY-MM``; refuses months that have not started by ``today``."""
    m = _MONTH.match(text.strip())
    if m is None or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1970:
        raise MonthError(f"month: {text[:20]!r} is not a month (YYYY-MM, e.g. 2026-10)")
    first = date(int(m.group(1)), int(m.group(2)), 1)
    if first > today:
        raise MonthError(f"month: {text} has not started yet")
    return first


def last_month(today: date) -> date:
    """The first day of the month before ``today``'s: the last complete month."""
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)


def month_end(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


# -- the model ----------------------------------------------------------------------------------


class Delta(BaseModel):
    """A number this month and the month before."""

    value: float | None
    previous: float | None
    change: float | None = Field(description="value - previous; None when either is missing.")
    change_pct: float | None = Field(description="Relative change in percent; None from zero.")

    @classmethod
    def of(cls, value: float | None, previous: float | None, digits: int = 3) -> Delta:
        change = pct = None
        if value is not None and previous is not None:
            change = round(value - previous, digits)
            pct = round(100.0 * (value - previous) / previous, 1) if previous else None
        return cls(
            value=None if value is None else round(value, digits),
            previous=None if previous is None else round(previous, digits),
            change=change,
            change_pct=pct,
        )


FeatureStatus = Literal["adopted", "new", "dropped", "growing", "shrinking", "steady", "unused"]


STATUS_WORDS: Mapping[FeatureStatus, str] = {
    "adopted": "In use",
    "new": "Started this month",
    "dropped": "Not used this month",
    "growing": "Used more",
    "shrinking": "Used less",
    "steady": "Steady",
    "unused": "Not adopted yet",
}
"""Each status as the customer reads it."""


class FeatureAdoption(BaseModel):
    feature: str
    label: str = Field(
        "", description="The feature in the customer's words: the catalog's label, else its key."
    )
    key: bool = Field(description="One of the configured key features.")
    uses: int
    users: int = Field(description="Distinct users of the feature in the month.")
    previous_uses: int
    previous_users: int
    status: FeatureStatus = Field(
        description="new (first used this month after none last month), dropped (none this month "
        "after some), growing / shrinking (uses +-10% or more), steady, unused (neither month)."
    )
    change_pct: float | None = Field(None, description="Uses against the month before, in %.")
    minutes_saved: float | None = Field(
        None, description="uses x the catalog's minutes_saved_per_use; None where it declares none."
    )

    @model_validator(mode="after")
    def _a_label(self) -> FeatureAdoption:
        if not self.label:
            self.label = fmt.label(self.feature)
        return self


class HealthPoint(BaseModel):
    as_of: date
    score: float | None
    band: str


class HealthTrend(BaseModel):
    start: HealthPoint | None = Field(description="The first score of the month.")
    end: HealthPoint | None = Field(description="The last score of the month.")
    previous_month_end: HealthPoint | None
    change: float | None = Field(description="end - previous_month_end (else end - start).")
    low: float | None
    high: float | None
    days_by_band: dict[str, int]
    history: list[HealthPoint]


class ReportAccount(BaseModel):
    account_id: str
    name: str | None
    plan: str | None
    seats: int | None
    mrr: float | None
    renewal_date: date | None
    csm_email: str | None
    csm_name: str | None
    customer_emails: list[str] = Field(
        default_factory=list, description="The customer's contacts, who receive the report."
    )


class MonthlyReport(BaseModel):
    account: ReportAccount
    month: str = Field(description="YYYY-MM")
    period_start: date
    period_end: date = Field(description="The month's last day, or today while it runs.")
    complete: bool = Field(description="False while the month is still running.")
    previous_month: str
    active_users: Delta = Field(description="Distinct users active in the month.")
    seat_utilization: Delta = Field(description="Active users / seats (current seats).")
    logins: Delta
    events: Delta
    active_days: Delta = Field(description="Days with any activity.")
    mean_daily_active_users: Delta
    key_features_used: Delta
    key_features_total: int
    silent: bool = Field(False, description="No activity at all in the month.")
    minutes_saved: Delta = Field(
        default_factory=lambda: Delta.of(None, None),
        description="Minutes saved by the features whose catalog entry declares "
        "minutes_saved_per_use; None when none does.",
    )
    features: list[FeatureAdoption]
    health: HealthTrend
    highlights: list[str] = Field(description="What changed from the month before, in words.")


def _status(uses: int, previous: int) -> FeatureStatus:
    if uses == 0:
        return "dropped" if previous else "unused"
    if previous == 0:
        return "new"
    if uses >= previous * 1.1:
        return "growing"
    if uses <= previous * 0.9:
        return "shrinking"
    return "steady"


def _point(h: HealthScore) -> HealthPoint:
    return HealthPoint(as_of=h.as_of, score=h.score, band=h.band)


def key_features_of(config: TendConfig | None) -> list[str] | None:
    """The configured key features; None without a configuration or with none named (the
    report then uses those the scorer scored the account with)."""
    return list(config.key_features) if config is not None and config.key_features else None


async def existed_in(session: AsyncSession, account: Account, first: date, end: date) -> bool:
    """Whether ``account`` was a customer in the month ``first``..``end``: it had started by
    ``end`` (contract start, first event, or an outcome) and was not cancelled all through."""
    outcomes = in_day_order(await OutcomeRepository(session).outcomes(account.account_id))
    start = account_start(account.created_at, account.first_seen, outcomes)
    if start is None or start > end:
        return False
    return not (is_cancelled(outcomes, first - timedelta(days=1)) and is_cancelled(outcomes, end))


def _pct(value: int, previous: int) -> float | None:
    return round(100.0 * (value - previous) / previous, 1) if previous else None


async def build_report(
    session: AsyncSession,
    account: Account,
    first: date,
    today: date,
    key_features: Sequence[str] | None = None,
    config: TendConfig | None = None,
) -> MonthlyReport:
    """The report of ``account`` for the month starting ``first``. ``key_features`` None: those
    of the account's latest score (:func:`scored_key_features`). ``config`` gives the features
    their labels and minutes saved per use (its feature catalog)."""
    labels = config.feature_labels() if config is not None else {}
    per_use = config.minutes_saved() if config is not None else {}
    aid = account.account_id
    end = min(month_end(first), today)
    prev_first = last_month(first)
    prev_end = month_end(prev_first)
    keys = (
        list(dict.fromkeys(key_features))
        if key_features is not None
        else await scored_key_features(session, aid)
    )

    now, before = (
        await usage_totals(session, aid, first, end),
        await usage_totals(session, aid, prev_first, prev_end),
    )
    f_now = await feature_totals(session, aid, first, end)
    f_before = await feature_totals(session, aid, prev_first, prev_end)
    others = sorted((f_now.keys() | f_before.keys()) - set(keys))
    features = []
    for name in [*keys, *others]:
        uses, users = f_now.get(name, (0, 0))
        p_uses, p_users = f_before.get(name, (0, 0))
        minutes = per_use.get(name)
        features.append(
            FeatureAdoption(
                feature=name,
                label=labels.get(name) or fmt.label(name),
                key=name in keys,
                uses=uses,
                users=users,
                previous_uses=p_uses,
                previous_users=p_users,
                status=_status(uses, p_uses),
                change_pct=_pct(uses, p_uses),
                minutes_saved=None if minutes is None else uses * minutes,
            )
        )
    saved = [f for f in features if f.minutes_saved is not None]
    saved_before = sum(f.previous_uses * per_use[f.feature] for f in saved)
    key_used = sum(1 for f in features if f.key and f.uses)
    key_used_before = sum(1 for f in features if f.key and f.previous_uses)

    scores = await score_history(session, aid, prev_first, end)
    history = [_point(h) for h in scores if h.as_of >= first]
    previous_end = next((_point(h) for h in reversed(scores) if h.as_of < first), None)
    start_p = history[0] if history else None
    end_p = history[-1] if history else None
    base = previous_end or start_p
    values = [p.score for p in history if p.score is not None]
    by_band: dict[str, int] = {}
    for p in history:
        by_band[p.band] = by_band.get(p.band, 0) + 1
    health = HealthTrend(
        start=start_p,
        end=end_p,
        previous_month_end=previous_end,
        change=(
            round(end_p.score - base.score, 1)
            if end_p and base and end_p.score is not None and base.score is not None
            else None
        ),
        low=min(values) if values else None,
        high=max(values) if values else None,
        days_by_band=by_band,
        history=history,
    )

    seats = account.seats if account.seats and account.seats > 0 else None
    traits = account.traits or {}
    csm_name = traits.get("csm_name")
    report = MonthlyReport(
        account=ReportAccount(
            account_id=aid,
            name=account.name,
            plan=account.plan,
            seats=account.seats,
            mrr=account.mrr,
            renewal_date=account.renewal_date,
            csm_email=account.csm_email,
            csm_name=csm_name if isinstance(csm_name, str) else None,
            customer_emails=list(account.customer_emails or []),
        ),
        month=first.strftime("%Y-%m"),
        period_start=first,
        period_end=end,
        complete=month_end(first) < today,
        previous_month=prev_first.strftime("%Y-%m"),
        active_users=Delta.of(now.users, before.users),
        seat_utilization=Delta.of(
            now.users / seats if seats else None, before.users / seats if seats else None
        ),
        logins=Delta.of(now.logins, before.logins),
        events=Delta.of(now.events, before.events),
        active_days=Delta.of(now.active_days, before.active_days),
        mean_daily_active_users=Delta.of(
            now.active_user_days / now.days, before.active_user_days / before.days, 1
        ),
        key_features_used=Delta.of(key_used, key_used_before),
        key_features_total=len(keys),
        silent=now.events == 0 and now.users == 0 and not any(f.uses for f in features),
        minutes_saved=(
            Delta.of(sum(f.minutes_saved or 0 for f in saved), saved_before, 1)
            if saved
            else Delta.of(None, None)
        ),
        features=features,
        health=health,
        highlights=[],
    )
    report.highlights = highlights(report)
    return report

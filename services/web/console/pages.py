"""What the console's templates show, computed from what :mod:`views` read: option lists, chart
geometry, the account page's facts and tables. Pure functions of their arguments (no I/O, no
clock); the markup is in ``services/web/templates/console/``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from services.web.charts import Bands, BarChart, bar_chart, line_chart, sparkline
from services.web.console.views import AccountPage, Portfolio
from shared import format as fmt
from shared.db.models import Alert
from shared.outcomes.model import STAGES

AT_RISK = ("red", "yellow")
NOTICES = {
    "acknowledged": "Alert acknowledged: no more reminders for it.",
    "snoozed": "Alert snoozed.",
    "resolved": "Alert resolved.",
    "conflict": "That alert cannot make that move in its current state (refresh to see it).",
    "bad-until": "Snooze needs a time in the future (YYYY-MM-DD HH:MM, UTC).",
    "not-found": "That alert no longer exists.",
}
SORT_OPTIONS = [
    ("score", "Score, lowest first"),
    ("-score", "Score, highest first"),
    ("trend", "Biggest drop first"),
    ("-mrr", "MRR, highest first"),
    ("renewal", "Renewal, soonest first"),
    ("name", "Name"),
]
SNOOZE_DAYS = 7
"""A snooze form proposes a week from now."""
_LOCAL_MINUTE = "%Y-%m-%dT%H:%M"


@dataclass(frozen=True, slots=True)
class Moves:
    """What every alert form of a page carries: the CSRF token, the page to come back to, and the
    snooze field's default and minimum (``datetime-local`` values, UTC)."""

    csrf: str
    back: str
    until_default: str
    until_min: str

    @classmethod
    def of(cls, csrf: str, back: str, now: datetime) -> Moves:
        return cls(
            csrf,
            back,
            (now + timedelta(days=SNOOZE_DAYS)).strftime(_LOCAL_MINUTE),
            now.strftime(_LOCAL_MINUTE),
        )


def csm_options(csms: Sequence[str]) -> list[tuple[str, str]]:
    return [("", "All CSMs"), *((c, c) for c in csms)]


def portfolio_context(
    portfolio: Portfolio, bands: Sequence[str], windows: Sequence[int]
) -> dict[str, Any]:
    """``bands`` and ``windows``: the filter's choices of band and renewal window (days)."""
    return {
        "portfolio": portfolio,
        "bands": bands,
        "at_risk": sum(portfolio.mrr_by_band.get(b, 0.0) for b in AT_RISK),
        "sparklines": {r.account_id: sparkline(r.spark) for r in portfolio.rows},
        "csm_options": csm_options(portfolio.csms),
        "band_options": [("", "All bands"), *((b, fmt.label(b)) for b in bands)],
        "renewal_options": [("", "Any time"), *((str(d), f"Within {d} days") for d in windows)],
        "stage_options": [("", "Any stage"), *((s, fmt.label(s)) for s in STAGES)],
        "sort_options": SORT_OPTIONS,
    }


# -- the account page ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComponentRow:
    name: str
    score: float | None
    weight: Any
    share: float | None
    value: Any
    inputs: dict[str, Any]
    explanation: Any
    delta: float | None


def component_rows(components: Mapping[str, Any], moved: Mapping[str, Any]) -> list[ComponentRow]:
    """Each scored component with its change since the previous score (``moved.components``)."""
    deltas: dict[str, Any] = {}
    for m in moved.get("components") or []:
        if isinstance(m, dict) and "name" in m:
            deltas[str(m["name"])] = m.get("delta")
    rows = []
    for name, c in components.items():
        if not isinstance(c, dict):
            continue
        delta = deltas.get(name)
        rows.append(
            ComponentRow(
                name=name,
                score=c.get("score"),
                weight=c.get("weight"),
                share=c.get("share"),
                value=c.get("value"),
                inputs=dict(c.get("inputs") or {}),
                explanation=c.get("explanation"),
                delta=None if delta is None else float(delta),
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class Usage:
    """Weekly active users and logins, oldest week first, with the week-ending labels."""

    labels: list[str]
    actives: list[int]
    logins: list[int]
    actives_chart: BarChart
    logins_chart: BarChart


def week_labels(as_of: date | None, n: int) -> list[str]:
    if as_of is None:
        return [f"week {i + 1}" for i in range(n)]
    return [fmt.short_day(as_of - timedelta(days=7 * (n - 1 - i))) for i in range(n)]


def usage(metrics: Mapping[str, Any]) -> Usage | None:
    actives = [int(v) for v in metrics.get("weekly_active_users") or []]
    logins = [int(v) for v in metrics.get("weekly_logins") or []]
    if not actives and not logins:
        return None
    raw_as_of = metrics.get("as_of")
    as_of = date.fromisoformat(raw_as_of[:10]) if isinstance(raw_as_of, str) else None
    labels = week_labels(as_of, max(len(actives), len(logins)))
    return Usage(labels, actives, logins, bar_chart(actives, labels), bar_chart(logins, labels))


@dataclass(frozen=True, slots=True)
class FeatureRow:
    feature: Any
    last_used: Any
    days_since: Any
    uses: int
    users: int
    status: str
    """in use, never used or unused 28 days."""


def feature_rows(metrics: Mapping[str, Any]) -> list[FeatureRow]:
    rows = []
    for f in metrics.get("features") or []:
        if not isinstance(f, dict):
            continue
        uses = int(f.get("uses_28d") or 0)
        status = (
            "in use" if uses else "never used" if f.get("last_used") is None else "unused 28 days"
        )
        rows.append(
            FeatureRow(
                feature=f.get("feature"),
                last_used=f.get("last_used"),
                days_since=f.get("days_since_last_use"),
                uses=uses,
                users=int(f.get("users_28d") or 0),
                status=status,
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class Champion:
    who: str
    how: str
    """named, or most regular user."""
    days_since_active: int | None


def champion(metrics: Mapping[str, Any]) -> Champion | None:
    """Who the champion is, how we know, and how long since they were last active."""
    who = metrics.get("champion")
    if not who:
        return None
    how = "named" if metrics.get("champion_source") == "named" else "most regular user"
    days = metrics.get("champion_days_since_active")
    return Champion(str(who), how, days if isinstance(days, int) and days > 0 else None)


def account_context(
    page: AccountPage,
    *,
    moves: Moves,
    today: date,
    bands: Bands,
    notice: str | None,
    csm: str | None,
    stage: str | None = None,
) -> dict[str, Any]:
    """``csm``: who the CSM is, as shown; ``stage``: the lifecycle stage today."""
    a = page.account
    m = page.metrics
    latest = page.latest
    active = [x for x in page.alerts if x.status != "resolved"]
    past = [x for x in page.alerts if x.status == "resolved"]
    left_out = [
        lo for lo in ((latest.left_out or []) if latest is not None else []) if isinstance(lo, dict)
    ]
    return {
        "a": a,
        "m": m,
        "latest": latest,
        "moves": moves,
        "csm": csm,
        "stage": stage,
        "days_left": (a.renewal_date - today).days if a.renewal_date else None,
        "champion": champion(m),
        "notice_text": NOTICES.get(notice or ""),
        "bands": bands,
        "score_chart": line_chart(page.history, bands),
        "components": (
            component_rows(latest.components or {}, latest.moved or {}) if latest else []
        ),
        "score_delta": ((latest.moved or {}).get("score_delta") if latest else None),
        "left_out": left_out,
        "usage": usage(m),
        "features": feature_rows(m),
        "active": active,
        "past": past,
    }


def alerts_context(
    groups: Mapping[str, list[Alert]],
    health: Mapping[str, tuple[float | None, str | None]],
    csms: Sequence[str],
    csm: str | None,
    csm_label: Callable[[str | None, str | None], str | None],
) -> dict[str, Any]:
    """The open alerts by rule, each with its account's health now (``health``; the alert row
    keeps the one it was decided on) and its CSM as shown (``csm_label``)."""
    alerts = [a for group in groups.values() for a in group]
    return {
        "groups": groups,
        "total": len(alerts),
        "health": {a.id: health.get(a.account_id, (a.score, a.band)) for a in alerts},
        "csm_of": {a.id: csm_label(a.csm_email, a.csm_slack) for a in alerts},
        "csm_options": csm_options(csms),
        "csm": csm,
    }

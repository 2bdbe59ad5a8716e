"""What the console's templates show, computed from what :mod:`views` read: option lists, chart
geometry, the account page's facts and tables. Pure functions of their arguments (no I/O, no
clock); the markup is in ``services/web/templates/console/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from services.web.charts import Bands, BarChart, bar_chart, line_chart, sparkline
from services.web.console import explain
from services.web.console.views import AccountPage, AlertsFilter, OpenAlerts, Portfolio
from shared import format as fmt
from shared.db.models import Alert, AlertNotification
from shared.outcomes.model import STAGES
from shared.redact import mask_url

AT_RISK = ("red", "yellow")
NOTICES = {
    "acknowledged": "Alert acknowledged: no more reminders for it.",
    "snoozed": "Alert snoozed.",
    "resolved": "Alert resolved.",
    "conflict": "That alert cannot make that move in its current state (refresh to see it).",
    "bad-until": "Snooze needs a time in the future (YYYY-MM-DD HH:MM, UTC).",
    "not-found": "That alert no longer exists.",
}
NOT_YOURS = "not-yours"
"""A move on an account outside the person's book: answered 403, nothing moved."""
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
ISO_MINUTE = "%Y-%m-%d %H:%M"
"""How a snooze field shows and takes its time: an ISO date and time in UTC, like every other
date of the console (a browser's date picker would use the browser's locale)."""
SOON_DAYS = 30
"""A renewal this close is highlighted."""
SEVERITY_ORDER = ("critical", "warning", "info")
"""Risks, most severe first; opportunities have their own section."""


@dataclass(frozen=True, slots=True)
class Moves:
    """What every alert form of a page carries: the CSRF token, the page to come back to, and the
    snooze field's default and earliest time (:data:`ISO_MINUTE`, UTC)."""

    csrf: str
    back: str
    until_default: str
    until_min: str
    by: Mapping[int, str] = field(default_factory=dict)
    """Who made each alert's latest move (their name), from the audit log."""
    may_act: bool = True
    """False: the page is read-only for this person (an account outside a CSM's book)."""

    @classmethod
    def of(
        cls,
        csrf: str,
        back: str,
        now: datetime,
        by: Mapping[int, str] | None = None,
        may_act: bool = True,
    ) -> Moves:
        return cls(
            csrf,
            back,
            (now + timedelta(days=SNOOZE_DAYS)).strftime(ISO_MINUTE),
            now.strftime(ISO_MINUTE),
            dict(by or {}),
            may_act,
        )


def csm_options(csms: Sequence[str], names: Mapping[str, str]) -> list[tuple[str, str]]:
    """The CSM filter's choices: the value is how accounts name the CSM, the text their name
    where one is known."""
    return [("", "All CSMs"), *((c, names.get(c, c)) for c in csms)]


def renewal_soon(renewal_date: date | None, today: date) -> int | None:
    """Days to a renewal within :data:`SOON_DAYS` (0: today); None otherwise."""
    if renewal_date is None:
        return None
    left = (renewal_date - today).days
    return left if 0 <= left <= SOON_DAYS else None


class ShownAlert:
    """An alert as the console shows it: the row's fields, with its reason and next step naming
    people instead of user ids."""

    __slots__ = ("_alert", "next_step", "reason")

    def __init__(self, alert: Alert, names: Mapping[str, str]) -> None:
        self._alert = alert
        self.reason = with_names(alert.reason, names)
        self.next_step = with_names(alert.next_step, names)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._alert, name)


def with_names(text: str | None, names: Mapping[str, str]) -> str | None:
    """``text`` with each user id of ``names`` replaced by the person's name (alert texts are
    written with ids; people read names)."""
    if not text or not names:
        return text
    ids = sorted(names, key=len, reverse=True)
    pattern = re.compile("|".join(rf"(?<![\w@.-]){re.escape(i)}(?![\w@-])" for i in ids))
    return pattern.sub(lambda m: names[m.group(0)], text)


def portfolio_context(
    portfolio: Portfolio, bands: Sequence[str], windows: Sequence[int]
) -> dict[str, Any]:
    """``bands`` and ``windows``: the filter's choices of band and renewal window (days)."""
    return {
        "portfolio": portfolio,
        "bands": bands,
        "at_risk": sum(portfolio.mrr_by_band.get(b, 0.0) for b in AT_RISK),
        "sparklines": {r.account_id: sparkline(r.spark) for r in portfolio.rows},
        "soon": {
            r.account_id: renewal_soon(r.renewal_date, portfolio.today) for r in portfolio.rows
        },
        "csm_options": csm_options(portfolio.csms, portfolio.csm_names),
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
    """The change of the component's own score (0 to 100) since the previous score."""

    @property
    def measured(self) -> str:
        return explain.measured(self.name, self.value)

    @property
    def facts(self) -> list[explain.Fact]:
        return explain.facts(self.name, self.inputs)

    @property
    def scale(self) -> str | None:
        return explain.thresholds(self.name, self.inputs)


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
    """Their name where known, else their user id."""
    how: str
    """named, or most regular user."""
    days_since_active: int | None


def champion(metrics: Mapping[str, Any], names: Mapping[str, str] | None = None) -> Champion | None:
    """Who the champion is (``names``: user names by id), how we know, and how long since they
    were last active."""
    who = metrics.get("champion")
    if not who:
        return None
    how = "named" if metrics.get("champion_source") == "named" else "most regular user"
    days = metrics.get("champion_days_since_active")
    shown = (names or {}).get(str(who), str(who))
    return Champion(shown, how, days if isinstance(days, int) and days > 0 else None)


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
    shown = [ShownAlert(x, page.people) for x in page.alerts]
    active = [x for x in shown if x.status != "resolved"]
    past = [x for x in shown if x.status == "resolved"]
    left_out = [
        lo for lo in ((latest.left_out or []) if latest is not None else []) if isinstance(lo, dict)
    ]
    return {
        "a": a,
        "m": m,
        "latest": latest,
        "moves": moves,
        "csm": page.csm_name or csm,
        "stage": stage,
        "days_left": (a.renewal_date - today).days if a.renewal_date else None,
        "soon": renewal_soon(a.renewal_date, today),
        "csm_contact": csm,
        "champion": champion(m, page.people),
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
        "events": page.events,
        "deliveries": delivery_rows(page.alerts, page.sent),
    }


SEVERITY_OPTIONS = [
    ("", "Any severity"),
    ("critical", "Critical"),
    ("warning", "Warning"),
    ("info", "Info"),
    ("opportunity", "Opportunity (upsell)"),
]


CHANNEL_WORDS = {"slack": "Slack", "email": "Email", "email_digest": "Daily email digest"}


def delivery_rows(
    shown: Sequence[Alert], sent: Mapping[int, Sequence[AlertNotification]]
) -> list[dict[str, Any]]:
    """Where each notification of the shown alerts went (or why it did not), newest first:
    one row per message and destination, naming the alerts it spoke of."""
    titles = {a.id: fmt.words(a.rule) + (f" ({a.feature})" if a.feature else "") for a in shown}
    messages: dict[int, dict[str, Any]] = {}
    for alert_id, notes in sent.items():
        if alert_id not in titles:
            continue
        for n in notes:
            row = messages.setdefault(
                n.id,
                {
                    "kind": n.kind,
                    "channel": CHANNEL_WORDS.get(n.channel, "Nowhere"),
                    "to": mask_url(n.destination) if n.destination else None,
                    "status": n.status,
                    "at": n.sent_at or n.created_at,
                    "why": n.last_error,
                    "alerts": [],
                },
            )
            row["alerts"].append(titles[alert_id])
    return [messages[i] for i in sorted(messages, reverse=True)]


def alerts_context(
    found: OpenAlerts,
    f: AlertsFilter,
    csms: Sequence[str],
    csm_label: Callable[[str | None, str | None], str | None],
    moves: Moves,
) -> dict[str, Any]:
    """The open alerts in two sections, risks (most severe, then most revenue at risk, first)
    and opportunities, each with its account's health now (the alert row keeps the one it was
    decided on), its CSM as shown and the forms to act on it in place."""
    shown = [ShownAlert(a, found.people.get(a.account_id, {})) for a in found.alerts]
    csm_of = {}
    for a in found.alerts:
        contact = csm_label(a.csm_email, a.csm_slack)
        csm_of[a.id] = (found.csm_names.get(contact, contact) if contact else None, contact)
    return {
        "risks": [a for a in shown if a.severity != "opportunity"],
        "opportunities": [a for a in shown if a.severity == "opportunity"],
        "total": len(shown),
        "at_risk": sum(
            {a.account_id: a.mrr or 0.0 for a in shown if a.severity != "opportunity"}.values()
        ),
        "health": {a.id: found.health.get(a.account_id, (a.score, a.band)) for a in found.alerts},
        "csm_of": csm_of,
        "csm_options": csm_options(csms, found.csm_names),
        "severity_options": SEVERITY_OPTIONS,
        "rule_options": [("", "Any rule"), *((r, fmt.label(r)) for r in found.rules)],
        "filter": f,
        "moves": moves,
    }

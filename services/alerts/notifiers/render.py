"""Text shared by every channel: numbers, one-line summaries and the plain-text body (pure).

Amounts are US dollars rounded to whole dollars (``$4,500 MRR``); renewal dates count days from
the notification's ``as_of`` (``renews 2027-01-15 (in 53 days)``), so rendering needs no clock.
"""

from __future__ import annotations

import re
from datetime import date

from services.alerts.notifiers.base import Notification

__all__ = [
    "escape_mrkdwn",
    "format_money",
    "format_mrr",
    "format_renewal",
    "format_score",
    "kind_label",
    "one_line",
    "render_mrkdwn",
    "render_text",
    "rule_title",
    "subject",
    "summary",
]

_WHITESPACE = re.compile(r"\s+")


def one_line(text: str) -> str:
    """Collapse newlines and runs of whitespace (headers, Slack header blocks)."""
    return _WHITESPACE.sub(" ", text).strip()


def format_money(amount: float) -> str:
    rounded = round(amount)
    sign = "-" if rounded < 0 else ""
    return f"{sign}${abs(rounded):,}"


def format_mrr(mrr: float | None) -> str:
    return "MRR unknown" if mrr is None else f"{format_money(mrr)} MRR"


def format_renewal(renewal_date: date | None, as_of: date) -> str:
    if renewal_date is None:
        return "renewal date unknown"
    days = (renewal_date - as_of).days
    when = renewal_date.isoformat()
    if days == 0:
        return f"renews {when} (today)"
    if days > 0:
        return f"renews {when} (in {days} day{'s' if days != 1 else ''})"
    return f"renewal was {when} ({-days} day{'s' if days != -1 else ''} ago)"


def format_score(score: float | None, band: str) -> str:
    return band if score is None else f"{round(score)} ({band})"


def rule_title(rule: str, feature: str = "") -> str:
    title = rule.replace("_", " ")
    return f"{title}: {feature}" if feature else title


def kind_label(notification: Notification) -> str:
    return {"open": "", "repeat": "still open", "resolve": "resolved"}[notification.kind]


def summary(n: Notification) -> str:
    """``Acme Corp: login plateau (yellow, 58)``; ``resolved`` or ``still open`` after the rule."""
    score = "" if n.score is None else f", {round(n.score)}"
    label = kind_label(n)
    rule = rule_title(n.rule, n.feature) + (f" {label}" if label else "")
    return one_line(f"{n.account_label}: {rule} ({n.band}{score})")


def subject(n: Notification) -> str:
    """``[tend] Acme Corp: login plateau (yellow, 58)``."""
    return f"[tend] {summary(n)}"


def _facts(n: Notification) -> list[tuple[str, str]]:
    return [
        ("Score", format_score(n.score, n.band)),
        ("MRR", format_mrr(n.mrr)),
        ("Renewal", format_renewal(n.renewal_date, n.as_of)),
        ("Severity", n.severity),
    ]


def render_text(n: Notification) -> str:
    """The plain-text body (email text part, logs, the dispatcher's previews)."""
    lines = [summary(n), ""]
    lines += [f"{label}: {value}" for label, value in _facts(n)]
    if n.csm_name or n.csm_email:
        lines.append(f"CSM: {n.csm_name or n.csm_email}")
    lines += ["", "Why:", n.reason.strip(), ""]
    if n.kind != "resolve":
        lines += ["Next step:", n.next_step.strip(), ""]
    lines += [f"Open in tend: {n.console_url}", "", f"Alert {n.alert_id} ({n.rule}, {n.as_of})"]
    return "\n".join(lines) + "\n"


def escape_mrkdwn(text: str) -> str:
    """Slack's mrkdwn treats ``&``, ``<`` and ``>`` as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_mrkdwn(n: Notification) -> str:
    """The whole message as Slack mrkdwn (the fallback ``text`` and single-block renderers)."""
    facts = " · ".join(f"{label} {escape_mrkdwn(value)}" for label, value in _facts(n)[:3])
    parts = [f"*{escape_mrkdwn(summary(n))}*", facts, escape_mrkdwn(n.reason.strip())]
    if n.kind != "resolve":
        parts.append(f"*Next step:* {escape_mrkdwn(n.next_step.strip())}")
    parts.append(f"<{n.console_url}|Open in tend>")
    return "\n".join(parts)

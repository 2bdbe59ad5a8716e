"""Text shared by every channel: one-line summaries, facts and the plain-text body (pure).

Numbers and dates go through :mod:`shared.format`: amounts in whole dollars (``$4,500 MRR``),
renewal dates counted from the notification's ``as_of`` (``renews 2027-01-15 (in 53 days)``), so
rendering needs no clock.
"""

from __future__ import annotations

import re
from datetime import date

from services.alerts.notifiers.base import Notification, NotificationItem
from shared import format as fmt
from shared.slack import escape_mrkdwn

__all__ = [
    "alert_title",
    "escape_mrkdwn",
    "kind_label",
    "one_line",
    "render_mrkdwn",
    "render_text",
    "rule_title",
    "subject",
    "summary",
    "why",
]

_WHITESPACE = re.compile(r"\s+")


def one_line(text: str) -> str:
    """Collapse newlines and runs of whitespace (headers, Slack header blocks)."""
    return _WHITESPACE.sub(" ", text).strip()


def rule_title(rule: str, feature: str = "") -> str:
    title = fmt.words(rule)
    return f"{title}: {feature}" if feature else title


def alert_title(n: Notification) -> str:
    """The rule's title; for a group, ``3 alerts: dormant, health red, login decline``."""
    if len(n.items) <= 1:
        return rule_title(n.rule, n.feature)
    names = ", ".join(rule_title(i.rule, i.feature) for i in n.items)
    return f"{len(n.items)} alerts: {names}"


def kind_label(notification: Notification | NotificationItem) -> str:
    return {"open": "", "repeat": "still open", "resolve": "resolved"}[notification.kind]


def summary(n: Notification) -> str:
    """``Acme Corp: login plateau (yellow, 58)``; ``resolved`` or ``still open`` after the rule;
    a group: ``Acme Corp: 2 new alerts, 1 resolved (red, 31)``."""
    score = "" if n.score is None else f", {fmt.score(n.score)}"
    if len(n.items) > 1:
        counts = {k: sum(1 for i in n.items if i.kind == k) for k in ("open", "repeat", "resolve")}
        words = [
            fmt.plural(counts["open"], "new alert") * bool(counts["open"]),
            f"{counts['repeat']} still open" * bool(counts["repeat"]),
            f"{counts['resolve']} resolved" * bool(counts["resolve"]),
        ]
        return one_line(f"{n.account_label}: {', '.join(w for w in words if w)} ({n.band}{score})")
    label = kind_label(n)
    rule = rule_title(n.rule, n.feature) + (f" {label}" if label else "")
    return one_line(f"{n.account_label}: {rule} ({n.band}{score})")


def _since(started_on: date | None) -> str:
    return f" (since {fmt.day(started_on)})" if started_on is not None else ""


def why(n: Notification) -> str:
    """The reason; for a group, one line per alert: ``login decline (since 2026-10-12): ...``."""
    if len(n.items) <= 1:
        return n.reason.strip() + _since(n.started_on) * (n.kind != "resolve")
    lines = []
    for i in n.items:
        label = kind_label(i)
        title = rule_title(i.rule, i.feature) + (f" {label}" if label else "")
        since = _since(i.started_on) if i.kind != "resolve" else ""
        lines.append(f"- {one_line(title)}{since}: {one_line(i.reason)}")
    return "\n".join(lines)


def subject(n: Notification) -> str:
    """``[tend] Acme Corp: login plateau (yellow, 58)``."""
    return f"[tend] {summary(n)}"


def _facts(n: Notification) -> list[tuple[str, str]]:
    return [
        ("Score", fmt.score_band(n.score, n.band)),
        ("MRR", fmt.mrr(n.mrr, n.currency)),
        ("Renewal", fmt.renewal(n.renewal_date, n.as_of)),
        ("Severity", n.severity),
    ]


def render_text(n: Notification) -> str:
    """The plain-text body (email text part, logs, the dispatcher's previews)."""
    lines = [summary(n), ""]
    lines += [f"{label}: {value}" for label, value in _facts(n)]
    if n.csm_name or n.csm_email:
        lines.append(f"CSM: {n.csm_name or n.csm_email}")
    lines += ["", "Why:", why(n), ""]
    if n.kind != "resolve":
        lines += ["Next step:", n.next_step.strip(), ""]
    lines += [f"Open in tend: {n.console_url}", "", f"Alert {n.alert_id} ({n.rule}, {n.as_of})"]
    return "\n".join(lines) + "\n"


def render_mrkdwn(n: Notification) -> str:
    """The whole message as Slack mrkdwn (the fallback ``text`` and single-block renderers)."""
    facts = " · ".join(f"{label} {escape_mrkdwn(value)}" for label, value in _facts(n)[:3])
    parts = [f"*{escape_mrkdwn(summary(n))}*", facts, escape_mrkdwn(why(n))]
    if n.kind != "resolve":
        parts.append(f"*Next step:* {escape_mrkdwn(n.next_step.strip())}")
    parts.append(f"<{n.console_url}|Open in tend>")
    return "\n".join(parts)

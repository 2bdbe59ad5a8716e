"""Email: one multipart/alternative message per notification, or one daily digest per CSM,
sent through the one SMTP client of tend (:mod:`shared.smtp`, which classifies each failure).

Contract:

- ``send`` opens a connection, sends one message and quits; it never raises for delivery
  problems. A 4xx answer (451 "try again later", 421, 452) is retried with a backoff hint; a 5xx
  answer (550 "no such user", 554, 535 bad credentials) fails permanently; connection errors and
  timeouts are retried. Once the server has accepted the message (250 after DATA), the result is
  "delivered" even if QUIT fails, so a flaky goodbye never sends the mail twice.
- With several recipients, the message counts as delivered when the server accepted at least
  one of them (a retry would send it again to those); the refused ones are logged.
- Every message carries a deterministic ``Message-ID`` per (alert, kind, day), so a retried send
  that did reach the mailbox is folded into one by most mail clients.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

import jinja2

from services.alerts.notifiers.base import Channel, DeliveryResult, Notification, record
from services.alerts.notifiers.render import alert_title, one_line, render_text, subject, why
from shared import format as fmt
from shared.smtp import SmtpError, SmtpSettings, TlsMode, parse_recipients, send_one

__all__ = ["EmailNotifier", "SmtpSettings", "TlsMode", "parse_recipients"]

log = logging.getLogger("tend.alerts.email")

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _message_id(parts: Iterable[str], from_address: str) -> str:
    domain = parseaddr(from_address)[1].rpartition("@")[2] or "tend.invalid"
    local = ".".join(_ID_UNSAFE.sub("-", p) for p in parts)
    return f"<tend.{local}@{domain}>"


def _base_message(
    settings: SmtpSettings, recipients: list[str], subject_line: str, message_id: str
) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = one_line(subject_line)
    msg["From"] = settings.from_address
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message_id
    # RFC 3834: out-of-office robots should not answer an automated alert.
    msg["Auto-Submitted"] = "auto-generated"
    return msg


# The HTML parts are Jinja templates (autoescaped) in templates/; the text parts are render.py's.
_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("services.alerts.notifiers", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


@dataclass(frozen=True, slots=True)
class _AlertView:
    """What the HTML of one alert shows, every value already in words."""

    heading: str
    facts: list[tuple[str, str]]
    why: str
    next_step: str | None
    console_url: str
    account: str

    @classmethod
    def of(cls, n: Notification) -> _AlertView:
        facts = [
            ("Score", fmt.score_band(n.score, n.band)),
            ("MRR", fmt.mrr(n.mrr, n.currency)),
            ("Renewal", fmt.renewal(n.renewal_date, n.as_of)),
            ("Alert", f"{alert_title(n)} ({n.severity})"),
        ]
        if n.csm_name or n.csm_email:
            facts.append(("CSM", n.csm_name or n.csm_email or ""))
        return cls(
            heading=_heading(n),
            facts=facts,
            why=why(n),
            next_step=None if n.kind == "resolve" else n.next_step.strip(),
            console_url=n.console_url,
            account=n.account_label,
        )


def _heading(n: Notification) -> str:
    prefix = {"open": "", "repeat": "Still open: ", "resolve": "Resolved: "}[n.kind]
    return one_line(f"{prefix}{n.account_label} · {alert_title(n)} · {n.band}")


def _render(template: str, **context: Any) -> str:
    return _TEMPLATES.get_template(template).render(**context)


def _is_at_risk(n: Notification) -> bool:
    return n.kind != "resolve" and n.severity != "opportunity"


class EmailNotifier:
    """Sends notifications and digests by SMTP; see the module docstring for the contract."""

    channel: Channel = "email"

    def __init__(self, settings: SmtpSettings, *, backoff_base_s: float = 60.0) -> None:
        self.settings = settings
        self.backoff_base_s = backoff_base_s

    async def aclose(self) -> None:
        """Nothing to close: every send has its own connection."""

    # -- building messages ------------------------------------------------------------------

    def build_message(self, n: Notification, recipients: Sequence[str]) -> EmailMessage:
        """One alert as multipart/alternative: the plain text and an escaped HTML part."""
        msg = _base_message(
            self.settings,
            list(recipients),
            subject(n),
            _message_id(
                ("alert", n.alert_id, n.kind, n.as_of.isoformat()), self.settings.from_address
            ),
        )
        msg["X-Tend-Alert-Id"] = one_line(n.alert_id)
        # A grouped notification names every rule in it, the leading one first.
        msg["X-Tend-Rule"] = one_line(", ".join(i.rule for i in n.items) or n.rule)
        msg.set_content(render_text(n))
        page = _render("alert.html", title=subject(n), view=_AlertView.of(n))
        msg.add_alternative(page, subtype="html")
        return msg

    def build_digest(
        self, notifications: Sequence[Notification], csm: str, *, csm_name: str | None = None
    ) -> EmailMessage:
        """ONE email for one CSM: accounts at risk first, by MRR (largest first, unknown last),
        then positive signals, then resolved alerts; each account's alerts grouped under it.

        The subject counts accounts at risk and their MRR, each account once.
        """
        if not notifications:
            raise ValueError("a digest needs at least one notification")
        as_of = max(n.as_of for n in notifications)
        sections = [
            ("At risk", [n for n in notifications if _is_at_risk(n)]),
            (
                "Opportunities",
                [n for n in notifications if n.kind != "resolve" and n.severity == "opportunity"],
            ),
            ("Resolved", [n for n in notifications if n.kind == "resolve"]),
        ]
        at_risk_accounts = {n.account_id: n.mrr for n in sections[0][1]}
        mrr_at_risk = sum(m for m in at_risk_accounts.values() if m is not None)
        count = len(at_risk_accounts)
        title = (
            f"[tend] Daily digest {fmt.day(as_of)}: {fmt.plural(count, 'account')} at risk, "
            f"{fmt.mrr(mrr_at_risk, notifications[0].currency)}"
        )
        greeting = f"Hello {csm_name}," if csm_name else "Hello,"
        text_parts = [greeting, "", title.removeprefix("[tend] "), ""]
        html_sections = []
        for heading, items in sections:
            if not items:
                continue
            text_parts += [heading.upper(), "=" * len(heading), ""]
            accounts = []
            for _account_id, alerts in _by_account_mrr(items):
                for n in alerts:
                    text_parts += [render_text(n).rstrip(), "-" * 40, ""]
                accounts.append([_AlertView.of(n) for n in alerts])
            html_sections.append({"heading": heading, "accounts": accounts})
        msg = _base_message(
            self.settings,
            [csm],
            title,
            _message_id(
                (
                    "digest",
                    as_of.isoformat(),
                    hashlib.sha256(csm.lower().encode()).hexdigest()[:12],
                ),
                self.settings.from_address,
            ),
        )
        msg.set_content("\n".join(text_parts) + "\n")
        page = _render("digest.html", title=title, greeting=greeting, sections=html_sections)
        msg.add_alternative(page, subtype="html")
        return msg

    # -- sending ----------------------------------------------------------------------------

    async def send(self, notification: Notification, destination: str) -> DeliveryResult:
        recipients = parse_recipients(destination)
        if not recipients:
            result = DeliveryResult.failed_permanently(f"no email address in {destination!r}")
        else:
            result = await self.send_message(
                self.build_message(notification, recipients), recipients
            )
        return record(self.channel, result, notification, ", ".join(recipients) or destination)

    async def send_digest(
        self, notifications: Sequence[Notification], csm: str, *, csm_name: str | None = None
    ) -> DeliveryResult:
        result = await self.send_message(
            self.build_digest(notifications, csm, csm_name=csm_name), [csm]
        )
        return record(self.channel, result, notifications[0], csm)

    async def send_message(
        self, message: EmailMessage, recipients: Sequence[str]
    ) -> DeliveryResult:
        """Send a built message; classify the SMTP outcome (never raises for delivery problems)."""
        try:
            refused = await send_one(self.settings, message, recipients)
        except SmtpError as err:
            if err.temporary:
                return DeliveryResult.retry_after(self.backoff_base_s, err.reason, backoff=True)
            return DeliveryResult.failed_permanently(err.reason)
        if refused:
            log.warning(
                "some recipients refused message_id=%s refused=%s",
                message["Message-ID"],
                {addr: f"SMTP {code}" for addr, code in refused.items()},
            )
        return DeliveryResult.delivered(
            f"accepted for {len(recipients) - len(refused)} recipient(s)"
        )


def _by_account_mrr(items: Sequence[Notification]) -> list[tuple[str, list[Notification]]]:
    groups: dict[str, list[Notification]] = {}
    for n in items:
        groups.setdefault(n.account_id, []).append(n)

    def key(entry: tuple[str, list[Notification]]) -> tuple[bool, float, str]:
        mrr = max((n.mrr for n in entry[1] if n.mrr is not None), default=None)
        return (mrr is None, -(mrr or 0.0), entry[1][0].account_label.lower())

    return sorted(groups.items(), key=key)

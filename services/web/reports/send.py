"""Sending monthly value reports: who gets them, the email (a text summary, the HTML page as
the alternative, the page and its PDF as attachments) and one SMTP connection for many
(``tend report --email`` to the CSMs, ``--send`` and the schedule to the customers), through
the one SMTP client of tend (:mod:`shared.smtp`).

The customer's contacts are operator data (``customer_emails``: the profile import or the
profile API, never group traits), so they are mailed as set; the CSM in copy is checked
against ``TEND_ALERTS__EMAIL_DOMAINS`` like alert mail, and replaced by
``TEND_ALERTS__DEFAULT_EMAILS`` when refused or missing."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid

from services.web.reports.build import MonthlyReport
from services.web.reports.render import render_text
from shared import format as fmt
from shared.settings import Settings
from shared.smtp import SmtpClient, SmtpError, SmtpNotConfigured, SmtpSettings

__all__ = [
    "Recipients",
    "SmtpNotConfigured",
    "csm_refusal",
    "customer_recipients",
    "report_email",
    "report_filename",
    "send_reports",
]


def csm_refusal(address: str, domains: Sequence[str]) -> str | None:
    """Why a CSM address (account data) may not be mailed; None when it may."""
    found = [a for _, a in getaddresses([address]) if a]
    if not found or any("@" not in a for a in found):
        return "not an email address"
    for a in found:
        domain = a.rpartition("@")[2].lower()
        if domains and domain not in domains:
            return f"domain {domain} is not in TEND_ALERTS__EMAIL_DOMAINS"
    return None


@dataclass(frozen=True, slots=True)
class Recipients:
    """Who gets one account's customer report: ``to`` the customer's contacts, ``cc`` the CSM
    (or the default addresses); ``note`` says why the CSM is not in copy, when not."""

    to: list[str]
    cc: list[str]
    reply_to: str | None
    note: str | None = None


def customer_recipients(r: MonthlyReport, settings: Settings) -> Recipients | None:
    """The report's recipients; None when the account has no customer contacts."""
    to = list(r.account.customer_emails)
    if not to:
        return None
    csm, note = r.account.csm_email, None
    refusal = csm_refusal(csm, settings.alerts.email_domain_list) if csm else None
    if csm and refusal is not None:
        note = f"not copying csm_email {csm} ({refusal}); the default addresses are"
        csm = None
    cc = [csm] if csm else [a for a in settings.alerts.default_email_list if a not in to]
    return Recipients(to=to, cc=cc, reply_to=csm, note=note)


def report_email(
    r: MonthlyReport,
    page: str,
    sender: str,
    to: Sequence[str],
    *,
    cc: Sequence[str] = (),
    reply_to: str | None = None,
    pdf: bytes | None = None,
) -> EmailMessage:
    """A text summary and the HTML page as the alternative, the page again as an attachment
    (and its PDF, when given) the reader can keep or forward."""
    a = r.account
    msg = EmailMessage()
    msg["Subject"] = f"Monthly value report: {a.name or a.account_id}, {fmt.month(r.period_start)}"
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid("tend-report")
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(render_text(r, pdf=pdf is not None))
    msg.add_alternative(page, subtype="html")
    # A str attachment carries charset=utf-8, so names beyond ASCII survive a forward.
    name = report_filename(r, unique=False)
    msg.add_attachment(page, subtype="html", filename=name)
    if pdf is not None:
        msg.add_attachment(
            pdf, maintype="application", subtype="pdf", filename=name.removesuffix(".html") + ".pdf"
        )
    return msg


def report_filename(r: MonthlyReport, *, unique: bool = True) -> str:
    """``<readable slug>-<hash of the account id>-<month>.html``. Ids that slugify alike
    (``acme/eu`` and ``acme eu``, or ones differing only in case on a case-insensitive disk)
    still get their own files: the hash is of the exact id. ``unique=False`` leaves the hash
    out, for a mail's single attachment."""
    account_id = r.account.account_id
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", account_id).strip("-.")[:80] or "account"
    if not unique:
        return f"{slug}-{r.month}.html"
    digest = hashlib.sha256(account_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{slug}-{digest}-{r.month}.html"


async def send_reports(
    settings: Settings, messages: Sequence[EmailMessage]
) -> list[tuple[EmailMessage, str | None]]:
    """Send over one SMTP connection (``TEND_SMTP_*``); each message with ``None`` when the
    server accepted it (for at least one recipient), else why not. A message refused stays
    refused (no retry): the command prints which, and can be run again for those accounts.

    Raises :class:`SmtpNotConfigured` without ``TEND_SMTP_HOST`` and
    :class:`~shared.smtp.SmtpError` when the connection, TLS or login fails.
    """
    smtp = SmtpSettings.from_settings(settings, purpose="--email")
    results: list[tuple[EmailMessage, str | None]] = []
    async with SmtpClient(smtp) as client:
        for msg in messages:
            try:
                await client.send(msg)
            except SmtpError as err:
                results.append((msg, err.reason))
            else:
                results.append((msg, None))
    return results

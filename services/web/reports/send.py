"""Sending monthly value reports: the email (a text summary, the HTML page as the alternative
and as an attachment) and one SMTP connection for many (``tend report --email``), through the
one SMTP client of tend (:mod:`shared.smtp`)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from services.web.reports.build import MonthlyReport
from services.web.reports.render import render_text
from shared import format as fmt
from shared.settings import Settings
from shared.smtp import SmtpClient, SmtpError, SmtpNotConfigured, SmtpSettings

__all__ = ["SmtpNotConfigured", "report_email", "report_filename", "send_reports"]


def report_email(r: MonthlyReport, page: str, sender: str, to: Sequence[str]) -> EmailMessage:
    """A text summary and the HTML page as the alternative, and the page again as an
    attachment the CSM can forward to the customer."""
    a = r.account
    msg = EmailMessage()
    msg["Subject"] = f"Monthly value report: {a.name or a.account_id}, {fmt.month(r.period_start)}"
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid("tend-report")
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(render_text(r))
    msg.add_alternative(page, subtype="html")
    # A str attachment carries charset=utf-8, so names beyond ASCII survive a forward.
    msg.add_attachment(page, subtype="html", filename=report_filename(r, unique=False))
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

"""Sending monthly value reports: the email (a text summary, the HTML page as the alternative
and as an attachment) and one SMTP connection for many (``tend report --email``)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from services.web.reports.build import MonthlyReport, month_label
from shared.settings import Settings

# -- email --------------------------------------------------------------------------------------


def report_text(r: MonthlyReport) -> str:
    a = r.account
    lines = [f"{a.name or a.account_id}: monthly value report, {month_label(r.period_start)}", ""]
    lines += [f"- {s}" for s in r.highlights]
    lines += ["", "The full report is attached as HTML (print it or save it as PDF)."]
    return "\n".join(lines) + "\n"


def report_email(r: MonthlyReport, page: str, sender: str, to: Sequence[str]) -> EmailMessage:
    """A text summary and the HTML page as the alternative, and the page again as an
    attachment the CSM can forward to the customer."""
    a = r.account
    msg = EmailMessage()
    msg["Subject"] = (
        f"Monthly value report: {a.name or a.account_id}, {month_label(r.period_start)}"
    )
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid("tend-report")
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(report_text(r))
    msg.add_alternative(page, subtype="html")
    msg.add_attachment(
        page.encode("utf-8"),
        maintype="text",
        subtype="html",
        filename=report_filename(r, unique=False),
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


class SmtpNotConfigured(Exception):
    """``--email`` without ``TEND_SMTP_HOST``."""


async def send_reports(
    settings: Settings, messages: Sequence[EmailMessage]
) -> list[tuple[EmailMessage, str | None]]:
    """Send over one SMTP connection (``TEND_SMTP_*``); each message with ``None`` when the
    server accepted it, else the error. A message refused stays refused (no retry): the command
    prints which, and can be run again for those accounts."""
    import aiosmtplib

    if not settings.smtp_host:
        raise SmtpNotConfigured(
            "--email needs an SMTP server: set TEND_SMTP_HOST (and TEND_SMTP_PORT, "
            "TEND_SMTP_USER, TEND_SMTP_PASSWORD, TEND_SMTP_FROM, TEND_SMTP_TLS as needed)"
        )
    smtp = aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        use_tls=settings.smtp_tls == "tls",
        start_tls=settings.smtp_tls == "starttls",
        timeout=30,
    )
    results: list[tuple[EmailMessage, str | None]] = []
    await smtp.connect()
    try:
        if settings.smtp_user:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            await smtp.login(settings.smtp_user, password)
        for msg in messages:
            try:
                await smtp.send_message(msg)
                results.append((msg, None))
            except aiosmtplib.SMTPResponseException as err:
                results.append((msg, f"{err.code} {err.message}"))
            except aiosmtplib.SMTPRecipientsRefused as err:
                results.append((msg, "; ".join(f"{r.code} {r.message}" for r in err.recipients)))
    finally:
        try:
            await smtp.quit()
        except aiosmtplib.SMTPException:
            smtp.close()
    return results

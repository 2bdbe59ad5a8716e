"""``tend report``: the monthly value report of every account as HTML files, emailed to the CSMs
(``--email``) or sent to the customers with the CSM in copy (``--send``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

import click

from services.cli.common import (
    ConfigFailure,
    Failure,
    load_settings,
    load_tend_config,
    one_line,
    run_db,
)

if TYPE_CHECKING:
    from services.web.reports.build import MonthlyReport
    from shared.settings import Settings


@dataclass(slots=True)
class Outcome:
    """What one run wrote and will send, and which accounts it left out and why."""

    written: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    not_customers: list[str] = field(default_factory=list)
    unaddressed: list[str] = field(default_factory=list)
    unprinted: list[str] = field(default_factory=list)


def _csm_message(r: MonthlyReport, page: str, settings: Settings) -> EmailMessage | None:
    """``--email``: the report to the account's CSM, else to the default addresses."""
    from services.web.reports.send import csm_refusal, report_email

    csm = r.account.csm_email
    refusal = csm_refusal(csm, settings.alerts.email_domain_list) if csm else None
    if refusal is not None:
        click.echo(
            f"{r.account.account_id}: not mailing csm_email {csm} ({refusal}); "
            "the default addresses get it",
            err=True,
        )
        csm = None
    to = [csm] if csm else settings.alerts.default_email_list
    return report_email(r, page, settings.smtp_from, to) if to else None


async def _customer_message(
    r: MonthlyReport, page: str, settings: Settings, out: Outcome
) -> EmailMessage | None:
    """``--send``: the report and its PDF to the customer's contacts, the CSM in copy."""
    from services.web.reports.pdf import PdfError, print_pdf
    from services.web.reports.send import customer_recipients, report_email

    aid = r.account.account_id
    who = customer_recipients(r, settings)
    if who is None:
        out.unaddressed.append(aid)
        return None
    if who.note:
        click.echo(f"{aid}: {who.note}", err=True)
    pdf = None
    if settings.reports.chromium:
        try:
            pdf = await print_pdf(page, settings.reports.chromium, settings.reports.pdf_timeout_s)
        except PdfError as err:
            click.echo(f"{aid}: not sent: {err}", err=True)
            out.unprinted.append(aid)
            return None
    return report_email(
        r, page, settings.smtp_from, who.to, cc=who.cc, reply_to=who.reply_to, pdf=pdf
    )


@click.command()
@click.option("--month", metavar="YYYY-MM", help="The month (UTC); default: the last complete one.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the HTML files. [default: ./tend-reports/YYYY-MM]",
)
@click.option("--email", is_flag=True, help="Also send each report to the account's CSM (SMTP).")
@click.option(
    "--send",
    is_flag=True,
    help="Also send each report, with its PDF, to the account's customer_emails, the CSM in copy.",
)
def report(month: str | None, out: Path | None, email: bool, send: bool) -> None:
    """Render the monthly value report of every account that was a customer in the month as
    HTML, and mail it to the CSMs (--email) or to the customers (--send).

    --email goes to the account's csm_email, else to TEND_ALERTS__DEFAULT_EMAILS. --send goes to
    the account's customer_emails with the CSM (else the default addresses) in copy, the PDF
    printed by TEND_REPORTS__CHROMIUM attached. Mail goes through the SMTP server of
    TEND_SMTP_HOST / _PORT / _USER / _PASSWORD / _FROM / _TLS.
    """
    from datetime import UTC, datetime

    from services.web.reports.build import (
        MonthError,
        build_report,
        existed_in,
        key_features_of,
        last_month,
        month_end,
        parse_month,
    )
    from services.web.reports.render import render_html
    from services.web.reports.send import report_filename, send_reports
    from shared.smtp import SmtpError, SmtpNotConfigured, SmtpSettings

    if email and send:
        raise ConfigFailure("give --email (to the CSMs) or --send (to the customers), not both")
    settings = load_settings()
    config = load_tend_config(settings)
    if email or send:
        try:
            SmtpSettings.from_settings(settings, purpose="--send" if send else "--email")
        except SmtpNotConfigured as err:
            raise ConfigFailure(str(err)) from None
    today = datetime.now(UTC).date()
    try:
        first = parse_month(month, today) if month is not None else last_month(today)
    except MonthError as err:
        raise ConfigFailure(f"--{err}") from None
    directory = out if out is not None else Path("tend-reports") / first.strftime("%Y-%m")
    keys = key_features_of(config)
    end = min(month_end(first), today)

    async def work() -> Outcome:
        from shared.db.session import create_engine, create_sessionmaker
        from shared.read.accounts import AccountFilter, find_accounts

        engine = create_engine(settings.database_url)
        result = Outcome()
        paths: set[Path] = set()
        try:
            async with create_sessionmaker(engine)() as session:
                accounts = await find_accounts(session, AccountFilter())
                for account in sorted(accounts, key=lambda a: a.account_id):
                    if not await existed_in(session, account, first, end):
                        result.not_customers.append(account.account_id)
                        continue
                    built = await build_report(session, account, first, today, keys, config)
                    page = render_html(built, config=config)
                    path = directory / report_filename(built)
                    if path in paths:  # the name's hash makes this a 48-bit coincidence
                        raise Failure(f"two accounts map to the report file {path}")
                    paths.add(path)
                    path.write_text(page, encoding="utf-8")
                    click.echo(str(path))
                    result.written += 1
                    msg = None
                    if email:
                        msg = _csm_message(built, page, settings)
                        if msg is None:
                            result.unaddressed.append(account.account_id)
                    elif send:
                        msg = await _customer_message(built, page, settings, result)
                    if msg is not None:
                        result.messages.append(msg)
        finally:
            await engine.dispose()
        return result

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise Failure(f"--out {directory}: {err.strerror}") from None
    done = run_db(settings.database_url, work())
    click.echo(f"Wrote {done.written} report(s) for {first:%Y-%m} to {directory}/")
    if done.not_customers:
        click.echo(
            f"Skipped {len(done.not_customers)} account(s) that were not customers in "
            f"{first:%Y-%m} (not started yet, or cancelled): {', '.join(done.not_customers)}"
        )
    if not (email or send):
        return
    try:
        results = asyncio.run(send_reports(settings, done.messages))
    except SmtpError as err:  # connecting, TLS or login failed: nothing was sent
        raise Failure(one_line(str(err))) from None
    failed = [(m["To"], error) for m, error in results if error is not None]
    whom = "the customers, the CSMs in copy" if send else "the accounts' CSMs"
    click.echo(f"Emailed {len(results) - len(failed)} report(s) to {whom}.")
    if done.unaddressed:
        why = "no customer_emails" if send else "no csm_email, no TEND_ALERTS__DEFAULT_EMAILS"
        click.echo(f"Not emailed ({why}): {', '.join(done.unaddressed)}")
    problems = [f"{to}: {error}" for to, error in failed]
    problems += [f"{aid}: the PDF could not be printed" for aid in done.unprinted]
    if problems:
        raise Failure(f"{len(problems)} report(s) not sent: " + "; ".join(problems))

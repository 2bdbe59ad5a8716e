"""``tend report``: the monthly value report of every account as HTML files, and by email."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from services.cli.common import (
    ConfigFailure,
    Failure,
    load_settings,
    load_tend_config,
    one_line,
    run_db,
)


@click.command()
@click.option("--month", metavar="YYYY-MM", help="The month (UTC); default: the last complete one.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the HTML files. [default: ./tend-reports/YYYY-MM]",
)
@click.option("--email", is_flag=True, help="Also send each report to the account's CSM (SMTP).")
def report(month: str | None, out: Path | None, email: bool) -> None:
    """Render the monthly value report of every account as HTML (and email it to the CSMs).

    Mail goes to the account's csm_email, else to TEND_ALERTS__DEFAULT_EMAILS, through the SMTP
    server of TEND_SMTP_HOST / _PORT / _USER / _PASSWORD / _FROM / _TLS.
    """
    from datetime import UTC, datetime
    from email.message import EmailMessage

    from services.alerts.routing import Defaults, email_refusal
    from services.web.reports.build import MonthError, build_report, last_month, parse_month
    from services.web.reports.render import render_html
    from services.web.reports.send import report_email, report_filename, send_reports
    from shared.smtp import SmtpError, SmtpNotConfigured, SmtpSettings

    settings = load_settings()
    config = load_tend_config(settings)
    if email:
        try:
            SmtpSettings.from_settings(settings, purpose="--email")
        except SmtpNotConfigured as err:
            raise ConfigFailure(str(err)) from None
    today = datetime.now(UTC).date()
    try:
        first = parse_month(month, today) if month is not None else last_month(today)
    except MonthError as err:
        raise ConfigFailure(f"--{err}") from None
    directory = out if out is not None else Path("tend-reports") / first.strftime("%Y-%m")
    keys = list(config.key_features) or None
    defaults = settings.alerts.default_email_list
    # A CSM address is account data: the domain list of alert mail applies here too.
    allowed = Defaults(email_domains=tuple(settings.alerts.email_domain_list))

    async def work() -> tuple[int, list[EmailMessage], list[str]]:
        from shared.db.session import create_engine, create_sessionmaker
        from shared.read.accounts import AccountFilter, find_accounts

        engine = create_engine(settings.database_url)
        written, messages, skipped = 0, [], []
        paths: set[Path] = set()
        try:
            async with create_sessionmaker(engine)() as session:
                accounts = await find_accounts(session, AccountFilter())
                for account in sorted(accounts, key=lambda a: a.account_id):
                    built = await build_report(session, account, first, today, keys)
                    page = render_html(built, config=config)
                    path = directory / report_filename(built)
                    if path in paths:  # the name's hash makes this a 48-bit coincidence
                        raise Failure(f"two accounts map to the report file {path}")
                    paths.add(path)
                    path.write_text(page, encoding="utf-8")
                    click.echo(str(path))
                    written += 1
                    if not email:
                        continue
                    csm = account.csm_email
                    refusal = email_refusal(csm, allowed) if csm else None
                    if refusal is not None:
                        click.echo(
                            f"{account.account_id}: not mailing csm_email {csm} ({refusal}); "
                            "the default addresses get it",
                            err=True,
                        )
                        csm = None
                    to = [csm] if csm else defaults
                    if not to:
                        skipped.append(account.account_id)
                        continue
                    messages.append(report_email(built, page, settings.smtp_from, to))
        finally:
            await engine.dispose()
        return written, messages, skipped

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise Failure(f"--out {directory}: {err.strerror}") from None
    written, messages, skipped = run_db(settings.database_url, work())
    click.echo(f"Wrote {written} report(s) for {first:%Y-%m} to {directory}/")
    if not email:
        return
    try:
        results = asyncio.run(send_reports(settings, messages))
    except SmtpError as err:  # connecting, TLS or login failed: nothing was sent
        raise Failure(one_line(str(err))) from None
    failed = [(m["To"], error) for m, error in results if error is not None]
    click.echo(f"Emailed {len(results) - len(failed)} report(s) to the accounts' CSMs.")
    if skipped:
        click.echo(
            f"Not emailed (no csm_email, no TEND_ALERTS__DEFAULT_EMAILS): {', '.join(skipped)}"
        )
    if failed:
        raise Failure(
            f"{len(failed)} report(s) not accepted by the SMTP server: "
            + "; ".join(f"{to}: {error}" for to, error in failed)
        )

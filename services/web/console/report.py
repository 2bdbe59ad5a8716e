"""The console's view of an account's monthly value report: the page the customer gets
(:mod:`services.web.reports`), for a signed-in person whose book holds the account. Registered
on the console's router by :mod:`services.web.console.routes`."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from services.web.console import plumbing as web
from services.web.console.plumbing import SECURITY_HEADERS, SessionDep
from services.web.deps import clock_of
from services.web.reports.build import (
    MonthError,
    build_report,
    key_features_of,
    last_month,
    parse_month,
)
from services.web.reports.render import render_html
from shared.config import TendConfig
from shared.people.caller import owns
from shared.read.accounts import get_account

OUTSIDE = "This account is not in your book, or there is no such account."

REPORT_HEADERS = {
    **SECURITY_HEADERS,
    # The report is one self-contained page: its only style is inline, and it loads nothing.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


async def reportpage(
    account_id: str, request: Request, session: SessionDep, month: str | None = None
) -> Response:
    """``/console/accounts/{id}/report?month=YYYY-MM`` (default: the last complete month)."""
    today = clock_of(request).now().date()
    try:
        first = parse_month(month, today) if month else last_month(today)
    except MonthError as err:
        return web.error(request, 422, str(err), session)
    config: TendConfig | None = getattr(request.app.state, "config", None)
    me = web.caller(session)
    async with web.database(request)() as db:
        account = await get_account(db, account_id)
        if account is None and me.book() is None:
            return web.error(request, 404, f"no account {account_id!r}", session)
        if account is None or not owns(me.book(), account):
            return web.error(request, 403, OUTSIDE, session)
        report = await build_report(db, account, first, today, key_features_of(config), config)
    return HTMLResponse(render_html(report, config=config), headers=REPORT_HEADERS)

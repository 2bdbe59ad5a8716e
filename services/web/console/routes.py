"""The CSM console: server-rendered pages under ``/console`` (portfolio, account, alerts,
retention, the latest backtest) and each account's monthly report.

Sign-in is with the API token (``app.state.api_token``, as for the APIs) and gives a signed,
HttpOnly, SameSite=Lax session cookie naming a session stored in the database (logout deletes
it). Failed sign-ins are throttled per client address (429 with Retry-After). Every POST
carries the session's CSRF token in a hidden field and is refused (403) without it. Every
response carries :data:`SECURITY_HEADERS`. Alert moves use the shared alert life cycle
(:mod:`shared.alerting`) under a row lock, exactly like the alerts API, so the console never
races the consumer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Annotated
from urllib.parse import parse_qsl, quote, urlencode

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.web.console import pages, report, retention, views
from services.web.console import plumbing as web
from services.web.console.auth import COOKIE, csrf_ok, end_session
from services.web.console.plumbing import (
    SECURITY_HEADERS,
    SessionDep,
    account_href,
    current_session,
    read_form,
    safe_next,
)
from services.web.deps import clock_of, policy_of, webhooks_of
from services.web.templating import TEMPLATES_DIR
from shared.alerting.lifecycle import AlertState, LifecycleError, acknowledge, resolve, snooze
from shared.alerting.state import apply_move, move_incident
from shared.api_input import is_id, storable_params
from shared.backtest.runs import latest_run
from shared.config import TendConfig
from shared.db.models import Account
from shared.outcomes.model import STAGES
from shared.outcomes.stages import current_stages
from shared.people import audit
from shared.people.caller import Caller, owns
from shared.people.directory import find_person
from shared.people.passwords import verify_password
from shared.read.alerts import get_alert
from shared.webhooks.outbox import AlertChange, record_alert_changes

__all__ = ["SECURITY_HEADERS", "router"]

_OUTSIDE = report.OUTSIDE
_LEADERS = "This page is for leaders and admins."

router = APIRouter(
    prefix="/console", include_in_schema=False, dependencies=[Depends(storable_params)]
)

STATIC_DIR = TEMPLATES_DIR.parent / "static"
_static = StaticFiles(directory=STATIC_DIR)


# -- sign in and out ---------------------------------------------------------------------------


@router.get("")
async def console_root() -> Response:
    return web.redirect("/console/")


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    if await current_session(request) is not None:
        return web.redirect(safe_next(next))
    return web.login(request, None, safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    next_url = safe_next(form.get("next"))
    expected = web.api_token(request)
    throttle = web.throttle(request)
    email = form.get("email", "").strip().lower()[:320]
    keys = (request.client.host if request.client else "unknown",)
    now = time.time()
    waits = [w for w in (throttle.retry_after(k, now) for k in keys) if w is not None]
    if waits:
        error = f"Too many failed sign-ins; try again in {max(waits)} seconds."
        return web.login(request, error, next_url, 429, **{"Retry-After": str(max(waits))})
    if not expected:
        error = "The console is closed: no API token is configured (set TEND_API_TOKEN)."
        return web.login(request, error, next_url, 401)
    async with web.database(request)() as db:
        person = await find_person(db, email) if email else None
    stored = person.password_hash if person is not None else None
    # argon2 takes tens of milliseconds of CPU and 64 MiB on purpose: off the event loop.
    good = await anyio.to_thread.run_sync(verify_password, stored, form.get("password", ""))
    if not good or person is None:
        for key in keys:
            throttle.failed(key, now)
        return web.login(request, "Wrong email or password.", next_url, 401)
    if person.disabled_at is not None:
        return web.login(request, "This person is disabled; ask an admin.", next_url, 403)
    for key in keys:
        throttle.succeeded(key)
    return await web.signed_in(request, person.id, next_url, now)


@router.post("/logout")
async def logout(request: Request) -> Response:
    session = await current_session(request)
    if session is not None:
        form = await read_form(request)
        if not csrf_ok(session, form.get("csrf")):
            return web.forbidden(request, session)
        async with web.database(request)() as db, db.begin():
            await end_session(db, session.sid)
    response = web.redirect("/console/login")
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="lax")
    return response


# -- pages -------------------------------------------------------------------------------------


def portfolio_filter(
    csm: str | None, band: str | None, renewal: str | None, stage: str | None, sort: str | None
) -> views.PortfolioFilter:
    days = int(renewal) if renewal and renewal.isascii() and renewal.isdigit() else None
    return views.PortfolioFilter(
        csm=csm or None,
        band=band if band in views.BANDS else None,
        renewal_days=days if days in views.RENEWAL_WINDOWS else None,
        stage=stage if stage in STAGES else None,
        sort=sort if sort in views.SORT_KEYS else "score",
    )


@router.get("/")
async def portfoliopage(
    request: Request,
    session: SessionDep,
    csm: str | None = None,
    band: str | None = None,
    renewal: str | None = None,
    stage: str | None = None,
    sort: str | None = None,
) -> Response:
    f = replace(portfolio_filter(csm, band, renewal, stage, sort), book=web.caller(session).book())
    today = clock_of(request).now().date()
    async with web.database(request)() as db:
        data = await views.portfolio(db, f, today, policy_of(request))
    context = pages.portfolio_context(data, views.BANDS, views.RENEWAL_WINDOWS)
    return web.page(request, "portfolio.html", {**context, "filter": f, "csrf": session.csrf})


@router.get("/accounts/{account_id}")
async def accountpage(
    account_id: str, request: Request, session: SessionDep, notice: str | None = None
) -> Response:
    now = clock_of(request).now()
    me = web.caller(session)
    async with web.database(request)() as db:
        data = await views.account_page(db, account_id)
        if data is None and me.book() is None:
            return web.error(request, 404, f"no account {account_id!r}", session)
        if data is None or not owns(me.book(), data.account):
            return web.error(request, 403, _OUTSIDE, session)
        stages = await current_stages(db, [account_id], now.date(), policy_of(request))
        by = await audit.movers(db, [x.id for x in data.alerts])
    a = data.account
    context = pages.account_context(
        data,
        moves=pages.Moves.of(
            session.csrf, account_href(account_id), now, by, owns(me.write_book(), a)
        ),
        today=now.date(),
        bands=web.bands(request),
        notice=notice,
        csm=views.csm_label(a.csm_email, a.csm_slack),
        stage=stages.get(account_id),
    )
    return web.page(request, "account.html", {**context, "csrf": session.csrf})


router.get("/accounts/{account_id}/report")(report.reportpage)


@router.get("/retention")
async def retentionpage(
    request: Request,
    session: SessionDep,
    start: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
    by: str | None = None,
) -> Response:
    if not web.caller(session).sees_all:
        return web.error(request, 403, _LEADERS, session)
    query = retention.parse_query(start, to, by, clock_of(request).now().date())
    config: TendConfig | None = getattr(request.app.state, "config", None)
    keys = config.key_features if config is not None else ()
    async with web.database(request)() as db:
        context = await retention.page_context(db, query, policy_of(request), keys)
    return web.page(request, "retention.html", {**context, "csrf": session.csrf})


@router.get("/alerts")
async def alertspage(
    request: Request,
    session: SessionDep,
    csm: str | None = None,
    severity: str | None = None,
    rule: str | None = None,
    notice: str | None = None,
) -> Response:
    f = views.AlertsFilter(
        csm=csm or None,
        severity=severity if severity in views.SEVERITY_RANK else None,
        rule=rule or None,
        book=web.caller(session).book(),
    )
    back = "/console/alerts" + (f"?{query}" if (query := _query_of(f)) else "")
    async with web.database(request)() as db:
        found = await views.open_alerts(db, f)
        csms = await views.csm_names(db, f.book)
        by = await audit.movers(db, [a.id for a in found.alerts])
    moves = pages.Moves.of(session.csrf, back, clock_of(request).now(), by)
    context = pages.alerts_context(found, f, csms, views.csm_label, moves)
    notice_text = pages.NOTICES.get(notice or "")
    return web.page(
        request, "alerts.html", {**context, "notice_text": notice_text, "csrf": session.csrf}
    )


def _query_of(f: views.AlertsFilter) -> str:
    return urlencode(
        [(k, v) for k, v in (("csm", f.csm), ("severity", f.severity), ("rule", f.rule)) if v]
    )


def _back_with(back: str, notice: str, anchor: str) -> str:
    """``back`` (a console path, maybe with a query) with ``notice`` in its query."""
    path, _, rest = back.partition("?")
    query = [(k, v) for k, v in parse_qsl(rest.split("#", 1)[0]) if k != "notice"]
    return f"{path.split('#', 1)[0]}?{urlencode([*query, ('notice', notice)])}#{anchor}"


@router.get("/backtest")
async def backtestpage(request: Request, session: SessionDep) -> Response:
    """The latest ``tend backtest`` run, as it saved it (shared.backtest.runs)."""
    if not web.caller(session).sees_all:
        return web.error(request, 403, _LEADERS, session)
    async with web.database(request)() as db:
        run = await latest_run(db)
    return web.page(request, "backtest.html", {"run": run, "csrf": session.csrf})


# -- alert moves -------------------------------------------------------------------------------


def parse_until(value: str | None) -> datetime | None:
    """``YYYY-MM-DD HH:MM`` (the snooze field, read as UTC), ``YYYY-MM-DD`` or full ISO 8601."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value.strip().replace(" ", "T"))
    except ValueError:
        try:
            day = date.fromisoformat(value.strip())
        except ValueError:
            return None
        at = datetime(day.year, day.month, day.day)
    try:
        return at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00-05:00: no such time in UTC
        return None


async def _move(
    request: Request,
    alert_id: int,
    move: Callable[[AlertState, datetime], AlertState],
    action: str,
    reason: str | None,
) -> str:
    """Apply ``move`` under a row lock, recorded in the audit log; returns the notice to show."""
    now = clock_of(request).now()
    me: Caller = request.state.caller
    async with web.database(request)() as db, db.begin():
        row = await get_alert(db, alert_id, lock=True)
        if row is None or row.status in ("none", "pending"):
            return "not-found"
        if not owns(me.write_book(), await db.get(Account, row.account_id)):
            return pages.NOT_YOURS
        try:
            before = apply_move(row, move, now)
        except LifecycleError:
            return "conflict"
        audit.record_alert_move(db, me, row, action, reason, now, "console")
        record_alert_changes(db, webhooks_of(request), [(row, before)], now)
    return ""


@router.post("/alerts/{alert_id}/{action}")
async def alert_action(
    alert_id: str, action: str, request: Request, session: SessionDep
) -> Response:
    form = await read_form(request)
    if not csrf_ok(session, form.get("csrf")):
        return web.forbidden(request, session)
    if action not in ("ack", "snooze", "resolve") or not is_id(alert_id):
        return web.error(request, 404, "no such alert action", session)
    back = safe_next(form.get("next"), "/console/alerts")
    move, done = _move_of(action, form, clock_of(request).now())
    reason = (form.get("reason") or "")[:1000] if action == "snooze" else None
    moved = await _move(request, int(alert_id), move, action, reason) if move else ""
    if moved == pages.NOT_YOURS:
        return web.error(request, 403, _OUTSIDE, session)
    notice = moved or done
    return web.redirect(_back_with(back, notice, f"alert-{quote(alert_id)}"))


def _move_of(
    action: str, form: dict[str, str], now: datetime
) -> tuple[Callable[[AlertState, datetime], AlertState] | None, str]:
    """The move a form asks for and the notice when it is done (no move: the notice why)."""
    if action == "ack":
        return acknowledge, "acknowledged"
    if action == "resolve":
        return resolve, "resolved"
    until = parse_until(form.get("until"))
    if until is None or until <= now:
        return None, "bad-until"
    reason = (form.get("reason") or "")[:1000]
    return (lambda s, t: snooze(s, until, reason, t)), "snoozed"


@router.post("/accounts/{account_id}/alerts/{action}")
async def account_alerts_action(
    account_id: str, action: str, request: Request, session: SessionDep
) -> Response:
    """Acknowledge, snooze or resolve every open alert of an account (one incident)."""
    form = await read_form(request)
    if not csrf_ok(session, form.get("csrf")):
        return web.forbidden(request, session)
    if action not in ("ack", "snooze", "resolve"):
        return web.error(request, 404, "no such alert action", session)
    back = safe_next(form.get("next"), account_href(account_id))
    now = clock_of(request).now()
    move, notice = _move_of(action, form, now)
    me = web.caller(session)
    if move is not None:
        async with web.database(request)() as db, db.begin():
            changes: list[AlertChange] = []
            if not owns(me.write_book(), await db.get(Account, account_id)):
                return web.error(request, 403, _OUTSIDE, session)
            elif not (moved := await move_incident(db, account_id, move, now, changes)):
                notice = "not-found"
            else:
                reason = (form.get("reason") or "")[:1000] if action == "snooze" else None
                for row in moved:
                    audit.record_alert_move(db, me, row, action, reason, now, "console")
                record_alert_changes(db, webhooks_of(request), changes, now)
    return web.redirect(_back_with(back, notice, "incident"))


# -- static ------------------------------------------------------------------------------------


@router.get("/static/{path:path}")
async def static(path: str, request: Request) -> Response:
    """``services/web/static/`` through Starlette's StaticFiles (content types, ETag and
    Last-Modified, 304s, no path escapes), for any app that includes this router (a router's
    own mounts do not follow it into every app)."""
    try:
        response = await _static.get_response(path, request.scope)
    except StarletteHTTPException as exc:
        return Response("not found", status_code=exc.status_code, media_type="text/plain")
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@router.get("/{path:path}")
async def not_found(request: Request) -> Response:
    """Any other console address: an HTML 404 with the console's headers (not the app's JSON),
    also where the path exists for another method (``GET /console/logout``)."""
    return web.error(request, 404, "no such page", await current_session(request))

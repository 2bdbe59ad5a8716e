"""The CSM console: server-rendered pages under ``/console`` (portfolio, account, alerts).

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
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.web.console import templates, views
from services.web.console.auth import (
    COOKIE,
    ConsoleSession,
    SignInThrottle,
    csrf_ok,
    end_session,
    issue,
    new_sid,
    open_session,
    session_open,
    verify,
)
from shared.alerting.lifecycle import AlertState, LifecycleError, acknowledge, resolve, snooze
from shared.alerting.state import apply_move, move_incident
from shared.api_auth import token_matches
from shared.api_input import is_id, storable, storable_params
from shared.clock import Clock, SystemClock
from shared.config import TendConfig
from shared.read.alerts import get_alert
from shared.settings import ConsoleSettings

router = APIRouter(
    prefix="/console", include_in_schema=False, dependencies=[Depends(storable_params)]
)

STATIC_DIR = Path(__file__).parent.parent / "static"
STATIC_FILES = {"console.css": "text/css", "favicon.svg": "image/svg+xml"}
MAX_FORM_BYTES = 64 * 1024
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self'; img-src 'self' data:; script-src 'none'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

# -- plumbing ----------------------------------------------------------------------------------


def _api_token(request: Request) -> str | None:
    token: str | None = getattr(request.app.state, "api_token", None)
    return token


def _clock(request: Request) -> Clock:
    clock: Clock | None = getattr(request.app.state, "clock", None)
    return clock or SystemClock()


def _bands(request: Request) -> tuple[float, float]:
    config: TendConfig | None = getattr(request.app.state, "config", None)
    bands = (config or TendConfig()).scoring.bands
    return bands.green, bands.yellow


def _settings(request: Request) -> ConsoleSettings:
    settings: ConsoleSettings | None = getattr(request.app.state, "console", None)
    return settings or ConsoleSettings()


def _throttle(request: Request) -> SignInThrottle:
    """One throttle per app, made on first use with the app's console settings."""
    throttle: SignInThrottle | None = getattr(request.app.state, "console_throttle", None)
    if throttle is None:
        s = _settings(request)
        throttle = SignInThrottle(s.signin_max_failures, s.signin_window_s)
        request.app.state.console_throttle = throttle
    return throttle


def _html(body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def safe_next(value: str | None, default: str = "/console/") -> str:
    """A local console path to go back to; anything else (another host, ``//x``) is ignored."""
    if not value or not value.startswith("/console") or "\\" in value or "//" in value:
        return default
    return value


def _login_url(request: Request) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/console/login?" + urlencode({"next": here})


async def current_session(request: Request) -> ConsoleSession | None:
    """The cookie's session when it is genuine, unexpired and still open on the server."""
    now = time.time()
    session = verify(_api_token(request), request.cookies.get(COOKIE), now)
    if session is None:
        return None
    async with _db(request)() as db:
        return session if await session_open(db, session.sid, now) else None


async def require_session(request: Request) -> ConsoleSession:
    """The signed-in session; otherwise a 303 to the sign-in page (which comes back here)."""
    session = await current_session(request)
    if session is None:
        raise HTTPException(
            303,
            detail="sign in first",
            headers={**SECURITY_HEADERS, "Location": _login_url(request)},
        )
    return session


SessionDep = Annotated[ConsoleSession, Depends(require_session)]


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the first value of each field)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, detail="form too large", headers=SECURITY_HEADERS)
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        return {}
    form = {k: v[0] for k, v in parsed.items()}
    for name, value in form.items():
        if not storable(value):
            raise HTTPException(
                422, detail=f"{name}: contains NUL or a lone surrogate", headers=SECURITY_HEADERS
            )
    return form


def _forbidden(session: ConsoleSession | None) -> HTMLResponse:
    return _html(
        templates.error_page(
            403,
            "this form has expired or did not come from the console; go back, reload and retry",
            csrf=session.csrf if session else None,
        ),
        403,
    )


def _db(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return sessions


# -- sign in and out ---------------------------------------------------------------------------


@router.get("")
async def console_root() -> Response:
    return _redirect("/console/")


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    if await current_session(request) is not None:
        return _redirect(safe_next(next))
    return _html(templates.login_page(error=None, next_url=safe_next(next)))


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    next_url = safe_next(form.get("next"))
    expected = _api_token(request)
    settings = _settings(request)
    throttle = _throttle(request)
    client = request.client.host if request.client else "unknown"
    now = time.time()
    wait = throttle.retry_after(client, now)
    if wait is not None:
        error = f"Too many failed sign-ins from your address; try again in {wait} seconds."
        page = templates.login_page(error=error, next_url=next_url)
        return _html(page, 429, {"Retry-After": str(wait)})
    if not token_matches(expected, form.get("token", "").strip()):
        throttle.failed(client, now)
        error = (
            "That is not the API token of this installation."
            if expected
            else "The console is closed: no API token is configured (set TEND_API_TOKEN)."
        )
        return _html(templates.login_page(error=error, next_url=next_url), 401)
    assert expected is not None
    throttle.succeeded(client)
    sid = new_sid()
    async with _db(request)() as db, db.begin():
        await open_session(db, sid, now, settings.session_max_age_s)
    secure = settings.cookie_secure
    response = _redirect(next_url)
    response.set_cookie(
        COOKIE,
        issue(expected, now, sid, settings.session_max_age_s),
        max_age=settings.session_max_age_s,
        path="/console",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https" if secure is None else secure,
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    session = await current_session(request)
    if session is not None:
        form = await read_form(request)
        if not csrf_ok(session, form.get("csrf")):
            return _forbidden(session)
        async with _db(request)() as db, db.begin():
            await end_session(db, session.sid)
    response = _redirect("/console/login")
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="lax")
    return response


# -- pages -------------------------------------------------------------------------------------


def _filter(
    csm: str | None, band: str | None, renewal: str | None, sort: str | None
) -> views.PortfolioFilter:
    days = int(renewal) if renewal and renewal.isascii() and renewal.isdigit() else None
    return views.PortfolioFilter(
        csm=csm or None,
        band=band if band in views.BANDS else None,
        renewal_days=days if days in views.RENEWAL_WINDOWS else None,
        sort=sort if sort in views.SORT_KEYS else "score",
    )


@router.get("/")
async def portfolio_page(
    request: Request,
    session: SessionDep,
    csm: str | None = None,
    band: str | None = None,
    renewal: str | None = None,
    sort: str | None = None,
) -> Response:
    f = _filter(csm, band, renewal, sort)
    today = _clock(request).now().date()
    async with _db(request)() as db:
        data = await views.portfolio(db, f, today)
    return _html(templates.portfolio_page(data, f, session.csrf))


@router.get("/accounts/{account_id}")
async def account_page(
    account_id: str, request: Request, session: SessionDep, notice: str | None = None
) -> Response:
    async with _db(request)() as db:
        data = await views.account_page(db, account_id)
    if data is None:
        return _html(
            templates.error_page(404, f"no account {account_id!r}", csrf=session.csrf), 404
        )
    now = _clock(request).now()
    green, yellow = _bands(request)
    body = templates.account_page(
        data,
        csrf=session.csrf,
        now=now,
        today=now.date(),
        green=green,
        yellow=yellow,
        notice=notice,
    )
    return _html(body)


@router.get("/alerts")
async def alerts_page(request: Request, session: SessionDep, csm: str | None = None) -> Response:
    async with _db(request)() as db:
        groups = await views.open_alerts(db, csm or None)
        csms = await views.csm_names(db)
        health = await views.current_health(
            db, [a.account_id for alerts in groups.values() for a in alerts]
        )
    return _html(templates.alerts_page(groups, health, csms, csm or None, session.csrf))


# -- alert moves -------------------------------------------------------------------------------


def parse_until(value: str | None) -> datetime | None:
    """``YYYY-MM-DDTHH:MM`` (a datetime-local field, read as UTC) or full ISO 8601."""
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
) -> str:
    """Apply ``move`` under a row lock; returns the notice to show."""
    now = _clock(request).now()
    async with _db(request)() as db, db.begin():
        row = await get_alert(db, alert_id, lock=True)
        if row is None or row.status in ("none", "pending"):
            return "not-found"
        try:
            apply_move(row, move, now)
        except LifecycleError:
            return "conflict"
    return ""


@router.post("/alerts/{alert_id}/{action}")
async def alert_action(
    alert_id: str, action: str, request: Request, session: SessionDep
) -> Response:
    form = await read_form(request)
    if not csrf_ok(session, form.get("csrf")):
        return _forbidden(session)
    if action not in ("ack", "snooze", "resolve") or not is_id(alert_id):
        return _html(templates.error_page(404, "no such alert action", csrf=session.csrf), 404)
    back = safe_next(form.get("next"), "/console/alerts")
    move, done = _move_of(action, form, _clock(request).now())
    notice = (await _move(request, int(alert_id), move) or done) if move else done
    path = back.split("?", 1)[0].split("#", 1)[0]
    return _redirect(f"{path}?{urlencode({'notice': notice})}#alert-{quote(alert_id)}")


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
        return _forbidden(session)
    if action not in ("ack", "snooze", "resolve"):
        return _html(templates.error_page(404, "no such alert action", csrf=session.csrf), 404)
    back = safe_next(form.get("next"), templates.account_href(account_id))
    now = _clock(request).now()
    move, notice = _move_of(action, form, now)
    if move is not None:
        async with _db(request)() as db, db.begin():
            if not await move_incident(db, account_id, move, now):
                notice = "not-found"
    path = back.split("?", 1)[0].split("#", 1)[0]
    return _redirect(f"{path}?{urlencode({'notice': notice})}#incident")


# -- static ------------------------------------------------------------------------------------


@router.get("/static/{name}")
async def static(name: str) -> Response:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(
        (STATIC_DIR / name).read_bytes(),
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/{path:path}")
async def not_found(request: Request) -> Response:
    """Any other console address: an HTML 404 with the console's headers (not the app's JSON),
    also where the path exists for another method (``GET /console/logout``)."""
    session = await current_session(request)
    return _html(
        templates.error_page(404, "no such page", csrf=session.csrf if session else None), 404
    )

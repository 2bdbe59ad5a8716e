"""The console's request plumbing: the app state it reads, page rendering with the console's
security headers, the signed-in session as a dependency, and form parsing. The routes are in
:mod:`services.web.console.routes`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from services.web.charts import Bands
from services.web.console.auth import (
    COOKIE,
    ConsoleSession,
    SignInThrottle,
    issue,
    new_sid,
    open_session,
    session_person,
    verify,
)
from services.web.templating import environment
from shared.api_auth import people_settings
from shared.api_input import storable
from shared.config import TendConfig
from shared.people.caller import Caller
from shared.people.directory import caller_of
from shared.settings import ConsoleSettings

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

_templates = Jinja2Templates(env=environment())


def api_token(request: Request) -> str | None:
    token: str | None = getattr(request.app.state, "api_token", None)
    return token


def bands(request: Request) -> Bands:
    config: TendConfig | None = getattr(request.app.state, "config", None)
    scoring = (config or TendConfig()).scoring
    return Bands(green=scoring.bands.green, yellow=scoring.bands.yellow)


def currency(request: Request) -> str:
    """The ISO code amounts are shown in (the configuration's ``currency``)."""
    config: TendConfig | None = getattr(request.app.state, "config", None)
    return (config or TendConfig()).currency


def settings(request: Request) -> ConsoleSettings:
    given: ConsoleSettings | None = getattr(request.app.state, "console", None)
    return given or ConsoleSettings()


def throttle(request: Request) -> SignInThrottle:
    """One throttle per app, made on first use with the app's console settings."""
    made: SignInThrottle | None = getattr(request.app.state, "console_throttle", None)
    if made is None:
        s = settings(request)
        made = SignInThrottle(s.signin_max_failures, s.signin_window_s)
        request.app.state.console_throttle = made
    return made


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """``templates/console/<template>`` rendered with ``context`` (and the configured
    ``currency`` and the signed-in caller, ``me``), with the console's headers."""
    me = getattr(request.state, "caller", None)
    response: HTMLResponse = _templates.TemplateResponse(
        request,
        f"console/{template}",
        {"currency": currency(request), "me": me, **context},
        status_code=status,
        headers={**SECURITY_HEADERS, **(headers or {})},
    )
    return response


def error(
    request: Request, status: int, message: str, session: ConsoleSession | None
) -> HTMLResponse:
    context = {"status": status, "message": message, "csrf": session.csrf if session else None}
    return page(request, "error.html", context, status)


def login(
    request: Request, problem: str | None, next_url: str, status: int = 200, **headers: str
) -> HTMLResponse:
    """The sign-in page, with ``problem`` (why the last try failed) when there is one."""
    oidc: str | None = getattr(request.app.state, "oidc_name", None)
    context = {"error": problem, "next_url": next_url, "oidc": oidc}
    return page(request, "login.html", context, status, headers)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def account_href(account_id: str) -> str:
    return f"/console/accounts/{quote(account_id, safe='')}"


def safe_next(value: str | None, default: str = "/console/") -> str:
    """A local console path to go back to; anything else (another host, ``//x``) is ignored."""
    if not value or not value.startswith("/console") or "\\" in value or "//" in value:
        return default
    return value


def login_url(request: Request) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/console/login?" + urlencode({"next": here})


async def current_session(request: Request) -> ConsoleSession | None:
    """The cookie's session when it is genuine, unexpired, still open on the server and its
    person enabled; it names the caller (also kept on ``request.state.caller``)."""
    now = time.time()
    session = verify(api_token(request), request.cookies.get(COOKIE), now)
    if session is None:
        return None
    async with database(request)() as db:
        person = await session_person(db, session.sid, now)
    if person is None:
        return None
    caller = caller_of(person, people_settings(request).csm_read_all)
    request.state.caller = caller
    return replace(session, caller=caller)


def caller(session: ConsoleSession) -> Caller:
    assert session.caller is not None  # a session from current_session always names one
    return session.caller


async def require_session(request: Request) -> ConsoleSession:
    """The signed-in session; otherwise a 303 to the sign-in page (which comes back here)."""
    session = await current_session(request)
    if session is None:
        raise HTTPException(
            303,
            detail="sign in first",
            headers={**SECURITY_HEADERS, "Location": login_url(request)},
        )
    return session


SessionDep = Annotated[ConsoleSession, Depends(require_session)]


async def read_form(request: Request) -> dict[str, str]:
    """The posted form, parsed by Starlette (the first value of each text field; at most
    :data:`MAX_FORM_BYTES` and 50 fields, no files). A field that could not be stored is a 422
    naming it."""
    body = await request.body()  # read first: the size is checked before any parsing
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, detail="form too large", headers=SECURITY_HEADERS)
    try:
        parsed = await request.form(max_fields=50, max_files=0)
    except (MultiPartException, StarletteHTTPException):
        return {}
    form: dict[str, str] = {}
    for name, value in parsed.multi_items():
        if isinstance(value, str):
            form.setdefault(name, value)
    for name, value in form.items():
        if not storable(value):
            raise HTTPException(
                422, detail=f"{name}: contains NUL or a lone surrogate", headers=SECURITY_HEADERS
            )
    return form


def forbidden(request: Request, session: ConsoleSession | None) -> HTMLResponse:
    message = "this form has expired or did not come from the console; go back, reload and retry"
    return error(request, 403, message, session)


def database(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return sessions


async def signed_in(request: Request, person_id: int, next_url: str, now: float) -> Response:
    """Open a server-side session of ``person_id`` and answer with its cookie and a redirect."""
    expected = api_token(request)
    assert expected is not None
    s = settings(request)
    sid = new_sid()
    async with database(request)() as db, db.begin():
        await open_session(db, sid, now, s.session_max_age_s, person_id)
    response = redirect(next_url)
    response.set_cookie(
        COOKIE,
        issue(expected, now, sid, s.session_max_age_s),
        max_age=s.session_max_age_s,
        path="/console",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https" if s.cookie_secure is None else s.cookie_secure,
    )
    return response

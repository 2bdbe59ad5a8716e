"""Console pages of people: your API tokens (make one, shown once; revoke one) and, for
admins, the audit log. Same sessions, CSRF and headers as every console page."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.web.console import plumbing as web
from services.web.console.auth import csrf_ok
from services.web.console.plumbing import SessionDep, read_form
from shared.api_input import is_id, storable_params
from shared.people import audit, directory
from shared.people.directory import PeopleError

router = APIRouter(
    prefix="/console", include_in_schema=False, dependencies=[Depends(storable_params)]
)


async def _tokens_page(
    request: Request, session: SessionDep, made: str | None = None, problem: str | None = None
) -> Response:
    me = web.caller(session)
    assert me.person_id is not None
    async with web.database(request)() as db:
        tokens = await directory.list_tokens(db, me.person_id)
    context = {"tokens": tokens, "made": made, "problem": problem, "csrf": session.csrf}
    return web.page(request, "tokens.html", context, 422 if problem else 200)


@router.get("/tokens")
async def tokenspage(request: Request, session: SessionDep) -> Response:
    return await _tokens_page(request, session)


@router.post("/tokens")
async def make_token(request: Request, session: SessionDep) -> Response:
    form = await read_form(request)
    if not csrf_ok(session, form.get("csrf")):
        return web.forbidden(request, session)
    me = web.caller(session)
    assert me.person_id is not None
    try:
        async with web.database(request)() as db, db.begin():
            row, plaintext = await directory.create_token(db, me.person_id, form.get("name", ""))
            audit.record(
                db,
                me,
                "token.create",
                target=f"token:{row.id}",
                details={"name": row.name, "prefix": row.prefix, "via": "console"},
            )
    except PeopleError as err:
        return await _tokens_page(request, session, problem=str(err))
    return await _tokens_page(request, session, made=plaintext)


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(token_id: str, request: Request, session: SessionDep) -> Response:
    form = await read_form(request)
    if not csrf_ok(session, form.get("csrf")):
        return web.forbidden(request, session)
    me = web.caller(session)
    async with web.database(request)() as db, db.begin():
        row = (
            await directory.revoke_token(db, me.person_id, int(token_id))
            if is_id(token_id)
            else None
        )
        if row is None:
            return web.error(request, 404, "no such token of yours", session)
        audit.record(
            db,
            me,
            "token.revoke",
            target=f"token:{row.id}",
            details={"name": row.name, "prefix": row.prefix, "via": "console"},
        )
    return web.redirect("/console/tokens")


@router.get("/audit")
async def auditpage(
    request: Request,
    session: SessionDep,
    action: str | None = None,
    actor: str | None = None,
    account: str | None = None,
) -> Response:
    """The audit log, newest first (admins only)."""
    if web.caller(session).role != "admin":
        return web.error(request, 403, "The audit log is for admins.", session)
    query = audit.AuditQuery(
        action if action in audit.ACTIONS else None, actor or None, account or None, 200, 0
    )
    async with web.database(request)() as db:
        total, entries = await audit.entries(db, query)
    context = {
        "entries": entries,
        "total": total,
        "actions": audit.ACTIONS,
        "query": query,
        "csrf": session.csrf,
    }
    return web.page(request, "audit.html", context)

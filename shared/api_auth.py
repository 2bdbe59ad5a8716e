"""Bearer auth for the web APIs: the admin token (``TEND_API_TOKEN``, for automation) or a
person's API token (``tend_pt_...``, acting with that person's role and book).

The caller is resolved on every request (a revoked token or a disabled person stops working at
once) and kept on ``request.state.caller`` for the route (:data:`CallerDep`)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, params, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import Account
from shared.people.caller import ADMIN_TOKEN, Caller, Role, owns
from shared.people.directory import caller_of, person_of_token
from shared.settings import PeopleSettings

_bearer = HTTPBearer(auto_error=False, description="TEND_API_TOKEN or a personal API token")


def token_matches(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def people_settings(request: Request) -> PeopleSettings:
    given: PeopleSettings | None = getattr(request.app.state, "people", None)
    return given or PeopleSettings()


async def caller_of_token(request: Request, given: str | None) -> Caller | None:
    """The caller a bearer token stands for, or None."""
    if not given:
        return None
    expected: str | None = getattr(request.app.state, "api_token", None)
    if token_matches(expected, given):
        return ADMIN_TOKEN
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as db:
        person = await person_of_token(db, given)
    if person is None:
        return None
    return caller_of(person, people_settings(request).csm_read_all)


async def require_token(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """401 unless the request carries ``Authorization: Bearer <token>`` of the admin token or
    of an enabled person's unrevoked API token. With neither configured, every request is
    refused: the API is closed, not open."""
    caller = await caller_of_token(request, creds.credentials if creds is not None else None)
    if caller is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong bearer token (TEND_API_TOKEN or a personal API token)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(require_token)]


def require_role(*roles: Role) -> params.Depends:
    """A dependency: 403 unless the caller has one of ``roles``."""

    async def check(caller: CallerDep) -> Caller:
        if caller.role not in roles:
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"this needs the role {' or '.join(roles)} (you are {caller.role})",
            )
        return caller

    depends: params.Depends = Depends(check)
    return depends


def outside_book(caller: Caller, account_id: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_403_FORBIDDEN,
        detail=f"account {account_id!r} is not in your book ({caller.email})",
    )


async def guard_account(
    db: AsyncSession, caller: Caller, account_id: str, *, write: bool = False
) -> None:
    """403 unless the caller may read (``write``: act on) this account. The same answer whether
    or not the account exists, so a CSM learns nothing about accounts outside their book."""
    book = caller.write_book() if write else caller.book()
    if book is None:
        return
    if not owns(book, await db.get(Account, account_id)):
        raise outside_book(caller, account_id)

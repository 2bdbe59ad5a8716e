"""Bearer-token auth for the read and alert APIs (``TEND_API_TOKEN``)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(auto_error=False, description="TEND_API_TOKEN")


def token_matches(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


async def require_token(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the request carries ``Authorization: Bearer <TEND_API_TOKEN>``.

    The token is read from ``app.state.api_token`` (set by the service at start). With no
    token configured the API is closed, not open: every request is refused.
    """
    expected: str | None = getattr(request.app.state, "api_token", None)
    given = creds.credentials if creds is not None else None
    if not token_matches(expected, given):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong bearer token (Authorization: Bearer $TEND_API_TOKEN)",
            headers={"WWW-Authenticate": "Bearer"},
        )

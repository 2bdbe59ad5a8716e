"""CORS on the tracking routes only, so browser SDKs on the customer's own site can send.

Browser SDKs call the tracking API from the customer's origin: analytics.js (Segment's
``@segment/analytics-next``) posts ``text/plain`` with the write key both in the body and as
``Authorization: Basic`` (and ``X-Retry-Count`` on retries), which the browser preflights with
``OPTIONS``; RudderStack's SDK posts JSON with ``Authorization: Basic`` and an ``AnonymousId``
header, preflighted too. Both need ``Access-Control-Allow-Origin`` on the answer, or the
page sees "Failed to fetch" and sends again.

:class:`TrackingCors` guarantees, for the tracking paths and nothing else (the read and alerts
APIs and the console that ``tend up`` serves from the same app get no CORS headers):

- preflights are answered for the allowed origins, for POST and :data:`ALLOWED_HEADERS`;
- answers carry ``Access-Control-Allow-Origin`` and expose ``Retry-After``;
- credentials (cookies) are never allowed: the write key is all a caller needs;
- when the origins are narrowed, a request from another origin is refused with 403 before
  anything is read or stored (a simple request is sent by the browser anyway, and CORS alone
  would only hide the answer, not stop the event).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Final

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.api_errors import SEGMENT, ApiError

ALLOWED_HEADERS: Final = (
    "Authorization",  # RudderStack: Basic with the write key
    "Content-Type",  # application/json;charset=UTF-8 (RudderStack), text/plain (analytics.js)
    "AnonymousId",  # RudderStack: base64 of the anonymous id, for ordering
    "Accept",
    "X-Write-Key",
    "Content-Encoding",  # gzip bodies
    "X-Retry-Count",  # analytics-next: set on every retry (both delivery modes)
)
EXPOSED_HEADERS: Final = ("Retry-After", "X-RateLimit-Reset")
PREFLIGHT_MAX_AGE_S: Final = 7200
"""How long a browser may reuse a preflight answer (Chromium caps it at two hours)."""


class TrackingCors:
    """ASGI middleware: CORS for ``paths``, everything else passed through untouched."""

    def __init__(self, app: ASGIApp, *, origins: Sequence[str], paths: Collection[str]) -> None:
        self.app = app
        self.paths = frozenset(paths)
        self.any_origin = "*" in origins
        self.origins = frozenset(o.rstrip("/") for o in origins if o != "*")
        self.cors = CORSMiddleware(
            app,
            allow_origins=["*"] if self.any_origin else sorted(self.origins),
            allow_methods=["POST"],
            allow_headers=list(ALLOWED_HEADERS),
            allow_credentials=False,
            expose_headers=list(EXPOSED_HEADERS),
            max_age=PREFLIGHT_MAX_AGE_S,
        )

    def allows(self, origin: str) -> bool:
        return self.any_origin or origin in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") not in self.paths:
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        if origin is not None and scope["method"] != "OPTIONS" and not self.allows(origin):
            await _refuse(origin, send)
            return
        await self.cors(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _refuse(origin: str, send: Send) -> None:
    message = f"Origin: {origin[:100]!r} may not send events here (see TEND_INGEST__CORS_ORIGINS)"
    body = json.dumps(ApiError(403, message, field="Origin").body(SEGMENT)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

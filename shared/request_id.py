"""Request ids: every HTTP request gets one, answered in ``X-Request-ID`` and carried by every log
line written while the request is handled (``request_id`` in JSON logs), so a client's report
("request 3f2a... failed") leads to the lines of that request.

A client (or a proxy in front) may send its own ``X-Request-ID``; a sane one (up to 128 letters,
digits and ``._:-``) is kept, anything else is replaced by a new id.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from typing import Final

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER: Final = "X-Request-ID"
REQUEST_ID: ContextVar[str | None] = ContextVar("tend_request_id", default=None)
"""The id of the request being handled in this context, if any."""
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestIdMiddleware:
    """Pure ASGI (no task of its own), so the id is in the context of the app's code and of
    uvicorn's access line, which is written while the response starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # An app mounted in another that has this middleware too (`tend up`) keeps the outer id.
        request_id = REQUEST_ID.get()
        if request_id is None:
            given = Headers(scope=scope).get(HEADER)
            request_id = given if given and _SANE.fullmatch(given) else uuid.uuid4().hex

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)

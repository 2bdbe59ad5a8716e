"""Plain ASGI in front of the routes for the tracking calls themselves."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from services.ingest.routes import CALL_TYPES, Ingestor


class TrackingDispatch:
    """Hands a POST to a tracking path straight to :meth:`Ingestor.handle`, the call its route
    makes, without FastAPI's routing and request-handler layers (more than half of the web
    framework's CPU per request, measured in-process: 150 -> 63 us). Everything else (other
    methods and paths, an app served under a root path) goes on to the routes, which also
    document the tracking calls in OpenAPI.

    Installed as the innermost middleware: the request id, the request metrics, CORS and the
    500 answer for an unexpected exception are the same either way. :meth:`Ingestor.handle`
    answers every refusal itself, so the exception handlers inside the routing (ApiError,
    HTTPException, validation) have nothing to catch on these paths."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in CALL_TYPES
            and not scope.get("root_path")
        ):
            request = Request(scope, receive)
            ingestor: Ingestor = request.app.state.ingest
            response = await ingestor.handle(request, CALL_TYPES[scope["path"]])
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

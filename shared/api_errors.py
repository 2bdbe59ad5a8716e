"""The one error shape of tend's JSON APIs, and the exception handlers that produce it.

Every JSON API (read API, alerts API, reports, the ops routes) answers an error as::

    {"error": {"code": "not_found", "message": "account 'acme' not found", "field": "..."}}

``code`` is a stable machine word (:data:`CODES`), ``message`` is for people and, when one field
is at fault, starts with its name (``"from: must not be after to"``); ``field`` names that
field and is left out otherwise. The ingest (tracking) API keeps the body Segment SDKs know,
``{"success": false, "error": "<message>"}``, with the same ``code`` and ``field`` keys added
beside it (:data:`SEGMENT`).

:func:`install_error_handlers` is called by every app factory (ingest names its tracking
paths, which answer in the Segment shape); :class:`ErrorRoute` gives a router the tend shape
whatever app it is included in. Handlers raise :class:`ApiError`;
``HTTPException`` and request-validation errors are translated too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from typing import Any, Final, Literal

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.utils import is_body_allowed_for_status_code
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

CODES: Final[dict[int, str]] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}
"""The code an error of each status gets unless its raiser names a more precise one."""

Shape = Literal["tend", "segment"]
TEND: Final[Shape] = "tend"
SEGMENT: Final[Shape] = "segment"

_FIELD = re.compile(r"([A-Za-z_][\w.\[\]-]*): ")


def code_for(status: int) -> str:
    return CODES.get(status, "internal" if status >= 500 else "bad_request")


def field_of(message: str) -> str | None:
    """The field a message names by tend's convention (``"until: must be in the future"``)."""
    match = _FIELD.match(message)
    return match.group(1) if match else None


class ApiError(Exception):
    """An error answered in the tend shape: ``status``, a ``code`` (default: the status's, see
    :data:`CODES`), a ``message`` for people and the ``field`` at fault. Without ``field`` it
    is taken from a message that starts ``"<field>: "``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or code_for(status)
        self.field = field if field is not None else field_of(message)
        self.headers = dict(headers or {})

    @classmethod
    def not_found(cls, what: str, ident: str) -> ApiError:
        return cls(404, f"{what} {ident!r} not found", code="not_found")

    @classmethod
    def invalid(cls, field: str, problem: str) -> ApiError:
        """422 naming ``field``: the message reads ``"<field>: <problem>"``."""
        return cls(422, f"{field}: {problem}", code="invalid", field=field)

    @classmethod
    def conflict(cls, message: str) -> ApiError:
        return cls(409, message, code="conflict")

    def body(self, shape: Shape = TEND) -> dict[str, Any]:
        if shape == SEGMENT:
            segment: dict[str, Any] = {"success": False, "error": self.message, "code": self.code}
            if self.field is not None:
                segment["field"] = self.field
            return segment
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


def from_http_exception(exc: StarletteHTTPException) -> ApiError:
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    return ApiError(exc.status_code, detail, headers=exc.headers)


def _field_path(loc: Sequence[Any]) -> str:
    # ("query", "limit") -> "limit"; ("body", "until") -> "until"; ("body",) -> "body".
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _problem(error: Mapping[str, Any]) -> tuple[str, str]:
    if error.get("type") == "json_invalid":
        # loc is ("body", <character position>): the body as a whole is not JSON.
        ctx = error.get("ctx") or {}
        return "body", f"malformed JSON ({ctx.get('error', 'JSON decode error')})"
    return _field_path(error.get("loc", ())), str(error.get("msg", "invalid"))


def from_validation_error(exc: RequestValidationError, status: int = 422) -> ApiError:
    """One error naming the first field at fault; the message lists every problem."""
    problems = [_problem(e) for e in exc.errors()]
    if not problems:
        return ApiError(status, "body: invalid request", code=code_for(status), field="body")
    message = "; ".join(f"{field}: {msg}" for field, msg in problems)
    return ApiError(status, message, code=code_for(status), field=problems[0][0])


class ErrorJSONResponse(Response):
    """A JSON error that can always be sent: ASCII-escaped, so an echoed lone surrogate or
    other odd input cannot fail the encoding (a 500 instead of the answer)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_response(err: ApiError, shape: Shape = TEND) -> Response:
    if not is_body_allowed_for_status_code(err.status):
        return Response(status_code=err.status, headers=err.headers)
    return ErrorJSONResponse(err.body(shape), status_code=err.status, headers=err.headers)


def install_error_handlers(app: FastAPI, *, segment_paths: Collection[str] = ()) -> None:
    """Answer every error of ``app`` in the tend shape, or in the Segment shape for a request
    to one of ``segment_paths`` (the tracking API's): :class:`ApiError`, ``HTTPException``
    (also Starlette's 404/405 for unknown routes), request validation (422 naming the field;
    400 in the Segment shape, which has no 422) and unexpected exceptions (500, logged).
    Redirects raised as ``HTTPException`` (a status below 400) keep their headers and get no
    error body."""
    segment = frozenset(segment_paths)

    def shape_of(request: Request) -> Shape:
        return SEGMENT if request.url.path in segment else TEND

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc, shape_of(request))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code < 400:
            return Response(status_code=exc.status_code, headers=exc.headers)
        return error_response(from_http_exception(exc), shape_of(request))

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        shape = shape_of(request)
        status = 400 if shape == SEGMENT else 422
        return error_response(from_validation_error(exc, status), shape)

    async def server_error(request: Request, exc: Exception) -> Response:
        # Starlette logs and re-raises the exception after sending this answer.
        err = ApiError(500, "internal error; see the server log", code="internal")
        return error_response(err, shape_of(request))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, server_error)


def translate(exc: Exception) -> ApiError | None:
    """The tend error an exception raised by a route stands for, or None to let it through."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RequestValidationError):
        return from_validation_error(exc)
    if isinstance(exc, StarletteHTTPException) and exc.status_code >= 400:
        return from_http_exception(exc)
    return None


class ErrorRoute(APIRoute):
    """A route whose errors (its dependencies' included) are answered in the tend shape,
    whatever exception handlers the app it is included in has: the read and alerts APIs are
    included in several apps, and the ingest app answers in the Segment shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                err = translate(exc)
                if err is None:
                    raise
                return error_response(err)

        return route


# -- OpenAPI ---------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(
        description="A stable machine word: " + ", ".join(sorted(set(CODES.values()))) + "."
    )
    message: str = Field(
        description="For people; starts with the field's name when one is at fault."
    )
    field: str | None = Field(None, description="The field at fault (a path, query or body field).")


class TendError(BaseModel):
    """The error body of every tend JSON API but ingest."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"error": {"code": "not_found", "message": "account 'acme' not found"}},
                {
                    "error": {
                        "code": "invalid",
                        "message": "from: must not be after to",
                        "field": "from",
                    }
                },
            ]
        }
    )

    error: ErrorDetail


class SegmentError(BaseModel):
    """The error body of the ingest (tracking) API: what Segment SDKs expect, plus the code
    and field of the tend shape."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "success": False,
                    "error": "batch: required, a list of events (track, identify, group, page)",
                    "code": "bad_request",
                    "field": "batch",
                }
            ]
        }
    )

    success: Literal[False] = False
    error: str = Field(description="What is wrong, naming the field.")
    code: str = Field(description="The same codes as the tend error shape.")
    field: str | None = None


EXAMPLES: Final[dict[int, tuple[str, str]]] = {
    400: ("malformed request", "body: must be a JSON object, not list"),
    401: (
        "Missing or wrong credentials",
        "missing or wrong bearer token (Authorization: Bearer $TEND_API_TOKEN)",
    ),
    404: ("Not found", "account 'acme' not found"),
    409: (
        "The resource's state does not allow it",
        "alert 42 is resolved; it cannot be acknowledged",
    ),
    413: ("Too large", "body: more than the limit of 512000 bytes"),
    422: (
        "Invalid input; the message and field name the field",
        "limit: Input should be less than or equal to 1000",
    ),
    429: (
        "Rate limited; see Retry-After",
        "rate limit of 100 events/s for this write key exceeded",
    ),
    503: ("Unavailable; retry later", "the database is unavailable; retry later"),
}


def error_responses(
    *statuses: int,
    shape: Shape = TEND,
    descriptions: Mapping[int, str] | None = None,
    messages: Mapping[int, str] | None = None,
    html: bool = False,
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route or router: each status documented with the error model of
    ``shape`` and an example; ``descriptions`` and example ``messages`` replace the generic
    ones of :data:`EXAMPLES`.

    ``html``: for a route whose answer is a page (``response_class=HTMLResponse``), whose
    errors are still JSON. FastAPI files a ``model`` under the route's media type, so these
    name the schema by reference instead: another route of the app must use the model (every
    router of tend's APIs has JSON routes)."""
    model = SegmentError if shape == SEGMENT else TendError
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, message = EXAMPLES.get(status, ("Error", "what went wrong"))
        description = (descriptions or {}).get(status, description)
        message = (messages or {}).get(status, message)
        json_content: dict[str, Any] = {"example": ApiError(status, message).body(shape)}
        response: dict[str, Any] = {"description": description}
        if html:
            json_content["schema"] = {"$ref": f"#/components/schemas/{model.__name__}"}
        else:
            response["model"] = model
        response["content"] = {"application/json": json_content}
        documented[status] = response
    return documented


def operation_id(route: APIRoute) -> str:
    """The OpenAPI operation id of a route: its function's name (``list_accounts``), stable and
    readable in generated clients (FastAPI's default adds the path and method)."""
    return route.name

"""Segment tracking-spec payloads and the ingest answers, as models for the OpenAPI docs.

The routes read bodies themselves (see :mod:`services.ingest.normalize`), so that one bad event
in a batch is listed rather than failing the request and every message names its field; these
models describe the same shapes for ``/docs`` and for clients.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from shared.api_errors import SEGMENT, error_responses


class SegmentCall(BaseModel):
    """Fields shared by every call. Unknown fields are allowed and ignored."""

    model_config = ConfigDict(extra="allow")

    userId: str | None = Field(None, max_length=200, description="userId or anonymousId.")
    anonymousId: str | None = Field(None, max_length=200)
    messageId: str | None = Field(
        None, max_length=100, description="Idempotency id; generated when absent."
    )
    timestamp: str | None = Field(None, description="ISO-8601; when the event happened.")
    sentAt: str | None = Field(
        None, description="ISO-8601; when the client sent it (corrects its clock skew)."
    )
    context: dict[str, Any] | None = Field(
        None, description="context.groupId names the account (first choice)."
    )
    groupId: str | None = Field(None, description="The account id (second choice).")
    writeKey: str | None = Field(None, description="Write key, when not sent as a header.")


class TrackCall(SegmentCall):
    type: Literal["track"] = "track"
    event: str = Field(max_length=200, description="Event name, e.g. 'Report Exported'.")
    properties: dict[str, Any] | None = Field(
        None, description="properties.account_id names the account (third choice)."
    )


class IdentifyCall(SegmentCall):
    type: Literal["identify"] = "identify"
    traits: dict[str, Any] | None = None


class GroupCall(SegmentCall):
    type: Literal["group"] = "group"
    groupId: str = Field(max_length=200, description="The account the user belongs to.")
    traits: dict[str, Any] | None = Field(None, description="Account traits.")


class PageCall(SegmentCall):
    type: Literal["page"] = "page"
    name: str | None = Field(None, max_length=200, description="Page name.")
    properties: dict[str, Any] | None = None


class ScreenCall(SegmentCall):
    type: Literal["screen"] = "screen"
    name: str | None = Field(None, max_length=200, description="Screen name (mobile apps).")
    properties: dict[str, Any] | None = None


class AliasCall(SegmentCall):
    type: Literal["alias"] = "alias"
    userId: str = Field(max_length=200, description="The user's new id.")
    previousId: str = Field(
        max_length=200, description="The user's earlier id; both count as one user from now on."
    )


class BatchRequest(BaseModel):
    batch: list[TrackCall | IdentifyCall | GroupCall | PageCall | ScreenCall | AliasCall] = Field(
        description="Up to 2,500 calls (configurable), each at most 32 KB."
    )
    sentAt: str | None = Field(None, description="Applies to calls without their own sentAt.")
    writeKey: str | None = None
    context: dict[str, Any] | None = Field(
        None, description="Merged into each call's context (the call's own keys win)."
    )


class RejectedEvent(BaseModel):
    index: int = Field(description="Position of the call in the request (0 for single calls).")
    messageId: str | None
    error: str = Field(description="What is wrong, naming the field.")
    code: str = Field(description="invalid, unknown_type, too_large or no_account.")
    field: str | None = Field(None, description="The field at fault, when one is.")


class Status(BaseModel):
    """What ``/healthz`` and ``/readyz`` answer."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"status": "ready"},
                {"status": "unavailable", "error": "the event broker does not answer"},
            ]
        }
    )

    status: Literal["ok", "ready", "unavailable"]
    error: str | None = Field(None, description="Why the process is not ready.")


class IngestResponse(BaseModel):
    success: Literal[True] = True
    accepted: int = Field(description="Calls the broker acknowledged.")
    rejected: list[RejectedEvent] = Field(default_factory=list)


ERROR_RESPONSES = error_responses(
    400,
    401,
    403,
    413,
    415,
    429,
    503,
    shape=SEGMENT,
    descriptions={
        400: "Malformed JSON or an invalid single call.",
        401: "Missing, unknown or revoked write key.",
        403: "A browser origin not in TEND_INGEST__CORS_ORIGINS.",
        413: "Body, batch or event above its limit.",
        415: "Content-Encoding other than gzip.",
        429: "Rate limit of the write key; see Retry-After.",
        503: "Broker unavailable; nothing was accepted.",
    },
    messages={
        400: "batch: required, a list of events (track, identify, group, page)",
        401: "unknown or revoked write key",
        403: "Origin: 'https://evil.example' may not send events here",
        413: "batch: 2501 events, more than the limit of 2500",
        415: "Content-Encoding: 'br' is not supported; send gzip or no encoding",
        429: "rate limit of 100 events/s for this write key exceeded; retry after 1 s",
        503: "the event broker did not acknowledge the events; nothing was accepted, retry later",
    },
)
"""The Segment-compatible error body (:class:`shared.api_errors.SegmentError`) of each status."""


REF_TEMPLATE = "#/components/schemas/{model}"
REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    BatchRequest,
    TrackCall,
    IdentifyCall,
    GroupCall,
    PageCall,
)


def request_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its body itself; the schema is added to the
    document's components by :func:`request_schemas`."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": REF_TEMPLATE.format(model=model.__name__)}}
            },
        }
    }


def request_schemas() -> dict[str, Any]:
    """JSON schemas of the request models, keyed by name, for ``components.schemas``."""
    _, top = models_json_schema(
        [(m, "validation") for m in REQUEST_MODELS], ref_template=REF_TEMPLATE
    )
    defs: dict[str, Any] = top.get("$defs", {})
    return defs

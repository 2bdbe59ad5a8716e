"""Segment tracking-spec payloads and the ingest answers, as models for the OpenAPI docs.

The routes read bodies themselves (see :mod:`services.ingest.normalize`), so that one bad event
in a batch is listed rather than failing the request and every message names its field; these
models describe the same shapes for ``/docs`` and for clients.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema


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


class BatchRequest(BaseModel):
    batch: list[TrackCall | IdentifyCall | GroupCall | PageCall] = Field(
        description="Up to 2,500 calls (configurable), each at most 32 KB."
    )
    sentAt: str | None = Field(None, description="Applies to calls without their own sentAt.")
    writeKey: str | None = None
    context: dict[str, Any] | None = None


class RejectedEvent(BaseModel):
    index: int = Field(description="Position of the call in the request (0 for single calls).")
    messageId: str | None
    error: str = Field(description="What is wrong, naming the field.")


class IngestResponse(BaseModel):
    success: Literal[True] = True
    accepted: int = Field(description="Calls the broker acknowledged.")
    rejected: list[RejectedEvent] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    success: Literal[False] = False
    error: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed JSON or an invalid single call."},
    401: {"model": ErrorResponse, "description": "Missing, unknown or revoked write key."},
    413: {"model": ErrorResponse, "description": "Body, batch or event above its limit."},
    415: {"model": ErrorResponse, "description": "Content-Encoding other than gzip."},
    429: {"model": ErrorResponse, "description": "Rate limit of the write key; see Retry-After."},
    503: {"model": ErrorResponse, "description": "Broker unavailable; nothing was accepted."},
}


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

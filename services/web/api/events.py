"""``GET /v1/accounts/{id}/events``: the last events tend counted for an account, so an engineer
instrumenting an app (or a CSM) can see that events arrive: what, when, from which write key.

Bearer-token auth (``TEND_API_TOKEN``), like the rest of the read API; its answer models are
here, beside the route. Write keys show as id, name and prefix; the key itself is never stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from services.web.deps import SessionDep
from shared.api_auth import require_token
from shared.api_errors import ApiError, ErrorRoute, error_responses, operation_id
from shared.api_input import MAX_BIGINT, storable_params
from shared.read import accounts
from shared.read.events import LastEvent, last_events

router = APIRouter(
    prefix="/v1/accounts",
    tags=["accounts"],
    dependencies=[Depends(require_token), Depends(storable_params)],
    route_class=ErrorRoute,
    generate_unique_id_function=operation_id,
    responses=error_responses(401, 422),
)


EVENTS_EXAMPLE: dict[str, Any] = {
    "account_id": "acme",
    "kept": 50,
    "events": [
        {
            "id": 9120,
            "event_id": "ajs-6f0d5b1c",
            "type": "track",
            "name": "Report Exported",
            "user_id": "u-42",
            "occurred_at": "2026-11-30T10:15:00Z",
            "received_at": "2026-11-30T10:15:01Z",
            "stored_at": "2026-11-30T10:15:02Z",
            "write_key": {"id": 1, "name": "web app", "prefix": "tend_wk_Ab3x"},
        }
    ],
}


class WriteKeyRef(BaseModel):
    """The write key an event came with: never the key itself, only what identifies it."""

    id: int
    name: str | None = Field(None, description="Null when the key row is gone.")
    prefix: str | None = Field(None, description="The key's first characters.")


class LastEventRow(BaseModel):
    id: int = Field(description="Grows with arrival: ask for newer events with after_id.")
    event_id: str = Field(description="The client's messageId.")
    type: str = Field(description="track, identify, group or page.")
    name: str | None = Field(None, description="The event name (track) or page name.")
    user_id: str | None = Field(None, description="The user id, else the anonymous id.")
    occurred_at: datetime = Field(description="Event time (clock-skew corrected).")
    received_at: datetime = Field(description="When ingest received it.")
    stored_at: datetime = Field(description="When the scorer counted it.")
    write_key: WriteKeyRef | None = Field(None, description="Null for imported events.")


class AccountEvents(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EVENTS_EXAMPLE]})

    account_id: str
    kept: int = Field(description="How many of the newest events tend keeps per account.")
    events: list[LastEventRow] = Field(description="Newest first.")


KEPT_EVENTS = 50
"""What the scorer keeps per account (``services.scorer.recent.RECENT_EVENTS_KEPT``; a test
keeps the two equal: services never import each other)."""


def event_row(e: LastEvent) -> dict[str, Any]:
    key = None
    if e.key_id is not None:
        key = {"id": e.key_id, "name": e.key_name, "prefix": e.key_prefix}
    return {
        "id": e.id,
        "event_id": e.event_id,
        "type": e.type,
        "name": e.name,
        "user_id": e.user_id,
        "occurred_at": e.occurred_at,
        "received_at": e.received_at,
        "stored_at": e.stored_at,
        "write_key": key,
    }


@router.get(
    "/{account_id}/events",
    summary="The last events counted for the account, newest first",
    response_model=AccountEvents,
    responses=error_responses(404),
)
async def get_events(
    account_id: str,
    session: SessionDep,
    limit: Annotated[
        int, Query(ge=1, le=KEPT_EVENTS, description="How many, newest first.")
    ] = KEPT_EVENTS,
    after_id: Annotated[
        int | None, Query(ge=0, le=MAX_BIGINT, description="Only events stored after this id.")
    ] = None,
) -> dict[str, Any]:
    if await accounts.get_account(session, account_id) is None:
        raise ApiError.not_found("account", account_id)
    found = await last_events(session, account_id, limit=limit, after_id=after_id)
    return {"account_id": account_id, "kept": KEPT_EVENTS, "events": [event_row(e) for e in found]}

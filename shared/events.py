"""The canonical event: what ingest puts on ``tend.events.v1`` and the scorer reads.

Ingest turns each Segment-spec call (track, identify, group, page, screen, alias) into one
:class:`CanonicalEvent`. The account is already resolved, the login flag and feature already
decided, and ``occurred_at`` already corrected for the client's clock skew, so consumers never
need the ingest's configuration to interpret an event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

EventType = Literal["track", "identify", "group", "page", "screen", "alias"]

MAX_NESTING: Final = 128
"""The deepest ``properties`` / ``traits`` nesting (objects and arrays, the outer object
counting as one level) ingest may be configured to accept. :meth:`CanonicalEvent.from_bytes`
reads up to 199 levels (pydantic-core's JSON recursion limit, the event itself being one);
this leaves room for that limit to shrink without making accepted events undecodable."""


class CanonicalEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(min_length=1, max_length=100, description="The client's messageId.")
    type: EventType
    account_id: str | None = Field(
        None, description="Resolved account; always set for track and group events."
    )
    user_id: str | None = None
    anonymous_id: str | None = None
    previous_id: str | None = Field(
        None,
        description="alias only: the earlier id of ``user_id`` (the two are one person from "
        "``occurred_at`` on).",
    )
    name: str | None = Field(
        None, description="Event name (track), page name (page) or screen name (screen)."
    )
    feature: str | None = Field(None, description="Feature key from the catalog, if any.")
    is_login: bool = False
    occurred_at: AwareDatetime = Field(description="Clock-skew corrected time of the event.")
    received_at: AwareDatetime
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)
    write_key_id: int | None = Field(None, description="Id of the write key that sent it.")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> CanonicalEvent:
        return cls.model_validate_json(raw)

    @property
    def actor(self) -> str:
        """The person behind the event: the user id, else the anonymous id."""
        return self.user_id or self.anonymous_id or ""


EXAMPLE_TRACK = CanonicalEvent(
    event_id="ajs-6f0d5b1c-1f9e-4bd4-9a5e-7f0b1f1d9c11",
    type="track",
    account_id="acme",
    user_id="u-42",
    name="Report Exported",
    feature="reports",
    is_login=False,
    occurred_at=datetime.fromisoformat("2026-11-02T10:15:00+00:00"),
    received_at=datetime.fromisoformat("2026-11-02T10:15:01+00:00"),
    properties={"format": "csv"},
)

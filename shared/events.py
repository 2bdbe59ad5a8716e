"""The canonical event: what ingest puts on ``tend.events.v1`` and the scorer reads.

Ingest turns each Segment-spec call (track, identify, group, page, screen, alias) into one
:class:`CanonicalEvent`. The account is already resolved, the login flag and feature already
decided, and ``occurred_at`` already corrected for the client's clock skew, so consumers never
need the ingest's configuration to interpret an event.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec
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


class EventStruct(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """:class:`CanonicalEvent` as a plain struct: what the scorer decodes the topic into.

    The same fields, defaults and checks (``event_id`` of 1 to 100 characters, the type
    literal, timezone-aware times, unknown fields refused); read it with :func:`decode_event`,
    which also keeps the nesting limit and leaves every input the struct reads differently
    (lax coercions, other time formats) to the model, so both accept and refuse the same
    records with the same values, at a tenth of the model's cost.
    """

    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    type: EventType
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)]
    received_at: Annotated[datetime, msgspec.Meta(tz=True)]
    account_id: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    previous_id: str | None = None
    name: str | None = None
    feature: str | None = None
    is_login: bool = False
    properties: dict[str, Any] = msgspec.field(default_factory=dict)
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    write_key_id: int | None = None

    @classmethod
    def from_model(cls, event: CanonicalEvent) -> EventStruct:
        return cls(**{name: getattr(event, name) for name in cls.__struct_fields__})

    @property
    def actor(self) -> str:
        """The person behind the event: the user id, else the anonymous id."""
        return self.user_id or self.anonymous_id or ""


AnyEvent = CanonicalEvent | EventStruct
"""What the scorer's processor and writer take: either form of a canonical event."""

_STRUCT_DECODER: Final = msgspec.json.Decoder(EventStruct)
_SUBSECOND_DIGITS: Final = re.compile(rb"\.\d{7}")
"""More than microsecond digits (in a time, the model truncates them and the struct rounds:
23:59:59.9999995 would change day); a float in ``properties`` matches too, harmlessly."""
_ESCAPED_TIME_CHARS: Final = (b"\\u002", b"\\u003")
"""JSON escapes of ``.``, ``+``, ``-`` and digits: no encoder writes them, and inside a time
they would hide its digits from :data:`_SUBSECOND_DIGITS`."""


def _plain(raw: bytes) -> bool:
    """Whether the struct reads ``raw``'s times exactly as the model does, if it reads it."""
    return not _SUBSECOND_DIGITS.search(raw) and (
        # Nearly every record has no escape at all: one search rules them all out.
        b"\\" not in raw or not any(escape in raw for escape in _ESCAPED_TIME_CHARS)
    )


def _nests_below(value: dict[str, Any] | list[Any], limit: int) -> bool:
    """Whether ``value`` nests fewer than ``limit`` levels (itself the first)."""
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth >= limit:
            return False
        for child in node.values() if type(node) is dict else node:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return True


def _flat_or_below(value: dict[str, Any]) -> bool:
    """:func:`_nests_below` ``MAX_NESTING``, with a loop in place of its walk for the usual
    object of plain values (a third of its cost)."""
    for child in value.values():
        if type(child) is dict or type(child) is list:
            return _nests_below(value, MAX_NESTING)
    return True


def decode_event(raw: bytes) -> EventStruct:
    """``raw`` as an :class:`EventStruct`, valid exactly when :meth:`CanonicalEvent.from_bytes`
    says so, with the same values; raises the model's ``ValidationError`` (naming the field)
    when it is not.

    The struct decodes what it can; a record it refuses, one whose ``properties`` or ``traits``
    nest :data:`MAX_NESTING` levels or more (the model reads fewer levels than the struct, so
    there they could disagree; the depth is checked on what the struct read, cheaper than
    counting brackets in every record) and one with sub-microsecond time digits go through
    the model, whose verdict stands."""
    if _plain(raw):
        try:
            event = _STRUCT_DECODER.decode(raw)
        except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError):
            pass
        else:
            if _flat_or_below(event.properties) and _flat_or_below(event.traits):
                return event
    return EventStruct.from_model(CanonicalEvent.from_bytes(raw))


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

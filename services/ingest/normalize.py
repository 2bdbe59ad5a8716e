"""Pure: Segment-spec calls in, canonical events (or the reason they were refused) out.

No I/O here. The route reads and decodes the body, then:

1. :func:`parse_batch` checks every call on its own (type, ids, sizes, times, and that every
   text, number and nesting level can be carried to the database: :func:`check_tree`) and
   corrects the client's clock skew; each failure becomes a :class:`Rejection` whose message
   names the field.
2. :func:`users_to_look_up` says which users need their last ``group`` call from the database.
3. :func:`resolve` picks each event's account, decides login and feature, and builds the
   :class:`AcceptedEvent`; a track call with no account is refused.
4. :func:`to_message` turns an event into the bus message (key = account id), whose value is
   the :class:`~shared.events.CanonicalEvent`'s bytes.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, cast, get_args

import msgspec
import pydantic_core

from shared.api_errors import field_of
from shared.bus.base import Message
from shared.config import TendConfig
from shared.events import CanonicalEvent, EventType

KNOWN_TYPES: Final[tuple[str, ...]] = get_args(EventType)
MAX_MESSAGE_ID_CHARS: Final = 100
MAX_ID_CHARS: Final = 200
"""User, anonymous and account ids: the width of the ``user_accounts`` columns."""
MAX_NAME_CHARS: Final = 200
SKEW_REPORT_THRESHOLD: Final = timedelta(seconds=1)
"""Corrections smaller than this are network latency, not a wrong clock; not counted."""
DEFAULT_MAX_DEPTH: Final = 32
MIN_YEAR: Final = 1970
MAX_YEAR: Final = 2100
"""Event times (after skew correction) outside these years are a broken clock, not data."""

# PostgreSQL text cannot hold NUL, and UTF-8 (the topic, the database) cannot hold a lone
# surrogate, which JSON's \udxxx escapes can produce. Ids, names and keys are also shown in
# logs, the console and alerts, where other control characters (tab and newline excepted)
# only disguise what they say.
_UNSAFE_IN_NAME: Final = re.compile("[\x00-\x08\x0b-\x1f\ud800-\udfff]")
_UNSAFE_IN_VALUE: Final = re.compile("[\x00\ud800-\udfff]")
MAX_PATH_CHARS: Final = 120
EXPONENT_FLOAT: Final = 1e16
"""Floats of this magnitude or more are written with an exponent, which msgspec writes as
``1e16`` and pydantic-core as ``1e+16``; every other JSON value they write alike."""
_TOPIC_JSON: Final = msgspec.json.Encoder()

NO_ACCOUNT_HELP: Final = (
    "no account for this event: send the account id as context.groupId, groupId or "
    "properties.account_id, or make a group call (userId + groupId) for this user first"
)


class Reason(StrEnum):
    """Why an event was refused; the bounded label of the rejection metric."""

    INVALID = "invalid"
    UNKNOWN_TYPE = "unknown_type"
    TOO_LARGE = "too_large"
    NO_ACCOUNT = "no_account"


class EventError(ValueError):
    """One event is unusable; ``str(err)`` names the field and is safe to return."""

    def __init__(self, message: str, reason: Reason = Reason.INVALID) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    message_id: str | None
    error: str
    reason: Reason

    def as_json(self) -> dict[str, Any]:
        # code and field as in every tend error (shared.api_errors); Segment SDKs read none.
        entry = {
            "index": self.index,
            "messageId": self.message_id,
            "error": self.error,
            "code": self.reason.value,
        }
        at = field_of(self.error)
        return entry if at is None else {**entry, "field": at}


class EventTime(msgspec.Struct, frozen=True):
    occurred_at: datetime
    skew_corrected: bool = False
    """The client's clock was off by more than :data:`SKEW_REPORT_THRESHOLD`."""
    future_clamped: bool = False
    """The corrected time was too far ahead and was replaced by ``received_at``."""


class ParsedEvent(msgspec.Struct):
    """A call that passed every check that needs no database. A msgspec struct, like
    :class:`EventTime`, for the cost of building one per call (in C, where a dataclass's
    ``__init__`` is Python)."""

    index: int
    type: EventType
    message_id: str
    user_id: str | None
    anonymous_id: str | None
    account_id: str | None
    """From the call itself (context.groupId, groupId, properties.account_id), if any."""
    name: str | None
    time: EventTime
    properties: dict[str, Any] = msgspec.field(default_factory=dict)
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    previous_id: str | None = None
    """alias calls: the user's earlier id."""
    exponent_floats: bool = False
    """properties or traits hold a float of :data:`EXPONENT_FLOAT` or more in magnitude."""


class AcceptedEvent(msgspec.Struct, omit_defaults=True):
    """A call that passed every check, its account resolved: the fields of
    :class:`~shared.events.CanonicalEvent`, in its order, without building the model.
    Read-only by convention.

    Every field was checked on the way here (:func:`parse_event`, :func:`resolve`), so the
    model's validation would only repeat it: building and dumping one per event was a quarter
    of ingest's CPU. :meth:`to_bytes` writes what ``CanonicalEvent.to_bytes`` writes, byte for
    byte (a test holds them together), so consumers decode it with
    ``CanonicalEvent.from_bytes``. A msgspec struct, not a dataclass: built in C, and written
    as it stands (``omit_defaults`` leaves out :attr:`exponent_floats`, the one field with a
    default) at half the cost of writing :meth:`as_dict`.
    """

    event_id: str
    type: EventType
    account_id: str | None
    user_id: str | None
    anonymous_id: str | None
    previous_id: str | None
    name: str | None
    feature: str | None
    is_login: bool
    occurred_at: datetime
    received_at: datetime
    properties: dict[str, Any]
    traits: dict[str, Any]
    write_key_id: int | None
    exponent_floats: bool = False
    """Not a topic field: :meth:`to_bytes` hands these events to pydantic-core."""

    def as_dict(self) -> dict[str, Any]:
        """The fields by name, in :class:`~shared.events.CanonicalEvent`'s order."""
        return {
            "event_id": self.event_id,
            "type": self.type,
            "account_id": self.account_id,
            "user_id": self.user_id,
            "anonymous_id": self.anonymous_id,
            "previous_id": self.previous_id,
            "name": self.name,
            "feature": self.feature,
            "is_login": self.is_login,
            "occurred_at": self.occurred_at,
            "received_at": self.received_at,
            "properties": self.properties,
            "traits": self.traits,
            "write_key_id": self.write_key_id,
        }

    def to_bytes(self) -> bytes:
        """The topic's JSON, as the model's own dump (pydantic-core) writes it: msgspec's
        encoder (half the time) unless a float would be written with an exponent."""
        if self.exponent_floats:
            return pydantic_core.to_json(self.as_dict())
        return _TOPIC_JSON.encode(self)

    def canonical(self) -> CanonicalEvent:
        """The validated model, for callers off the hot path."""
        return CanonicalEvent(**self.as_dict())


# -- text, numbers, nesting ---------------------------------------------------------------------


def _unsafe(char: str) -> str:
    code = ord(char)
    if code == 0:
        return "a NUL character (U+0000)"
    if 0xD800 <= code <= 0xDFFF:
        return f"a lone surrogate (U+{code:04X})"
    return f"a control character (U+{code:04X})"


def check_name(text: str, field_name: str) -> str:
    """``text`` when it is usable as an id, event name or key: no control characters but tab
    and newline, no lone surrogates."""
    bad = _UNSAFE_IN_NAME.search(text)
    if bad is not None:
        raise EventError(f"{field_name}: contains {_unsafe(bad.group())}, which is not allowed")
    return text


class _Unsafe(Exception):
    """A problem deep inside a tree; ``path`` is filled in while the stack unwinds."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path: list[str] = []


class _TooDeep(Exception):
    pass


def _walk(container: dict[str, Any] | list[Any], levels_left: int) -> bool:
    """Checks a dict or list from ``json.loads``, whose values have exact JSON types (hence
    ``type(x) is``: this runs for every value of every event, and is the cost of ingest's
    checks). True when it holds a float of :data:`EXPONENT_FLOAT` or more in magnitude."""
    exponent = False
    if levels_left <= 0:
        raise _TooDeep
    items: Iterable[tuple[Any, Any]]
    if type(container) is dict:
        # One search over all keys; a bad character cannot arise from the joining.
        if _UNSAFE_IN_NAME.search("".join(container)) is not None:
            for name in container:
                bad = _UNSAFE_IN_NAME.search(name)
                if bad is not None:
                    raise _Unsafe(f"a key contains {_unsafe(bad.group())}, which is not allowed")
        items = container.items()
    else:
        items = enumerate(container)
    for key, item in items:
        kind = type(item)
        try:
            if kind is str:
                bad = _UNSAFE_IN_VALUE.search(item)
                if bad is not None:
                    raise _Unsafe(f"contains {_unsafe(bad.group())}, which is not allowed")
            elif kind is dict or kind is list:
                exponent = _walk(item, levels_left - 1) or exponent
            elif kind is float and not -EXPONENT_FLOAT < item < EXPONENT_FLOAT:
                if not math.isfinite(item):
                    # JSON has no infinity; Python's parser makes one of 1e400, which would
                    # travel as null.
                    raise _Unsafe("a number beyond the range of a double (about 1.8e308)")
                exponent = True
        except _Unsafe as err:
            err.path.append(f".{key}" if type(key) is str else f"[{key}]")
            raise
    return exponent


def check_tree(value: dict[str, Any], field_name: str, max_depth: int) -> bool:
    """Raises :class:`EventError` naming the path when ``value`` (properties or traits) nests
    deeper than ``max_depth`` levels, has a key with a control character or lone surrogate, a
    string with a NUL or lone surrogate, or a number no double can hold. Returns whether it
    holds a float of :data:`EXPONENT_FLOAT` or more in magnitude."""
    try:
        return _walk(value, max_depth)
    except _TooDeep:
        raise EventError(
            f"{field_name}: nested more than {max_depth} levels deep (objects and arrays)"
        ) from None
    except _Unsafe as err:
        path = field_name + "".join(reversed(err.path))
        if len(path) > MAX_PATH_CHARS:
            path = path[: MAX_PATH_CHARS - 3] + "..."
        raise EventError(f"{path}: {err.problem}") from None


# -- time ---------------------------------------------------------------------------------------


def parse_timestamp(value: Any, field_name: str) -> datetime | None:
    """An ISO-8601 date-time (``Z`` or an offset; naive means UTC), or None when absent."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise EventError(f"{field_name}: must be an ISO-8601 date-time string")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise EventError(
            f"{field_name}: {value[:40]!r} is not an ISO-8601 date-time "
            "(like 2024-05-01T12:00:00.000Z)"
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise EventError(f"{field_name}: {value[:40]!r} is outside the years 1 to 9999") from None


def _out_of_range(sent_at: datetime | None) -> EventError:
    return EventError(
        f"timestamp: outside the years {MIN_YEAR} to {MAX_YEAR}"
        f"{' after clock-skew correction with sentAt' if sent_at is not None else ''}"
    )


def correct_clock_skew(
    timestamp: datetime | None,
    sent_at: datetime | None,
    received_at: datetime,
    *,
    future_tolerance: timedelta,
) -> EventTime:
    """``received_at - (sent_at - timestamp)`` when both are given; the client's timestamp when
    only it is given; ``received_at`` when none is. Past times are kept (backfills are real);
    times further than ``future_tolerance`` ahead of ``received_at`` become ``received_at``.
    Raises :class:`EventError` when the time (corrected) is outside the years
    :data:`MIN_YEAR` to :data:`MAX_YEAR`."""
    if timestamp is None:
        return EventTime(received_at)
    occurred = timestamp
    corrected = False
    if sent_at is not None:
        skew = received_at - sent_at
        try:
            occurred = timestamp + skew
        except OverflowError:
            raise _out_of_range(sent_at) from None
        corrected = abs(skew) > SKEW_REPORT_THRESHOLD
    if not MIN_YEAR <= occurred.year <= MAX_YEAR:
        raise _out_of_range(sent_at)
    if occurred - received_at > future_tolerance:
        return EventTime(received_at, skew_corrected=corrected, future_clamped=True)
    return EventTime(occurred, skew_corrected=corrected)


# -- fields -------------------------------------------------------------------------------------


def _id(raw: Mapping[str, Any], key: str, field_name: str | None = None) -> str | None:
    """An identifier: a string or a number (SDKs send both), trimmed; blank means absent."""
    value = raw.get(key)
    name = field_name or key
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise EventError(f"{name}: must be a string")
    text = value.strip() if isinstance(value, str) else str(value)
    if len(text) > MAX_ID_CHARS:
        raise EventError(f"{name}: at most {MAX_ID_CHARS} characters (got {len(text)})")
    return check_name(text, name) or None


def _object(raw: Mapping[str, Any], key: str, field_name: str | None = None) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EventError(f"{field_name or key}: must be an object")
    return value


def _name(
    raw: Mapping[str, Any], key: str, *, required: bool, call: str, field_name: str | None = None
) -> str | None:
    value = raw.get(key)
    name = field_name or key
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise EventError(f"{name}: required for {call} calls (the event name)")
        return None
    if not isinstance(value, str):
        raise EventError(f"{name}: must be a string")
    value = value.strip()
    if len(value) > MAX_NAME_CHARS:
        raise EventError(f"{name}: at most {MAX_NAME_CHARS} characters (got {len(value)})")
    return check_name(value, name)


def message_id_of(raw: Any) -> str | None:
    """The client's messageId when it is usable for a rejection entry, else None."""
    if isinstance(raw, dict):
        value = raw.get("messageId")
        if isinstance(value, str | int) and not isinstance(value, bool):
            text = str(value)[:MAX_MESSAGE_ID_CHARS]
            if _UNSAFE_IN_NAME.search(text) is None:
                return text
    return None


def _message_id(raw: Mapping[str, Any]) -> str:
    value = raw.get("messageId")
    if value is None or value == "":
        return str(uuid.uuid4())
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise EventError("messageId: must be a string")
    text = str(value)
    if len(text) > MAX_MESSAGE_ID_CHARS:
        raise EventError(f"messageId: at most {MAX_MESSAGE_ID_CHARS} characters (got {len(text)})")
    return check_name(text, "messageId")


def event_size(raw: Any) -> int:
    """Bytes of the event as compact JSON, the measure of the per-event limit."""
    # surrogatepass: a lone surrogate is refused later, with its field named; here it is
    # only measured.
    text = json.dumps(raw, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8", "surrogatepass"))


def explicit_account(
    call_type: str,
    raw: Mapping[str, Any],
    context: Mapping[str, Any],
    properties: Mapping[str, Any],
) -> str | None:
    """The account the call names itself: ``context.groupId``, then ``groupId``, then
    ``properties.account_id``. A group call's account is its own ``groupId`` (required)."""
    if call_type == "group":
        group_id = _id(raw, "groupId")
        if group_id is None:
            raise EventError("groupId: required for group calls (the account id)")
        return group_id
    return (
        _id(context, "groupId", "context.groupId")
        or _id(raw, "groupId")
        or _id(properties, "account_id", "properties.account_id")
    )


def batch_context(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The batch's own ``context`` (merged under each call's), None when absent."""
    if body.get("context") is None:
        return None
    return _object(body, "context") or None


# -- one call -----------------------------------------------------------------------------------


def parse_event(
    raw: Any,
    index: int,
    *,
    received_at: datetime,
    future_tolerance: timedelta,
    call_type: str | None = None,
    batch_sent_at: datetime | None = None,
    batch_context: Mapping[str, Any] | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> ParsedEvent:
    """Check one call. ``call_type`` is the route's type (``/v1/track``); ``None`` means the
    call's own ``type`` field decides (``/v1/batch``). ``batch_context`` is the batch's
    ``context``, under the call's own (the call's keys win). Raises :class:`EventError`."""
    if not isinstance(raw, dict):
        raise EventError("event: must be a JSON object")
    kind = call_type if call_type is not None else raw.get("type")
    if kind is None or kind == "":
        raise EventError(f"type: required, one of {', '.join(KNOWN_TYPES)}")
    if not isinstance(kind, str) or kind not in KNOWN_TYPES:
        shown = kind[:40] if isinstance(kind, str) else type(kind).__name__
        raise EventError(
            f"type: {shown!r} is not supported; expected one of {', '.join(KNOWN_TYPES)}",
            Reason.UNKNOWN_TYPE,
        )
    event_type = cast(EventType, kind)
    message_id = _message_id(raw)
    user_id = _id(raw, "userId")
    anonymous_id = _id(raw, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise EventError("userId or anonymousId: one of them is required")
    context = _object(raw, "context")
    if batch_context:
        context = {**batch_context, **context}
    properties = _object(raw, "properties")
    traits = _object(raw, "traits")
    traits_field = "traits"
    if not traits and event_type == "identify":
        traits = _object(context, "traits", "context.traits")
        traits_field = "context.traits"
    exponent_floats = check_tree(properties, "properties", max_depth)
    exponent_floats = check_tree(traits, traits_field, max_depth) or exponent_floats

    name: str | None = None
    if event_type == "track":
        name = _name(raw, "event", required=True, call="track")
    elif event_type in ("page", "screen"):
        name = _name(raw, "name", required=False, call=event_type)
        if name is None and isinstance(properties.get("name"), str):
            name = _name(
                properties, "name", required=False, call=event_type, field_name="properties.name"
            )
    previous_id: str | None = None
    if event_type == "alias":
        previous_id = _id(raw, "previousId")
        if previous_id is None:
            raise EventError("previousId: required for alias calls (the user's earlier id)")
        if user_id is None:
            raise EventError("userId: required for alias calls (the user's new id)")

    account_id = explicit_account(event_type, raw, context, properties)

    timestamp = parse_timestamp(raw.get("timestamp"), "timestamp")
    if timestamp is None:
        timestamp = parse_timestamp(raw.get("originalTimestamp"), "originalTimestamp")
    sent_at = parse_timestamp(raw.get("sentAt"), "sentAt") or batch_sent_at
    time = correct_clock_skew(timestamp, sent_at, received_at, future_tolerance=future_tolerance)
    return ParsedEvent(
        index=index,
        type=event_type,
        message_id=message_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        account_id=account_id,
        name=name,
        time=time,
        properties=properties,
        traits=traits,
        previous_id=previous_id,
        exponent_floats=exponent_floats,
    )


# -- many calls ---------------------------------------------------------------------------------


def parse_batch(
    items: Sequence[Any],
    *,
    received_at: datetime,
    future_tolerance: timedelta,
    max_event_bytes: int,
    body_bytes: int,
    call_type: str | None = None,
    batch_sent_at: datetime | None = None,
    batch_context: Mapping[str, Any] | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> tuple[list[ParsedEvent], list[Rejection]]:
    """Check every call; a bad one is listed, the others go on.

    ``body_bytes`` is the decoded body's size: when the whole body fits in one event's limit,
    no event can exceed it and nothing is re-measured.
    """
    parsed: list[ParsedEvent] = []
    rejected: list[Rejection] = []
    measure = body_bytes > max_event_bytes
    for index, raw in enumerate(items):
        try:
            if measure:
                size = event_size(raw)
                if size > max_event_bytes:
                    raise EventError(
                        f"event: {size} bytes as JSON, more than the limit of {max_event_bytes}",
                        Reason.TOO_LARGE,
                    )
            parsed.append(
                parse_event(
                    raw,
                    index,
                    received_at=received_at,
                    future_tolerance=future_tolerance,
                    call_type=call_type,
                    batch_sent_at=batch_sent_at,
                    batch_context=batch_context,
                    max_depth=max_depth,
                )
            )
        except EventError as err:
            rejected.append(Rejection(index, message_id_of(raw), str(err), err.reason))
    return parsed, rejected


def users_to_look_up(parsed: Iterable[ParsedEvent]) -> set[str]:
    """Users whose events name no account and whose group call is not earlier in this batch."""
    grouped: set[str] = set()
    wanted: set[str] = set()
    for event in parsed:
        if event.user_id is None:
            continue
        if event.type == "group":
            grouped.add(event.user_id)
        elif event.account_id is None and event.user_id not in grouped:
            wanted.add(event.user_id)
            if event.previous_id is not None and event.previous_id not in grouped:
                wanted.add(event.previous_id)
    return wanted


def resolve(
    parsed: Iterable[ParsedEvent],
    known_accounts: Mapping[str, str],
    config: TendConfig,
    *,
    received_at: datetime,
    write_key_id: int | None = None,
) -> tuple[list[AcceptedEvent], list[Rejection]]:
    """Account, login and feature for every parsed call, in order.

    Account order: what the call names (:func:`explicit_account`), then the user's group call
    earlier in this batch, then ``known_accounts`` (the user's last group call on record); for
    an alias call, the same for its ``previousId`` after its ``userId``. A track call with none
    is refused; identify, page, screen and alias calls may have no account.
    """
    from_batch: dict[str, str] = {}
    events: list[AcceptedEvent] = []
    rejected: list[Rejection] = []
    for p in parsed:
        account = p.account_id
        if account is None:
            for user in (p.user_id, p.previous_id):
                if account is None and user is not None:
                    account = from_batch.get(user) or known_accounts.get(user)
        kind = p.type
        if account is None and kind == "track":
            rejected.append(Rejection(p.index, p.message_id, NO_ACCOUNT_HELP, Reason.NO_ACCOUNT))
            continue
        if kind == "group" and p.user_id is not None and account is not None:
            from_batch[p.user_id] = account
        feature: str | None = None
        is_login = False
        if kind == "track":
            is_login = config.is_login(p.name)
            feature = config.feature_for(p.name, p.properties)
        elif kind == "page" or kind == "screen":
            feature = config.feature_for(p.name, p.properties)
        events.append(
            AcceptedEvent(
                p.message_id,
                kind,
                account,
                p.user_id,
                p.anonymous_id,
                p.previous_id,
                p.name,
                feature,
                is_login,
                p.time.occurred_at,
                received_at,
                p.properties,
                p.traits,
                write_key_id,
                p.exponent_floats,
            )
        )
    return events, rejected


def partition_key(event: AcceptedEvent) -> str:
    """The account id, so one account's events stay in order on one partition; an event with
    no account (identify, page, screen, alias) is keyed by its user."""
    return event.account_id or event.user_id or event.anonymous_id or event.event_id


_TYPE_HEADERS: Final = {kind: (("type", kind.encode()),) for kind in KNOWN_TYPES}


def to_message(event: AcceptedEvent) -> Message:
    # partition_key, inline: this runs once per event.
    key = event.account_id or event.user_id or event.anonymous_id or event.event_id
    return Message(event.to_bytes(), key.encode(), _TYPE_HEADERS[event.type])


def group_memberships(events: Iterable[AcceptedEvent]) -> dict[str, tuple[str, datetime]]:
    """user id -> (account id, when) of the latest group call per user among ``events``."""
    latest: dict[str, tuple[str, datetime]] = {}
    for e in events:
        if e.type != "group" or e.user_id is None or e.account_id is None:
            continue
        seen = latest.get(e.user_id)
        if seen is None or e.occurred_at >= seen[1]:
            latest[e.user_id] = (e.account_id, e.occurred_at)
    return latest

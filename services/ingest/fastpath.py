"""Pure: the common request, every call of it valid, read straight into msgspec structs.

:func:`read` returns what the general path (:func:`~services.ingest.body.parse_json`, the
route's batch checks, then :func:`~services.ingest.normalize.parse_batch`) makes of a body
when that path would accept every call, or None whenever it cannot vouch for that; the route
then runs the general path, whose answer stands. So the fast path decides nothing: it never
refuses, never writes a message, and accepts only what the general path accepts, with the
same values (a hypothesis test holds the two together: tests/ingest/test_fastpath.py).

Why it is faster: msgspec decodes the body into structs of the fields the checks read (about
half the cost of ``json.loads`` and the dicts), skipping the rest (``integrations``,
``context.library``...), and a few scans of the raw bytes replace the per-string checks:

- no string in the body holds a control character (tab and newline aside) or a lone
  surrogate: JSON can carry those only as escapes, and :data:`_UNSAFE_ESCAPE` finds every
  such escape (and some harmless ones: those bodies take the general path);
- the body is UTF-8 (``json.loads`` reads what strict UTF-8 reads and more; msgspec does not
  check the skipped strings);
- no run of digits is longer than Python's limit for ``int()`` (``json.loads`` refuses such
  an integer even where nothing reads it; msgspec skips it);
- msgspec is called a few frames deeper than ``json.loads`` would be, so a body nested
  deeply enough for ``json.loads``'s recursion limit fails msgspec's first.

A batch larger than one event's limit, whose calls the general path measures as re-written
JSON, is read call by call: each call's own bytes bound that measure (:data:`_MAX_GROWTH`).
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, cast

import msgspec

from services.ingest.normalize import (
    EXPONENT_FLOAT,
    KNOWN_TYPES,
    MAX_ID_CHARS,
    MAX_MESSAGE_ID_CHARS,
    MAX_NAME_CHARS,
    EventError,
    ParsedEvent,
    correct_clock_skew,
    parse_timestamp,
)
from shared.events import EventType

_UNSAFE_ESCAPE: Final = re.compile(rb"\\(?:u00[01][0-9a-fA-F]|[bfr])")
"""Every escape of a character :data:`~services.ingest.normalize._UNSAFE_IN_NAME` refuses
(``\\b``, ``\\f``, ``\\r``, ``\\u0000``-``\\u001f``; tab and newline escapes too, harmlessly).
Lone surrogates msgspec refuses itself."""
_DIGITS_AS_ZERO: Final = bytes(48 if 48 <= b <= 57 else 120 for b in range(256))
_INT_DIGITS_LIMIT: Final = sys.get_int_max_str_digits()
_TOO_MANY_DIGITS: Final = b"0" * (_INT_DIGITS_LIMIT + 1)
_EXTRA_FRAMES: Final = 8
"""``json.loads`` nests four Python frames below the route's call; msgspec runs this many
below it."""


class _Call(msgspec.Struct):
    """The fields of a Segment call the checks read, by their names on the wire; unknown fields
    are skipped. The types are narrower than the general path's where that is simpler (a call
    they refuse takes the general path)."""

    type: str | None = None
    messageId: str | int | None = None
    userId: str | int | float | None = None
    anonymousId: str | int | float | None = None
    previousId: str | int | float | None = None
    groupId: str | int | float | None = None
    event: str | None = None
    name: str | None = None
    context: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    timestamp: str | None = None
    originalTimestamp: str | None = None
    sentAt: str | None = None


class _SingleCall(_Call):
    """One call posted on its own route (``/v1/track``...): the body is the call."""

    writeKey: Any = None


class _Batch(msgspec.Struct):
    batch: list[_Call]
    sentAt: str | None = None
    context: dict[str, Any] | None = None
    writeKey: Any = None


class _LargeBatch(msgspec.Struct):
    """A batch body larger than one event's limit: each call kept as its own bytes, whose
    length bounds the size the general path measures (:data:`_MAX_GROWTH`)."""

    batch: list[msgspec.Raw]
    sentAt: str | None = None
    context: dict[str, Any] | None = None
    writeKey: Any = None


_BATCH: Final = msgspec.json.Decoder(_Batch)
_LARGE_BATCH: Final = msgspec.json.Decoder(_LargeBatch)
_CALL: Final = msgspec.json.Decoder(_Call)
_SINGLE: Final = msgspec.json.Decoder(_SingleCall)
_MAX_GROWTH: Final = 4.5
"""How much larger ``normalize.event_size`` (compact JSON, no ASCII escapes) can be than the
call's bytes in the body: only a float can grow, the most from four characters to eighteen
(``1e15`` is written ``1000000000000000.0``); whitespace, escapes, duplicate keys and every
other value only shrink or stay."""


@dataclass(frozen=True, slots=True)
class FastBody:
    write_key: str | None
    """What :func:`~services.ingest.auth.key_from_body` reads from the body."""
    count: int
    """Calls in the body."""
    parsed: list[ParsedEvent]
    """What ``parse_batch`` returns for them; it would refuse none."""


class _Doubt(Exception):
    """The general path may read this body differently: let it."""


def _plain(body: bytes) -> bool:
    if _UNSAFE_ESCAPE.search(body) is not None:
        return False
    if not body.isascii():
        try:
            body.decode()
        except UnicodeDecodeError:
            return False
    return not (
        _INT_DIGITS_LIMIT and len(body) > _INT_DIGITS_LIMIT
    ) or _TOO_MANY_DIGITS not in body.translate(_DIGITS_AS_ZERO)


def _deeper(frames: int, decode: Callable[[bytes], Any], body: bytes) -> Any:
    if frames > 0:
        return _deeper(frames - 1, decode, body)
    return decode(body)


def _key(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _id(value: str | int | float | None) -> str | None:
    """``normalize._id`` for a value of a narrowed type (no character needs a look)."""
    if value is None:
        return None
    text = value.strip() if type(value) is str else str(value)
    if len(text) > MAX_ID_CHARS:
        raise _Doubt
    return text or None


def _lax_id(value: Any) -> str | None:
    """``normalize._id`` for a value from a dict (any JSON type)."""
    if value is None:
        return None
    kind = type(value)
    if kind is not str and kind is not int and kind is not float:
        raise _Doubt
    return _id(value)


def _name(value: str | None, *, required: bool) -> str | None:
    """``normalize._name`` for a string or None."""
    if value is None or not (value := value.strip()):
        if required:
            raise _Doubt
        return None
    if len(value) > MAX_NAME_CHARS:
        raise _Doubt
    return value


def _tree(container: dict[str, Any] | list[Any], levels_left: int) -> bool:
    """``normalize._walk`` for a body :func:`_plain` vouched for (no string or key needs a
    look): the nesting limit and the floats written with an exponent. msgspec decodes no
    infinity."""
    if levels_left <= 0:
        raise _Doubt
    exponent = False
    items: Iterable[Any] = container.values() if type(container) is dict else container
    for item in items:
        kind = type(item)
        if kind is dict or kind is list:
            exponent = _tree(item, levels_left - 1) or exponent
        elif kind is float and not -EXPONENT_FLOAT < item < EXPONENT_FLOAT:
            exponent = True
    return exponent


def _parse(
    call: _Call,
    index: int,
    kind: str | None,
    received_at: datetime,
    future_tolerance: timedelta,
    batch_sent_at: datetime | None,
    batch_context: dict[str, Any] | None,
    max_depth: int,
) -> ParsedEvent:
    """``normalize.parse_event`` for a call it accepts; raises :class:`_Doubt` (or the
    :class:`EventError` of a time) otherwise. ``max_depth`` is at least 1."""
    if kind not in KNOWN_TYPES:
        raise _Doubt
    event_type = cast(EventType, kind)
    raw_id = call.messageId
    if raw_id is None or raw_id == "":
        message_id = str(uuid.uuid4())
    else:
        message_id = raw_id if type(raw_id) is str else str(raw_id)
        if len(message_id) > MAX_MESSAGE_ID_CHARS:
            raise _Doubt
    value = call.userId
    if type(value) is str:  # the usual case, without a call
        text = value.strip()
        if len(text) > MAX_ID_CHARS:
            raise _Doubt
        user_id = text or None
    else:
        user_id = _id(value)
    anonymous_id = None if call.anonymousId is None else _id(call.anonymousId)
    if user_id is None and anonymous_id is None:
        raise _Doubt
    context = call.context if call.context is not None else {}
    if batch_context:
        context = {**batch_context, **context}
    properties = call.properties if call.properties is not None else {}
    traits = call.traits if call.traits is not None else {}
    if not traits and event_type == "identify":
        from_context = context.get("traits")
        if from_context is None:
            traits = {}
        elif type(from_context) is dict:
            traits = from_context
        else:
            raise _Doubt
    exponent_floats = False
    for item in properties.values():  # flat properties of strings and ints need no walk
        item_type = type(item)
        if item_type is dict or item_type is list or item_type is float:
            exponent_floats = _tree(properties, max_depth)
            break
    if traits:
        exponent_floats = _tree(traits, max_depth) or exponent_floats

    name: str | None = None
    if event_type == "track":
        name = call.event
        if name is None or not (name := name.strip()) or len(name) > MAX_NAME_CHARS:
            raise _Doubt
    elif event_type == "page" or event_type == "screen":
        name = _name(call.name, required=False)
        if name is None and type(properties.get("name")) is str:
            name = _name(properties["name"], required=False)
    previous_id: str | None = None
    if event_type == "alias":
        previous_id = _id(call.previousId)
        if previous_id is None or user_id is None:
            raise _Doubt

    if event_type == "group":
        account_id = _id(call.groupId)
        if account_id is None:
            raise _Doubt
    else:
        group = context.get("groupId")
        if type(group) is str and 0 < len(group := group.strip()) <= MAX_ID_CHARS:
            account_id = group  # the usual case, without a call
        else:
            account_id = (
                _lax_id(context.get("groupId"))
                or _id(call.groupId)
                or _lax_id(properties.get("account_id"))
            )

    timestamp = parse_timestamp(call.timestamp, "timestamp")
    if timestamp is None:
        timestamp = parse_timestamp(call.originalTimestamp, "originalTimestamp")
    sent_at = batch_sent_at
    if call.sentAt is not None:
        sent_at = parse_timestamp(call.sentAt, "sentAt") or batch_sent_at
    time = correct_clock_skew(timestamp, sent_at, received_at, future_tolerance=future_tolerance)
    return ParsedEvent(
        index,
        event_type,
        message_id,
        user_id,
        anonymous_id,
        account_id,
        name,
        time,
        properties,
        traits,
        previous_id,
        exponent_floats,
    )


def read(
    body: bytes,
    call_type: str | None,
    *,
    received_at: datetime,
    future_tolerance: timedelta,
    max_batch_events: int,
    max_event_bytes: int,
    max_depth: int,
) -> FastBody | None:
    """The body's calls, checked, when the general path would accept every one of them with
    these values; None when it might not (then ask it). ``call_type`` is the route's type,
    None for ``/v1/batch``."""
    large = len(body) > max_event_bytes
    # A large single call is measured as re-written JSON by the general path.
    if (large and call_type is not None) or max_depth < 1 or not _plain(body):
        return None
    try:
        if call_type is None:
            # A large body has its calls measured by the general path: not needed when even
            # the most a call can grow stays within the limit.
            batch: _Batch | _LargeBatch = _deeper(
                _EXTRA_FRAMES, (_LARGE_BATCH if large else _BATCH).decode, body
            )
            if len(batch.batch) > max_batch_events:
                return None
            calls: list[_Call]
            if isinstance(batch, _LargeBatch):
                fits = max_event_bytes / _MAX_GROWTH
                if any(len(raw) > fits for raw in batch.batch):
                    return None
                calls = [_CALL.decode(raw) for raw in batch.batch]
            else:
                calls = batch.batch
            if not calls:
                return None
            write_key = batch.writeKey
            batch_sent_at = parse_timestamp(batch.sentAt, "sentAt")
            batch_context = batch.context or None
        else:
            single: _SingleCall = _deeper(_EXTRA_FRAMES, _SINGLE.decode, body)
            calls = [single]
            write_key = single.writeKey
            batch_sent_at = None
            batch_context = None
        parsed = [
            _parse(
                call,
                index,
                call.type if call_type is None else call_type,
                received_at,
                future_tolerance,
                batch_sent_at,
                batch_context,
                max_depth,
            )
            for index, call in enumerate(calls)
        ]
    except (msgspec.MsgspecError, RecursionError, _Doubt, EventError):
        return None
    return FastBody(write_key=_key(write_key), count=len(calls), parsed=parsed)

"""Pure: ingest refuses, per event and naming the field, what the pipeline cannot carry.

PostgreSQL text cannot hold NUL; UTF-8 cannot hold a lone surrogate; the scorer's decoder
stops at a nesting depth; a datetime stops at year 9999. Anything of that kind accepted by
ingest would be acknowledged and then stall or dead-letter downstream (issue 9, defects 1, 4, 5).
"""

from __future__ import annotations

from typing import Any

import pytest

from services.ingest import normalize
from services.ingest.normalize import EventError, parse_batch, resolve, to_message
from services.scorer.consumer import EventsHandler
from shared import topics
from shared.bus.base import Record
from shared.config import TendConfig
from shared.events import MAX_NESTING, EventStruct
from shared.settings import IngestSettings
from tests.ingest.test_normalize import RECEIVED, TOLERANCE, create_track

pytestmark = pytest.mark.unit


def nested(depth: int, *, leaf: Any = "leaf", array: bool = False) -> Any:
    """``depth`` levels of objects (or arrays), the outermost counting as one."""
    value = leaf
    for _ in range(depth):
        value = [value] if array else {"k": value}
    return value


def error_of(raw: dict[str, Any], **kw: Any) -> str:
    with pytest.raises(EventError) as caught:
        normalize.parse_event(raw, 0, received_at=RECEIVED, future_tolerance=TOLERANCE, **kw)
    return str(caught.value)


def parses(raw: dict[str, Any], **kw: Any) -> normalize.ParsedEvent:
    return normalize.parse_event(raw, 0, received_at=RECEIVED, future_tolerance=TOLERANCE, **kw)


def parse_all(
    calls: list[Any], **kw: Any
) -> tuple[list[normalize.ParsedEvent], list[normalize.Rejection]]:
    return parse_batch(
        calls,
        received_at=RECEIVED,
        future_tolerance=TOLERANCE,
        max_event_bytes=32_000,
        body_bytes=100,
        **kw,
    )


ID_FIELDS: list[tuple[str, Any]] = [
    ("userId", lambda bad: create_track(userId=f"u{bad}x")),
    ("anonymousId", lambda bad: create_track(anonymousId=f"a{bad}x")),
    ("messageId", lambda bad: create_track(messageId=f"m{bad}x")),
    ("groupId", lambda bad: create_track(context=None, groupId=f"g{bad}x")),
    ("context.groupId", lambda bad: create_track(context={"groupId": f"g{bad}x"})),
    (
        "properties.account_id",
        lambda bad: create_track(context=None, properties={"account_id": f"a{bad}x"}),
    ),
    ("event", lambda bad: create_track(event=f"Signed{bad}In")),
    ("name", lambda bad: {"type": "page", "userId": "u", "name": f"Home{bad}x"}),
    (
        "properties.name",
        lambda bad: {"type": "page", "userId": "u", "properties": {"name": f"Home{bad}x"}},
    ),
    ("properties", lambda bad: create_track(properties={f"k{bad}": 1})),
    ("properties.a.b", lambda bad: create_track(properties={"a": {"b": {f"k{bad}": 1}}})),
    ("traits", lambda bad: {"type": "group", "userId": "u", "groupId": "g", "traits": {bad: 1}}),
    (
        "context.traits",
        lambda bad: {"type": "identify", "userId": "u", "context": {"traits": {bad: 1}}},
    ),
]
"""(field named in the error, call with ``bad`` put into that id, name or key)."""


class TestIdsNamesAndKeys:
    @pytest.mark.parametrize(("field", "build"), ID_FIELDS)
    @pytest.mark.parametrize(
        ("bad", "what"),
        [
            ("\x00", "NUL"),
            ("\x01", "control character (U+0001)"),
            ("\r", "control character (U+000D)"),
            ("\x1b", "control character (U+001B)"),
            ("\x1f", "control character (U+001F)"),
            ("\ud800", "lone surrogate (U+D800)"),
            ("\udfff", "lone surrogate (U+DFFF)"),
        ],
    )
    def test_refused_naming_the_field(self, field: str, build: Any, bad: str, what: str) -> None:
        error = error_of(build(bad))
        assert error.startswith(f"{field}: "), error
        assert what in error

    @pytest.mark.parametrize(("field", "build"), ID_FIELDS)
    @pytest.mark.parametrize("fine", ["\t", "\n", "\x7f", "é", "😀", "\u2028"])
    def test_tab_newline_and_other_text_pass(self, field: str, build: Any, fine: str) -> None:
        parses(build(fine))

    def test_rejection_entry_does_not_echo_an_unsafe_message_id(self) -> None:
        _, rejected = parse_all([create_track(messageId="m\x00")])
        assert rejected[0].message_id is None
        assert rejected[0].error.startswith("messageId:")


class TestValues:
    @pytest.mark.parametrize(
        ("raw", "path"),
        [
            (create_track(properties={"p": "a\x00b"}), "properties.p"),
            (create_track(properties={"p": ["ok", {"q": "\x00"}]}), "properties.p[1].q"),
            (create_track(properties={"p": "\ud83d"}), "properties.p"),
            (
                {"type": "group", "userId": "u", "groupId": "g", "traits": {"name": "A\x00"}},
                "traits.name",
            ),
            (
                {"type": "identify", "userId": "u", "traits": {"a": [[["\udc00"]]]}},
                "traits.a[0][0][0]",
            ),
            (create_track(properties={"n": float("inf")}), "properties.n"),
            (create_track(properties={"n": [float("-inf")]}), "properties.n[0]"),
        ],
    )
    def test_refused_naming_the_path(self, raw: dict[str, Any], path: str) -> None:
        assert error_of(raw).startswith(f"{path}: ")

    @pytest.mark.parametrize(
        "value",
        ["tab\there", "line\nbreak", "\x01\x1b\x7f", "😀", 10**400, -(2**63), 1e308, -0.0, 5e-324],
    )
    def test_other_values_pass(self, value: Any) -> None:
        assert parses(create_track(properties={"v": value})).properties == {"v": value}

    def test_a_long_path_is_shortened(self) -> None:
        raw = create_track(properties={"k" * 300: "\x00"})
        error = error_of(raw)
        assert error.startswith("properties.kkk") and "...: contains a NUL" in error


class TestNesting:
    @pytest.mark.parametrize("array", [False, True])
    @pytest.mark.parametrize(("depth", "ok"), [(1, True), (32, True), (33, False), (255, False)])
    def test_default_limit_is_32(self, depth: int, ok: bool, array: bool) -> None:
        raw = create_track(properties={"p": nested(depth - 1, array=array)})
        if ok:
            parses(raw)
        else:
            assert error_of(raw) == (
                "properties: nested more than 32 levels deep (objects and arrays)"
            )

    @pytest.mark.parametrize("limit", [1, 5, MAX_NESTING])
    def test_configured_limit(self, limit: int) -> None:
        parses(create_track(properties=nested(limit)), max_depth=limit)
        assert "nested more than" in error_of(
            create_track(properties=nested(limit + 1)), max_depth=limit
        )

    def test_traits_are_limited_too(self) -> None:
        raw = {"type": "identify", "userId": "u", "traits": nested(33)}
        assert error_of(raw).startswith("traits: nested more than 32")

    def test_setting_cannot_exceed_what_the_decoder_reads(self) -> None:
        assert IngestSettings(max_depth=MAX_NESTING).max_depth == MAX_NESTING
        with pytest.raises(ValueError, match="max_depth"):
            IngestSettings(max_depth=MAX_NESTING + 1)

    @pytest.mark.parametrize("limit", [32, MAX_NESTING])
    @pytest.mark.parametrize("array", [False, True])
    def test_deepest_accepted_event_is_decodable_by_the_scorer(
        self, limit: int, array: bool
    ) -> None:
        """Defect 4: events nested 199-254 deep were answered 200, then not decodable."""
        calls = [
            create_track(messageId="deep-p", properties={"k": nested(limit - 1, array=array)}),
            {
                "type": "group",
                "userId": "u",
                "groupId": "g",
                "messageId": "deep-t",
                "traits": {"k": nested(limit - 1, leaf=1, array=array)},
            },
        ]
        parsed, rejected = parse_all(calls, max_depth=limit)
        assert not rejected
        events, unresolved = resolve(parsed, {}, TendConfig(), received_at=RECEIVED)
        assert not unresolved
        handler = EventsHandler(None)
        for offset, event in enumerate(events):
            message = to_message(event)
            record = Record(topics.EVENTS, 0, offset, message.value, message.key, message.headers)
            assert handler.decode(record) == EventStruct.from_model(event.canonical())


class TestTimestamps:
    @pytest.mark.parametrize(
        ("fields", "ok"),
        [
            ({"timestamp": "1970-01-01T00:00:00Z"}, True),
            ({"timestamp": "1969-12-31T23:59:59Z"}, False),
            ({"timestamp": "2100-12-31T23:59:59Z"}, True),
            ({"timestamp": "2101-01-01T00:00:00Z"}, False),
            ({"timestamp": "0001-01-01T00:00:00Z"}, False),
            # A clock stuck at year 1 is corrected by its own sentAt: the event is recent.
            ({"timestamp": "0001-01-01T00:00:00Z", "sentAt": "0001-01-01T00:05:00Z"}, True),
            ({"timestamp": "2026-05-01T11:00:00Z", "sentAt": "1900-01-01T00:00:00Z"}, False),
            ({"timestamp": "9999-12-31T23:59:59Z", "sentAt": "0001-01-01T00:00:00Z"}, False),
            ({"timestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T23:59:59Z"}, False),
        ],
    )
    def test_years_1970_to_2100_after_correction(self, fields: dict[str, str], ok: bool) -> None:
        raw = create_track(**fields)
        if ok:
            occurred = parses(raw).time.occurred_at
            assert 1970 <= occurred.year <= 2100
        else:
            assert error_of(raw).startswith("timestamp: outside the years 1970 to 2100")

    @pytest.mark.parametrize(
        ("text", "field"),
        [
            ("9999-12-31T23:59:59-01:00", "sentAt"),
            ("0001-01-01T00:00:00+01:00", "timestamp"),
        ],
    )
    def test_offsets_past_the_calendar(self, text: str, field: str) -> None:
        with pytest.raises(EventError, match=f"^{field}: .* outside the years 1 to 9999"):
            normalize.parse_timestamp(text, field)

    def test_far_future_within_the_range_is_still_clamped(self) -> None:
        t = parses(create_track(timestamp="2100-01-01T00:00:00Z")).time
        assert t.future_clamped and t.occurred_at == RECEIVED

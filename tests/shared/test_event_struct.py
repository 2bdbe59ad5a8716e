"""The scorer's fast decoder (``decode_event``) accepts and refuses exactly what the canonical
model accepts and refuses, with the same values (issue 13: msgspec on the consumer side)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.events import EXAMPLE_TRACK, MAX_NESTING, CanonicalEvent, EventStruct, decode_event

pytestmark = pytest.mark.unit

FIELDS = list(EventStruct.__struct_fields__)

text = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["", "x" * 100, "x" * 101, "\x00", "\ud83d\ude00", "acme"]),
)
ZONES = [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12, minutes=-59))]


@st.composite
def times(draw: st.DrawFn) -> Any:
    """Time values in the many spellings a producer may use, valid or not."""
    moment = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
    zone = draw(st.sampled_from(ZONES))
    iso = moment.replace(tzinfo=zone).isoformat()
    return draw(
        st.one_of(
            st.just(iso),
            st.just(moment.isoformat()),  # naive
            st.just(iso.replace("+00:00", "Z").replace("T", draw(st.sampled_from("Tt _")))),
            st.just(iso[:16] + iso[19:]),  # no seconds
            st.just(iso[:19] + "." + draw(st.text("0123456789", min_size=0, max_size=9)) + "Z"),
            st.just(iso[:19] + draw(st.sampled_from([",5", "+0100", "+01", "-00:00", "z"]))),
            st.just(iso[:10]),
            st.sampled_from(
                ["2026-01-01T23:59:59.9999995Z", "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z"]
            ),
            st.integers(-(2**40), 2**40),
            st.floats(allow_nan=False),
            st.none(),
        )
    )


leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(text, children, max_size=3)
    ),
    max_leaves=10,
)


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"k": value}
    return value


objects = st.one_of(
    st.dictionaries(text, trees, max_size=3),
    st.builds(nested, st.integers(MAX_NESTING - 3, 210)),
    trees,
)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.one_of(text, st.integers()),
    "type": st.one_of(
        st.sampled_from(["track", "identify", "group", "page", "screen", "alias"]),
        st.sampled_from(["Track", "", "batch"]),
    ),
    "occurred_at": times(),
    "received_at": times(),
    "is_login": st.one_of(st.booleans(), st.sampled_from([0, 1, "true", "yes", None, 1.0])),
    "properties": objects,
    "traits": objects,
    "write_key_id": st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([None, "3", 2.0])),
}
optional_text = st.one_of(st.none(), text, st.integers(0, 9))


@st.composite
def records(draw: st.DrawFn) -> bytes:
    """JSON objects shaped like canonical events: mostly valid, each field sometimes odd,
    missing or joined by an unknown one; written plain or ASCII-escaped."""
    base = json.loads(EXAMPLE_TRACK.to_bytes())
    for name in FIELDS:
        if draw(st.integers(0, 3)) == 0:
            base[name] = draw(VALUES.get(name, optional_text))
        if draw(st.integers(0, 15)) == 0:
            base.pop(name)
    if draw(st.integers(0, 15)) == 0:
        base[draw(st.sampled_from(["extra", "context", "Type"]))] = 1
    return json.dumps(base, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


def same(struct: EventStruct, model: CanonicalEvent) -> bool:
    want = EventStruct.from_model(model)
    times_equal = all(
        getattr(struct, n).isoformat() == getattr(want, n).isoformat()
        for n in ("occurred_at", "received_at")
    )
    return times_equal and struct == want


class TestDecodeEvent:
    @settings(max_examples=200, derandomize=True, deadline=None, database=None)
    @given(raw=records())
    def test_agrees_with_the_model(self, raw: bytes) -> None:
        try:
            model = CanonicalEvent.from_bytes(raw)
        except ValidationError as refused:
            with pytest.raises(ValidationError) as err:
                decode_event(raw)
            assert err.value.errors() == refused.errors()
            return
        assert same(decode_event(raw), model)

    @pytest.mark.parametrize(
        "raw",
        [
            b'{"a": 1}',
            b"not json",
            b"",
            EXAMPLE_TRACK.to_bytes()[:-1],
            EXAMPLE_TRACK.to_bytes().replace(b'"track"', b'"batch"'),
            EXAMPLE_TRACK.to_bytes().replace(b'00Z"', b'00"'),
            EXAMPLE_TRACK.to_bytes().replace(b"acme", b"\xff"),
        ],
    )
    def test_refuses_naming_the_field(self, raw: bytes) -> None:
        with pytest.raises(ValidationError) as got:
            decode_event(raw)
        with pytest.raises(ValidationError) as want:
            CanonicalEvent.from_bytes(raw)
        assert str(got.value) == str(want.value)

    def test_rounding_never_changes_the_day(self) -> None:
        raw = EXAMPLE_TRACK.to_bytes().replace(
            b'"2026-11-02T10:15:00Z"', b'"2026-11-02T23:59:59.9999995Z"'
        )
        assert decode_event(raw).occurred_at.date().day == 2

    @pytest.mark.parametrize("depth", [1, MAX_NESTING, 197, 198, 199, 250])
    def test_nesting_as_deep_as_the_model(self, depth: int) -> None:
        event = json.loads(EXAMPLE_TRACK.to_bytes())
        event["properties"] = nested(depth - 1) if depth > 1 else {}
        raw = json.dumps(event).encode()
        try:
            model = CanonicalEvent.from_bytes(raw)
        except ValidationError:
            with pytest.raises(ValidationError):
                decode_event(raw)
            assert depth > MAX_NESTING
            return
        assert same(decode_event(raw), model)

    @pytest.mark.parametrize("brackets", [b"[", b'{"k":'])
    def test_nesting_past_the_interpreter_s_recursion_limit(self, brackets: bytes) -> None:
        closing = b"]" if brackets == b"[" else b"}"
        deep = brackets * 5000 + b"1" + closing * 5000
        raw = EXAMPLE_TRACK.to_bytes().replace(
            b'"properties":{', b'"properties":{"a":' + deep + b","
        )
        with pytest.raises(ValidationError) as want:
            CanonicalEvent.from_bytes(raw)
        with pytest.raises(ValidationError) as got:
            decode_event(raw)
        assert got.value.errors() == want.value.errors()

    def test_round_trip_of_the_example(self) -> None:
        assert decode_event(EXAMPLE_TRACK.to_bytes()) == EventStruct.from_model(EXAMPLE_TRACK)

"""The fast path (msgspec structs) accepts only bodies the general path accepts in full, with
the same values (issue 13: decoding the body straight into structs)."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.ingest import segment_call
from services.ingest import fastpath, normalize
from services.ingest.auth import key_from_body
from services.ingest.body import BodyError, parse_json

pytestmark = pytest.mark.unit

RECEIVED = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
TOLERANCE = timedelta(hours=23)
TYPES = ["track", "identify", "group", "page", "screen", "alias"]


@dataclasses.dataclass
class Limits:
    max_batch_events: int = 2_500
    max_event_bytes: int = 32_000
    max_depth: int = 32


def general(body: bytes, call_type: str | None, limits: Limits) -> Any:
    """What the route's general path makes of ``body``: (write key, calls, parsed, rejected),
    or the error that refuses the whole request."""
    try:
        data = parse_json(body)
    except BodyError as err:
        return ("refused", err.status, str(err))
    write_key = key_from_body(data)
    if call_type is None:
        items = data.get("batch")
        if not isinstance(items, list):
            return ("refused", 400, "batch")
        if len(items) > limits.max_batch_events:
            return ("refused", 413, "batch")
        try:
            sent_at = normalize.parse_timestamp(data.get("sentAt"), "sentAt")
            context = normalize.batch_context(data)
        except normalize.EventError as err:
            return ("refused", 400, str(err))
    else:
        items, sent_at, context = [data], None, None
    parsed, rejected = normalize.parse_batch(
        items,
        received_at=RECEIVED,
        future_tolerance=TOLERANCE,
        max_event_bytes=limits.max_event_bytes,
        body_bytes=len(body),
        call_type=call_type,
        batch_sent_at=sent_at,
        batch_context=context,
        max_depth=limits.max_depth,
    )
    return write_key, items, parsed, rejected


def fast(body: bytes, call_type: str | None, limits: Limits) -> fastpath.FastBody | None:
    return fastpath.read(
        body,
        call_type,
        received_at=RECEIVED,
        future_tolerance=TOLERANCE,
        max_batch_events=limits.max_batch_events,
        max_event_bytes=limits.max_event_bytes,
        max_depth=limits.max_depth,
    )


def shown(parsed: list[normalize.ParsedEvent], items: list[Any]) -> str:
    """Every value with its type and key order (``repr``), generated message ids blanked."""
    out = []
    for p in parsed:
        raw = items[p.index]
        if raw.get("messageId") in (None, ""):
            p = msgspec.structs.replace(p, message_id="<generated>")
        out.append(repr(p))
    return "\n".join(out)


def assert_agree(body: bytes, call_type: str | None, limits: Limits) -> fastpath.FastBody | None:
    got = fast(body, call_type, limits)
    if got is None:
        return None
    want = general(body, call_type, limits)
    assert want[0] != "refused", want
    write_key, items, parsed, rejected = want
    assert rejected == []
    assert got.write_key == write_key
    assert got.count == len(items)
    assert shown(got.parsed, items) == shown(parsed, items)
    return got


# -- generated bodies ---------------------------------------------------------------------------

text = st.one_of(
    st.text(max_size=5),
    st.sampled_from(
        [
            "",
            " ",
            " u-1 ",
            "acme",
            "Report Exported",
            "x" * 200,
            " " + "x" * 200,
            "x" * 201,
            "x" * 100,
            "x" * 101,
            "a\x00b",
            "a\x1fb",
            "a\tb\n",
            "\x0b",
            "\x85é\u2028",
            "\ud800",
            "\ud83d\ude00",
            "[{",
        ]
    ),
)
numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.sampled_from([0, -0.0, 1e16, -1e16, 9999999999999998.0, 1e-7, 1.5e300]),
)
leaves = st.one_of(st.none(), st.booleans(), numbers, text)
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(text, children, max_size=3)
    ),
    max_leaves=8,
)
ids = st.one_of(
    st.none(), text, st.integers(-(2**64), 2**64), st.floats(allow_nan=False), st.booleans()
)
times = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "",
            "2026-05-01T11:59:58.123Z",
            "2026-05-01T11:59:58.123+00:00",
            "2026-05-01T13:59:58+02:00",
            "2026-05-01 11:59:58",
            " 2026-05-01T11:59:58Z ",
            "2026-05-01T11:59:58.1234567Z",
            "2026-05-01T23:59:59.9999995Z",
            "2026-05-03T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "0001-01-01T00:00:00+01:00",
            "yesterday",
            "2026-05-01",
        ]
    ),
    st.integers(0, 2**40),
)
objects = st.one_of(st.none(), st.dictionaries(text, trees, max_size=4), trees)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "type": st.one_of(st.sampled_from(TYPES), st.sampled_from(["", "Track", "batch", None, 1])),
    "messageId": ids,
    "userId": ids,
    "anonymousId": ids,
    "previousId": ids,
    "groupId": ids,
    "event": st.one_of(st.none(), text, st.integers()),
    "name": st.one_of(st.none(), text, st.integers()),
    "context": st.one_of(
        objects,
        st.fixed_dictionaries({}, optional={"groupId": ids, "traits": objects, "library": objects}),
    ),
    "properties": st.one_of(
        objects,
        st.fixed_dictionaries(
            {},
            optional={"name": ids, "account_id": ids, "feature": ids, "nested": trees},
        ),
    ),
    "traits": objects,
    "timestamp": times,
    "originalTimestamp": times,
    "sentAt": times,
    "integrations": trees,
    "writeKey": ids,
}


@st.composite
def calls(draw: st.DrawFn) -> dict[str, Any]:
    """Segment calls: mostly valid, each field sometimes odd, missing or unknown."""
    kind = draw(st.sampled_from(TYPES))
    call: dict[str, Any] = {
        "type": kind,
        "userId": "u-1",
        "messageId": draw(st.sampled_from(["m-1", "", None, 42])),
        "context": {"groupId": "acme", "library": {"name": "analytics-python"}},
        "properties": {"format": "csv", "rows": 3},
        "timestamp": "2026-05-01T11:59:58.123Z",
    }
    if kind == "track":
        call["event"] = "Report Exported"
    if kind == "group":
        call["groupId"] = "acme"
    if kind == "alias":
        call["previousId"] = "anon-1"
    for name, values in FIELDS.items():
        if draw(st.integers(0, 5)) == 0:
            call[name] = draw(values)
        if draw(st.integers(0, 12)) == 0:
            call.pop(name, None)
    return call


NUMBER_SPELLINGS = [
    "1E2",
    "-0",
    "1.5e+3",
    "0.1e1",
    "1e400",
    "-1e400",
    "123456789012345678901234567890",
    "1" * 4300,
    "1" * 4301,
    "1" * 5000 + ".5",
]


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str | None, Limits]:
    call_type = draw(st.sampled_from([None, None, None, *TYPES]))
    if call_type is None:
        data: dict[str, Any] = {"batch": draw(st.lists(calls(), min_size=0, max_size=4))}
        for name in ("sentAt", "context", "writeKey"):
            if draw(st.integers(0, 3)) == 0:
                data[name] = draw(FIELDS[name])
    else:
        data = draw(calls())
    text_body = json.dumps(
        data,
        ensure_ascii=draw(st.booleans()),
        separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])),
    )
    edit = draw(st.integers(0, 7))
    if edit == 0:
        # A number spelled as no encoder writes it, where nothing reads it.
        spelling = draw(st.sampled_from(NUMBER_SPELLINGS))
        text_body = text_body.replace('"type"', f'"extra": {spelling}, "type"', 1)
    elif edit == 1:
        # A duplicate key: json.loads keeps the last value, at the first one's place.
        name = draw(st.sampled_from(["userId", "properties", "format", "context", "batch"]))
        value = json.dumps(draw(FIELDS.get(name, trees)))
        text_body = text_body.replace(f'"{name}"', f'"{name}": {value}, "{name}"', 1)
    elif edit == 2:
        text_body = text_body.replace('"u-1"', '"u-\\u0031"').replace('"type"', '"typ\\u0065"')
    elif edit == 3:
        text_body = draw(st.sampled_from(["", " ", "[]", "null", "{", text_body + ","]))
    body = text_body.encode("utf-8", "surrogatepass")
    if edit == 4:
        body = body.replace(b'"analytics-python"', b'"analytics-\xff"')
    limits = Limits(
        max_batch_events=draw(st.sampled_from([2_500, 2])),
        max_event_bytes=draw(st.sampled_from([32_000, 1_000, 300])),
        max_depth=draw(st.sampled_from([32, 2, 1])),
    )
    return body, call_type, limits


class TestAgreement:
    @settings(max_examples=200, derandomize=True, deadline=None, database=None)
    @given(case=bodies())
    def test_fast_answers_only_what_the_general_path_accepts(
        self, case: tuple[bytes, str | None, Limits]
    ) -> None:
        assert_agree(*case)

    def test_the_benchmarks_batches_take_the_fast_path(self) -> None:
        body = json.dumps({"batch": [segment_call(i) for i in range(100)]}).encode()
        got = assert_agree(body, None, Limits())
        assert got is not None and got.count == 100

    def test_a_batch_larger_than_one_events_limit_takes_it_call_by_call(self) -> None:
        body = json.dumps({"batch": [segment_call(i) for i in range(300)]}).encode()
        assert len(body) > Limits().max_event_bytes
        got = assert_agree(body, None, Limits())
        assert got is not None and got.count == 300
        # One call too long to be sure of without measuring it: the general path measures.
        long_call = {**segment_call(0), "properties": {"text": "x" * 8_000}}
        body = json.dumps({"batch": [segment_call(1), long_call] * 5}).encode()
        assert len(body) > Limits().max_event_bytes
        assert fast(body, None, Limits()) is None

    def test_the_size_bound_holds_for_numbers_that_grow(self) -> None:
        """``1e15`` is written ``1000000000000000.0``: the call grows up to 4.5 times."""
        grown = {"type": "track", "userId": "u", "event": "e", "groupId": "a", "n": [1e15] * 9}
        raw = json.dumps(grown, separators=(",", ":")).replace("1000000000000000.0", "1e15")
        body = ("{" + f'"batch":[{",".join([raw] * 6)}]' + "}").encode()
        taken = 0
        for limit in range(len(raw), len(body)):
            got = assert_agree(body, None, Limits(max_event_bytes=limit))
            taken += got is not None
        assert taken

    @pytest.mark.parametrize("kind", TYPES)
    def test_every_call_type_takes_the_fast_path(self, kind: str) -> None:
        call = {
            "type": kind,
            "userId": " u-1 ",
            "anonymousId": 7,
            "previousId": "anon-1",
            "groupId": "acme",
            "event": "Signed In",
            "name": "Home",
            "context": {"traits": {"plan": "pro"}, "library": {"name": "x"}},
            "properties": {"big": 1e17, "list": [1, {"a": None}]},
            "timestamp": "2026-05-01T11:59:58.123Z",
            "sentAt": "2026-05-01T11:59:59Z",
        }
        for route in (None, kind):
            body = json.dumps({"batch": [call], "writeKey": " k "} if route is None else call)
            assert assert_agree(body.encode(), route, Limits()) is not None

    @pytest.mark.parametrize(
        "extra",
        [
            '"\\u0000"',
            '"a\\rb"',
            '"\\ud800"',
            "1" * (sys.get_int_max_str_digits() + 1),
            "NaN",
            "1e400",
        ],
    )
    def test_doubtful_bytes_where_nothing_reads_them_go_the_general_way(self, extra: str) -> None:
        call = {"type": "track", "userId": "u", "event": "e", "groupId": "acme"}
        body = json.dumps({"batch": [call]}).replace('"type"', f'"extra": {extra}, "type"')
        got = assert_agree(body.encode(), None, Limits())
        if extra != "1e400":
            assert got is None

    def test_a_body_nested_beyond_the_json_parsers_limit_goes_the_general_way(self) -> None:
        """msgspec and json.loads share the interpreter's recursion limit; msgspec runs a few
        frames deeper, so it gives up first (both are called from here, as from the route)."""
        call = json.dumps({"type": "track", "userId": "u", "event": "e", "groupId": "acme"})
        limit = sys.getrecursionlimit()
        taken = refused = 0
        for depth in range(limit - 80, limit + 5):
            body = f'{{"batch": [{call}], "extra": {"[" * depth}{"]" * depth}}}'.encode()
            got = fast(body, None, Limits())
            try:
                parse_json(body)
            except BodyError:
                refused += 1
                assert got is None, depth
            else:
                taken += got is not None
        assert taken and refused

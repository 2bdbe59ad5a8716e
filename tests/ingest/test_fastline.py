"""The fast path of ``tend import-events`` (msgspec, one archive line) accepts only lines the
general path (``json.loads`` + ``parse_event`` with the archive's rules) accepts, with the same
values: the general path is the reference."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.ingest import segment_call
from services.cli.import_events import parse_line
from services.ingest import normalize
from services.ingest.fastline import read_line
from tests.ingest.test_fastpath import FIELDS, NUMBER_SPELLINGS, RECEIVED, TOLERANCE, TYPES, calls

pytestmark = pytest.mark.unit

NUMBER = 7


def general(line: bytes, max_event_bytes: int, max_depth: int) -> Any:
    try:
        return parse_line(
            line,
            NUMBER,
            now=RECEIVED,
            future_tolerance=TOLERANCE,
            max_event_bytes=max_event_bytes,
            max_depth=max_depth,
        )
    except normalize.EventError as err:
        return ("refused", str(err))


def fast(line: bytes, max_event_bytes: int = 32_000, max_depth: int = 32) -> Any:
    return read_line(
        line,
        NUMBER,
        now=RECEIVED,
        future_tolerance=TOLERANCE,
        max_event_bytes=max_event_bytes,
        max_depth=max_depth,
    )


def assert_agree(line: bytes, max_event_bytes: int = 32_000, max_depth: int = 32) -> Any:
    got = fast(line, max_event_bytes, max_depth)
    if got is None:
        return None
    want = general(line, max_event_bytes, max_depth)
    assert repr(got) == repr(want)
    return got


RECEIVED_AT = st.one_of(
    st.none(),
    st.sampled_from(["", "2026-05-01T10:00:00Z", "2026-04-01T10:00:00.5+02:00", "nope", "  "]),
    st.integers(0, 2**40),
)


@st.composite
def lines(draw: st.DrawFn) -> tuple[bytes, int, int]:
    call = draw(calls())
    call.pop("writeKey", None) if draw(st.booleans()) else None
    if draw(st.integers(0, 2)) == 0:
        call["receivedAt"] = draw(RECEIVED_AT)
    text = json.dumps(
        call,
        ensure_ascii=draw(st.booleans()),
        separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])),
    )
    edit = draw(st.integers(0, 6))
    if edit == 0:
        spelling = draw(st.sampled_from(NUMBER_SPELLINGS))
        text = text.replace('"type"', f'"extra": {spelling}, "type"', 1)
    elif edit == 1:
        name = draw(st.sampled_from(["userId", "properties", "messageId", "timestamp", "sentAt"]))
        value = json.dumps(draw(FIELDS.get(name, st.none())))
        text = text.replace(f'"{name}"', f'"{name}": {value}, "{name}"', 1)
    elif edit == 2:
        text = draw(st.sampled_from(["[]", "null", "{", text + ",", " " + text + " \n"]))
    line = text.encode("utf-8", "surrogatepass")
    if edit == 3:
        line = line.replace(b'"analytics-python"', b'"analytics-\xff"')
    return line, draw(st.sampled_from([32_000, 300])), draw(st.sampled_from([32, 2, 1]))


class TestAgreement:
    @settings(max_examples=300, derandomize=True, deadline=None, database=None)
    @given(case=lines())
    def test_fast_answers_only_what_the_general_path_accepts(
        self, case: tuple[bytes, int, int]
    ) -> None:
        assert_agree(*case)

    def test_the_benchmarks_lines_take_the_fast_path(self) -> None:
        for i in range(50):
            assert assert_agree(json.dumps(segment_call(i)).encode() + b"\n") is not None

    @pytest.mark.parametrize("kind", TYPES)
    def test_the_archives_rules_on_the_fast_path(self, kind: str) -> None:
        call = {
            "type": kind,
            "userId": "u-1",
            "previousId": "anon-1",
            "groupId": "acme",
            "event": "Signed In",
            "context": {"groupId": "acme"},
            "timestamp": "2026-04-30T11:59:58Z",
            "sentAt": "2026-04-30T13:00:00Z",
            "receivedAt": "2026-04-30T12:00:00Z",
        }
        got = assert_agree(json.dumps(call).encode())
        assert got is not None
        # No messageId: one derived from the line; sentAt ignored beside a timestamp.
        assert got.message_id.startswith("import-")
        assert got.time.occurred_at.isoformat() == "2026-04-30T11:59:58+00:00"
        without_timestamp = {k: v for k, v in call.items() if k != "timestamp"}
        assert assert_agree(json.dumps(without_timestamp).encode()) is not None

    @pytest.mark.parametrize(
        "line",
        [
            b'{"type": "track", "userId": "u", "event": "e", "receivedAt": "nope"}',
            b'{"type": "track", "userId": "u", "event": "e", "extra": NaN}',
            b'{"type": "track", "userId": "u", "event": "e", "extra": "\\u0000"}',
            b'{"type": "track", "userId": "u", "event": "\xff"}',
            b"[1]",
        ],
    )
    def test_doubtful_lines_go_the_general_way(self, line: bytes) -> None:
        assert fast(line) is None

    def test_a_line_nested_beyond_the_json_parsers_limit_goes_the_general_way(self) -> None:
        limit = sys.getrecursionlimit()
        taken = refused = 0
        for depth in range(limit - 80, limit + 5):
            line = (
                f'{{"type": "track", "userId": "u", "event": "e", "x": {"[" * depth}{"]" * depth}}}'
            )
            got = fast(line.encode(), max_depth=10_000)
            if isinstance(general(line.encode(), 32_000, 10_000), tuple):
                refused += 1
                assert got is None, depth
            else:
                taken += got is not None
        assert refused

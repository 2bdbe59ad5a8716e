"""Hostile and careless client input through the real ingest server: never a 5xx.

Each case here answered 500 or 503 before (issue 9, defect 5): a 5xx tells the SDK to retry
the same request forever, so every one must be a 4xx, or a 200 that lists the event in
``rejected`` with the field named.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.ingest.test_api import post, track, uid
from tests.support.ingest import ServedApp

pytestmark = pytest.mark.integration


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


def raw_json(body: Any) -> bytes:
    # ensure_ascii keeps lone surrogates as \udxxx escapes: valid JSON text, as a client sends.
    # An infinite float stands for the literal 1e400, which Python's parser reads as inf.
    return json.dumps(body, ensure_ascii=True).replace("Infinity", "1e400").encode()


EVENT_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("properties 255 deep", {"properties": nested(255)}, "properties"),
    ("properties 300 deep", {"properties": nested(300)}, "properties"),
    ("properties 199 deep", {"properties": nested(199)}, "properties"),
    ("lone surrogate in a property", {"properties": {"p": "a\ud800b"}}, "properties.p"),
    ("lone surrogate in a key", {"properties": {"\udfff": 1}}, "properties"),
    ("lone surrogate in messageId", {"messageId": "m-\udc00"}, "messageId"),
    ("lone surrogate in userId", {"userId": "\ud83d"}, "userId"),
    ("NUL in userId", {"userId": "u\x00"}, "userId"),
    ("NUL in a nested trait value", {"properties": {"a": [{"b": "x\x00"}]}}, "properties.a[0].b"),
    (
        "far-off timestamp with sentAt",
        {"timestamp": "9999-12-31T23:59:59Z", "sentAt": "0001-01-01T00:00:00Z"},
        "timestamp",
    ),
    (
        "timestamp with sentAt before year 1",
        {"timestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T23:59:59Z"},
        "timestamp",
    ),
    ("offset past year 9999", {"timestamp": "9999-12-31T23:59:59-01:00"}, "timestamp"),
    ("offset before year 1", {"timestamp": "0001-01-01T00:00:00+01:00"}, "timestamp"),
    ("number beyond float range", {"properties": {"n": float("inf")}}, "properties.n"),
]

BAD_EVENTS = pytest.mark.parametrize(
    ("fields", "field"), [pytest.param(f, n, id=i) for i, f, n in EVENT_CASES]
)


class TestNoServerErrorForBadEvents:
    """A bad event is listed in ``rejected`` (batch) or answered 4xx (single call)."""

    @BAD_EVENTS
    async def test_batch_lists_it_and_takes_the_rest(
        self, ingest: ServedApp, write_key: str, fields: dict[str, Any], field: str
    ) -> None:
        bad = track("acme", **{"messageId": uid("m"), **fields})
        good = track("acme")
        raw = raw_json({"batch": [bad, good]})
        r = await post(ingest, "/v1/batch", None, key=write_key, raw=raw)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["accepted"] == 1, answer
        [rejected] = answer["rejected"]
        assert rejected["index"] == 0
        assert rejected["error"].startswith(field), rejected

    @BAD_EVENTS
    async def test_single_call_is_400(
        self, ingest: ServedApp, write_key: str, fields: dict[str, Any], field: str
    ) -> None:
        raw = raw_json(track("acme", **fields))
        r = await post(ingest, "/v1/track", None, key=write_key, raw=raw)
        assert r.status_code == 400, r.text
        assert r.json()["error"].startswith(field), r.text


class TestNoServerErrorForBadRequests:
    @pytest.mark.parametrize(
        "body",
        [
            pytest.param({"batch": [], "writeKey": "tend_wk_\ud800"}, id="surrogate"),
            pytest.param({"batch": [], "writeKey": "tend_wk_\x00"}, id="NUL"),
            pytest.param({"batch": [], "writeKey": "\udbff\udbff"}, id="two high surrogates"),
        ],
    )
    async def test_odd_write_key_in_the_body_is_401(
        self, ingest: ServedApp, body: dict[str, Any]
    ) -> None:
        r = await post(ingest, "/v1/batch", None, raw=raw_json(body))
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "unknown or revoked write key"

    @pytest.mark.parametrize(
        "sent_at",
        ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"],
    )
    async def test_batch_sent_at_out_of_range_is_400(
        self, ingest: ServedApp, write_key: str, sent_at: str
    ) -> None:
        body = {"batch": [track("acme")], "sentAt": sent_at}
        r = await post(ingest, "/v1/batch", body, key=write_key)
        assert r.status_code == 400, r.text
        assert r.json()["error"].startswith("sentAt:")

    async def test_json_nested_past_the_parser_is_400(
        self, ingest: ServedApp, write_key: str
    ) -> None:
        raw = b'{"batch": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
        r = await post(ingest, "/v1/batch", None, key=write_key, raw=raw)
        assert r.status_code == 400, r.text
        assert r.json()["error"].startswith("malformed JSON")

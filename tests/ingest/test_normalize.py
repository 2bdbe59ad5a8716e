"""The pure half of ingest: validation, clock skew, account resolution, limits."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.ingest import normalize
from services.ingest.body import BodyError, check_encoding, decode_body, parse_json
from services.ingest.normalize import (
    NO_ACCOUNT_HELP,
    EventError,
    Reason,
    correct_clock_skew,
    parse_batch,
    parse_event,
    resolve,
)
from services.ingest.ratelimit import RateLimiter
from shared.config import TendConfig
from shared.events import CanonicalEvent

RECEIVED = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
TOLERANCE = timedelta(hours=23)


def create_track(**overrides: Any) -> dict[str, Any]:
    call: dict[str, Any] = {
        "type": "track",
        "userId": "u-1",
        "event": "Report Exported",
        "messageId": "m-1",
        "context": {"groupId": "acme"},
    }
    call.update(overrides)
    return {k: v for k, v in call.items() if v is not None}


def parse(raw: Any, **kw: Any) -> normalize.ParsedEvent:
    return parse_event(raw, 0, received_at=RECEIVED, future_tolerance=TOLERANCE, **kw)


def one_event(raw: Any, known: dict[str, str] | None = None, **kw: Any) -> normalize.AcceptedEvent:
    events, rejected = resolve([parse(raw, **kw)], known or {}, TendConfig(), received_at=RECEIVED)
    assert not rejected, rejected
    return events[0]


class TestValidation:
    @pytest.mark.parametrize(
        ("raw", "field"),
        [
            ("not an object", "event"),
            ({"userId": "u"}, "type"),
            ({"type": "merge", "userId": "u"}, "type"),
            ({"type": "Screen", "userId": "u"}, "type"),
            ({"type": "alias", "userId": "u"}, "previousId"),
            ({"type": "alias", "anonymousId": "a", "previousId": "p"}, "userId"),
            ({"type": "alias", "userId": "u", "previousId": ["p"]}, "previousId"),
            ({"type": 7, "userId": "u"}, "type"),
            ({"type": "track", "event": "x", "groupId": "a"}, "userId or anonymousId"),
            ({"type": "track", "userId": "", "anonymousId": " "}, "userId or anonymousId"),
            ({"type": "track", "userId": ["u"], "event": "x"}, "userId"),
            ({"type": "track", "userId": "u", "groupId": "a"}, "event"),
            ({"type": "track", "userId": "u", "event": "  ", "groupId": "a"}, "event"),
            ({"type": "track", "userId": "u", "event": 5, "groupId": "a"}, "event"),
            ({"type": "group", "userId": "u"}, "groupId"),
            ({"type": "track", "userId": "u", "event": "x", "properties": []}, "properties"),
            ({"type": "track", "userId": "u", "event": "x", "context": "c"}, "context"),
            ({"type": "identify", "userId": "u", "traits": 3}, "traits"),
            (create_track(timestamp="yesterday"), "timestamp"),
            (create_track(timestamp=12345), "timestamp"),
            (create_track(sentAt="soon"), "sentAt"),
            (create_track(messageId=["m"]), "messageId"),
            (create_track(context={"groupId": {"id": 1}}), "context.groupId"),
            (create_track(userId="u" * 201), "userId"),
            (create_track(event="e" * 201), "event"),
        ],
    )
    def test_error_names_the_field(self, raw: Any, field: str) -> None:
        with pytest.raises(EventError) as err:
            parse(raw)
        assert str(err.value).startswith(field), str(err.value)

    def test_unknown_type_has_its_own_reason(self) -> None:
        with pytest.raises(EventError) as err:
            parse({"type": "merge", "userId": "u"})
        assert err.value.reason is Reason.UNKNOWN_TYPE
        assert "track, identify, group, page, screen, alias" in str(err.value)

    def test_route_type_wins_over_the_body(self) -> None:
        assert parse(create_track(type="identify"), call_type="track").type == "track"

    @pytest.mark.parametrize("kind", ["track", "identify", "group", "page"])
    def test_every_known_type_parses(self, kind: str) -> None:
        raw = {"type": kind, "anonymousId": "anon", "groupId": "acme", "event": "x"}
        assert parse(raw).type == kind

    def test_numeric_ids_become_strings(self) -> None:
        p = parse(create_track(userId=42, context={"groupId": 7}, messageId=99))
        assert (p.user_id, p.account_id, p.message_id) == ("42", "7", "99")

    def test_identify_traits_from_context_when_absent(self) -> None:
        p = parse({"type": "identify", "userId": "u", "context": {"traits": {"plan": "pro"}}})
        assert p.traits == {"plan": "pro"}

    def test_page_name_from_name_or_properties(self) -> None:
        assert parse({"type": "page", "userId": "u", "name": "Home"}).name == "Home"
        p = parse({"type": "page", "userId": "u", "properties": {"name": "Docs"}})
        assert p.name == "Docs"
        assert parse({"type": "page", "userId": "u"}).name is None


class TestScreenAndAlias:
    def test_screen_is_named_like_a_page_and_resolves_its_feature(self) -> None:
        config = TendConfig(feature_catalog={"Dashboard": "dashboards"})
        raw = {"type": "screen", "userId": "u-1", "name": "Dashboard", "groupId": "acme"}
        events, _ = resolve([parse(raw)], {}, config, received_at=RECEIVED)
        assert (events[0].type, events[0].name, events[0].feature) == (
            "screen",
            "Dashboard",
            "dashboards",
        )
        from_properties = parse({"type": "screen", "userId": "u", "properties": {"name": "Home"}})
        assert from_properties.name == "Home"

    def test_the_route_decides_the_type(self) -> None:
        raw = {"userId": "u-2", "previousId": "anon-7", "messageId": "m-a"}
        event = one_event(raw, {"u-2": "acme"}, call_type="alias")
        assert (event.type, event.previous_id, event.user_id) == ("alias", "anon-7", "u-2")
        assert event.account_id == "acme"

    def test_alias_account_from_the_previous_id_when_the_new_one_is_unknown(self) -> None:
        raw = {"type": "alias", "userId": "new@acme.example", "previousId": "u-9"}
        parsed = [parse(raw)]
        assert normalize.users_to_look_up(parsed) == {"new@acme.example", "u-9"}
        events, rejected = resolve(parsed, {"u-9": "acme"}, TendConfig(), received_at=RECEIVED)
        assert not rejected and events[0].account_id == "acme"

    def test_alias_without_any_account_is_accepted_and_keyed_by_its_user(self) -> None:
        event = one_event({"type": "alias", "userId": "u-3", "previousId": "p-3"})
        assert event.account_id is None
        assert normalize.to_message(event).key == b"u-3"

    def test_the_events_round_trip_through_the_topic_format(self) -> None:
        for raw in (
            {"type": "alias", "userId": "u-3", "previousId": "p-3", "groupId": "acme"},
            {"type": "screen", "userId": "u-3", "name": "Home", "groupId": "acme"},
        ):
            event = one_event(raw)
            assert CanonicalEvent.from_bytes(event.to_bytes()) == event.canonical()


class TestBatchContext:
    def test_batch_context_names_the_account_of_calls_without_one(self) -> None:
        batch = [create_track(context=None), create_track(context={"groupId": "beta"})]
        parsed, rejected = parse_batch(
            batch,
            received_at=RECEIVED,
            future_tolerance=TOLERANCE,
            max_event_bytes=32_000,
            body_bytes=1_000,
            batch_context={"groupId": "acme", "library": {"name": "x"}},
        )
        assert not rejected
        assert [p.account_id for p in parsed] == ["acme", "beta"]

    def test_batch_context_traits_serve_identify_calls(self) -> None:
        raw = {"type": "identify", "userId": "u-1", "context": {"ip": "1.2.3.4"}}
        parsed = parse(raw, batch_context={"traits": {"plan": "pro"}})
        assert parsed.traits == {"plan": "pro"}

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            ({}, None),
            ({"context": None}, None),
            ({"context": {}}, None),
            ({"context": {"a": 1}}, {"a": 1}),
        ],
    )
    def test_batch_context_of_a_body(self, body: dict[str, Any], expected: Any) -> None:
        assert normalize.batch_context(body) == expected

    def test_a_batch_context_that_is_not_an_object_is_named(self) -> None:
        with pytest.raises(EventError, match=r"^context: must be an object"):
            normalize.batch_context({"context": ["acme"]})


class TestMessageId:
    @pytest.mark.parametrize("length", [1, 99, 100])
    def test_up_to_100_characters_kept(self, length: int) -> None:
        assert parse(create_track(messageId="m" * length)).message_id == "m" * length

    def test_101_characters_refused(self) -> None:
        with pytest.raises(EventError, match=r"messageId: at most 100 characters \(got 101\)"):
            parse(create_track(messageId="m" * 101))

    @pytest.mark.parametrize("absent", [None, ""])
    def test_generated_when_absent(self, absent: str | None) -> None:
        raw = create_track()
        raw["messageId"] = absent
        first, second = parse(raw).message_id, parse(raw).message_id
        assert first and second and first != second and len(first) <= 100

    def test_rejection_carries_the_clients_message_id(self) -> None:
        _, rejected = parse_batch(
            [create_track(event=None, messageId="keep-me")],
            received_at=RECEIVED,
            future_tolerance=TOLERANCE,
            max_event_bytes=32_000,
            body_bytes=100,
        )
        assert rejected[0].message_id == "keep-me"


class TestClockSkew:
    def test_client_clock_behind_is_corrected(self) -> None:
        # The client's clock is 10 minutes slow: it says it sent at 11:50, we received at 12:00.
        ts = datetime(2026, 5, 1, 11, 45, tzinfo=UTC)
        sent = datetime(2026, 5, 1, 11, 50, tzinfo=UTC)
        t = correct_clock_skew(ts, sent, RECEIVED, future_tolerance=TOLERANCE)
        assert t.occurred_at == datetime(2026, 5, 1, 11, 55, tzinfo=UTC)
        assert t.skew_corrected and not t.future_clamped

    def test_client_clock_ahead_is_corrected(self) -> None:
        ts = datetime(2026, 5, 2, 11, 59, tzinfo=UTC)
        sent = datetime(2026, 5, 2, 12, 0, tzinfo=UTC)
        t = correct_clock_skew(ts, sent, RECEIVED, future_tolerance=TOLERANCE)
        assert t.occurred_at == RECEIVED - timedelta(minutes=1)

    def test_network_latency_is_not_counted_as_skew(self) -> None:
        sent = RECEIVED - timedelta(milliseconds=30)
        t = correct_clock_skew(sent, sent, RECEIVED, future_tolerance=TOLERANCE)
        assert t.occurred_at == RECEIVED and not t.skew_corrected

    def test_no_sent_at_keeps_the_timestamp(self) -> None:
        ts = RECEIVED - timedelta(days=400)
        t = correct_clock_skew(ts, None, RECEIVED, future_tolerance=TOLERANCE)
        assert t.occurred_at == ts and not t.skew_corrected and not t.future_clamped

    def test_no_timestamp_means_received_at(self) -> None:
        t = correct_clock_skew(None, RECEIVED, RECEIVED, future_tolerance=TOLERANCE)
        assert t.occurred_at == RECEIVED

    @pytest.mark.parametrize(
        ("ahead", "clamped"),
        [
            (timedelta(0), False),
            (timedelta(seconds=1), False),
            (TOLERANCE, False),
            (TOLERANCE + timedelta(microseconds=1), True),
            (timedelta(days=30), True),
        ],
    )
    def test_future_beyond_tolerance_becomes_received_at(
        self, ahead: timedelta, clamped: bool
    ) -> None:
        t = correct_clock_skew(RECEIVED + ahead, None, RECEIVED, future_tolerance=TOLERANCE)
        assert t.future_clamped is clamped
        assert t.occurred_at == (RECEIVED if clamped else RECEIVED + ahead)

    def test_zero_tolerance_clamps_any_future(self) -> None:
        t = correct_clock_skew(
            RECEIVED + timedelta(milliseconds=1), None, RECEIVED, future_tolerance=timedelta(0)
        )
        assert t.future_clamped and t.occurred_at == RECEIVED

    def test_parse_uses_the_batch_sent_at_unless_the_event_has_its_own(self) -> None:
        raw = create_track(timestamp="2026-05-01T11:00:00Z")
        batch_sent = datetime(2026, 5, 1, 11, 30, tzinfo=UTC)
        assert parse(raw, batch_sent_at=batch_sent).time.occurred_at == datetime(
            2026, 5, 1, 11, 30, tzinfo=UTC
        )
        own = create_track(timestamp="2026-05-01T11:00:00Z", sentAt="2026-05-01T11:00:00Z")
        assert parse(own, batch_sent_at=batch_sent).time.occurred_at == RECEIVED

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2026-05-01T10:00:00Z", datetime(2026, 5, 1, 10, tzinfo=UTC)),
            ("2026-05-01T10:00:00.123Z", datetime(2026, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)),
            ("2026-05-01T12:00:00+02:00", datetime(2026, 5, 1, 10, tzinfo=UTC)),
            ("2026-05-01T10:00:00", datetime(2026, 5, 1, 10, tzinfo=UTC)),
        ],
    )
    def test_timestamp_formats(self, text: str, expected: datetime) -> None:
        assert normalize.parse_timestamp(text, "timestamp") == expected


class TestAccountResolution:
    def test_context_group_id_first(self) -> None:
        raw = create_track(
            context={"groupId": "ctx"}, groupId="top", properties={"account_id": "prop"}
        )
        assert one_event(raw, {"u-1": "last"}).account_id == "ctx"

    def test_then_top_level_group_id(self) -> None:
        raw = create_track(context={}, groupId="top", properties={"account_id": "prop"})
        assert one_event(raw, {"u-1": "last"}).account_id == "top"

    def test_then_properties_account_id(self) -> None:
        raw = create_track(context={}, properties={"account_id": "prop"})
        assert one_event(raw, {"u-1": "last"}).account_id == "prop"

    def test_then_the_users_last_group_call(self) -> None:
        assert one_event(create_track(context={}), {"u-1": "last"}).account_id == "last"

    def test_group_call_earlier_in_the_batch_wins_over_the_record(self) -> None:
        items = [
            {"type": "group", "userId": "u-1", "groupId": "new"},
            create_track(context={}),
        ]
        parsed, _ = parse_batch(
            items,
            received_at=RECEIVED,
            future_tolerance=TOLERANCE,
            max_event_bytes=32_000,
            body_bytes=1,
        )
        assert normalize.users_to_look_up(parsed) == set()
        events, rejected = resolve(parsed, {"u-1": "old"}, TendConfig(), received_at=RECEIVED)
        assert not rejected
        assert [e.account_id for e in events] == ["new", "new"]

    def test_group_call_account_is_its_group_id(self) -> None:
        raw = {"type": "group", "userId": "u", "groupId": "acme", "context": {"groupId": "x"}}
        assert one_event(raw).account_id == "acme"

    def test_track_without_account_is_refused_with_how_to_fix(self) -> None:
        events, rejected = resolve(
            [parse(create_track(context={}))], {}, TendConfig(), received_at=RECEIVED
        )
        assert events == []
        assert rejected[0].reason is Reason.NO_ACCOUNT
        assert rejected[0].error == NO_ACCOUNT_HELP
        assert "context.groupId" in NO_ACCOUNT_HELP and "group call" in NO_ACCOUNT_HELP

    def test_anonymous_track_needs_an_explicit_account(self) -> None:
        raw = create_track(userId=None, anonymousId="anon", context={})
        parsed = [parse(raw)]
        assert normalize.users_to_look_up(parsed) == set()
        _, rejected = resolve(parsed, {}, TendConfig(), received_at=RECEIVED)
        assert rejected[0].reason is Reason.NO_ACCOUNT

    @pytest.mark.parametrize("kind", ["identify", "page"])
    def test_identify_and_page_may_have_no_account(self, kind: str) -> None:
        event = one_event({"type": kind, "userId": "u-9"})
        assert event.account_id is None
        assert normalize.partition_key(event) == "u-9"

    def test_lookup_only_for_users_without_an_account(self) -> None:
        parsed = [
            parse(create_track()),
            parse(create_track(userId="u-2", context={})),
            parse({"type": "identify", "userId": "u-3"}),
        ]
        assert normalize.users_to_look_up(parsed) == {"u-2", "u-3"}


class TestLoginAndFeature:
    config = TendConfig(feature_catalog={"Report Exported": "reports"})

    def resolve_one(self, raw: dict[str, Any]) -> normalize.AcceptedEvent:
        events, _ = resolve([parse(raw)], {}, self.config, received_at=RECEIVED)
        return events[0]

    @pytest.mark.parametrize("name", ["Signed In", "Logged In", "Login"])
    def test_default_login_names(self, name: str) -> None:
        assert self.resolve_one(create_track(event=name)).is_login

    def test_other_names_are_not_logins(self) -> None:
        assert not self.resolve_one(create_track(event="signed in")).is_login

    def test_feature_from_the_catalog_then_properties(self) -> None:
        assert self.resolve_one(create_track()).feature == "reports"
        other = create_track(event="Chart Drawn", properties={"feature": "charts"})
        assert self.resolve_one(other).feature == "charts"
        assert self.resolve_one(create_track(event="Chart Drawn")).feature is None

    def test_canonical_event_fields(self) -> None:
        event = self.resolve_one(
            create_track(
                timestamp="2026-05-01T11:00:00Z",
                properties={"format": "csv"},
                anonymousId="anon",
            )
        )
        assert event.as_dict() == {
            "event_id": "m-1",
            "type": "track",
            "account_id": "acme",
            "user_id": "u-1",
            "anonymous_id": "anon",
            "previous_id": None,
            "name": "Report Exported",
            "feature": "reports",
            "is_login": False,
            "occurred_at": datetime(2026, 5, 1, 11, tzinfo=UTC),
            "received_at": RECEIVED,
            "properties": {"format": "csv"},
            "traits": {},
            "write_key_id": None,
        }
        assert list(event.as_dict()) == list(CanonicalEvent.model_fields)
        message = normalize.to_message(event)
        assert message.key == b"acme"
        assert message.headers == (("type", b"track"),)
        assert CanonicalEvent.from_bytes(message.value) == event.canonical()


class TestTopicBytes:
    """What ingest writes is what ``CanonicalEvent.to_bytes`` writes, byte for byte, and the
    scorer's decoder (``CanonicalEvent.from_bytes``) reads it back unchanged."""

    @pytest.mark.parametrize(
        "raw",
        [
            create_track(
                timestamp="2026-05-01T11:00:00.123456+02:00",
                properties={
                    "text": 'Zoë 😀 \t\n "quoted" \\ </script>',
                    "big": 2**70,
                    "negative": -(2**63),
                    "float": 0.1,
                    "tiny": 5e-324,
                    "huge": 1.7e308,
                    "whole": 2.0,
                    "flags": [True, False, None],
                    "nested": {"a": [{"b": {"c": []}}], "": {}},
                },
            ),
            {"type": "identify", "userId": 42, "traits": {"name": "Zoë", "seats": 3}},
            {"type": "group", "userId": "u-1", "groupId": "acme", "traits": {"plan": "pro"}},
            {"type": "alias", "userId": "u-3", "previousId": "p-3"},
            {"type": "page", "anonymousId": "a-1", "name": "Home", "groupId": "acme"},
            create_track(
                properties={"ratio": 0.1, "tiny": 1e-7, "pi": 3.14159, "big": 2**70, "n": -5},
                timestamp="2026-05-01T11:00:00Z",
            ),
            {"type": "identify", "userId": "u-2", "context": {"traits": {"x": [[-1e300]]}}},
        ],
    )
    def test_bytes_equal_the_models_and_decode(self, raw: dict[str, Any]) -> None:
        event = one_event(raw)
        model = event.canonical()
        value = normalize.to_message(event).value
        assert value == model.to_bytes()
        assert CanonicalEvent.from_bytes(value) == model

    @pytest.mark.parametrize(
        ("number", "exponent"),
        [
            (9999999999999998.0, False),
            (-9999999999999998.0, False),
            (1e16, True),
            (-1e16, True),
            (1.2345678901234568e17, True),
            (1e-5, False),
            (5e-324, False),
        ],
    )
    def test_floats_written_with_an_exponent_keep_pydantic_cores_form(
        self, number: float, exponent: bool
    ) -> None:
        """msgspec writes ``1e16`` where pydantic-core writes ``1e+16``: such events are
        flagged while checked, nested or not, and written by pydantic-core."""
        event = one_event(create_track(properties={"deep": [{"n": number}]}))
        assert event.exponent_floats is exponent
        assert normalize.to_message(event).value == event.canonical().to_bytes()


class TestLimits:
    def batch(self, n: int, **kw: Any) -> tuple[list[Any], list[Any]]:
        items = [create_track(messageId=f"m-{i}") for i in range(n)]
        return parse_batch(
            items,
            received_at=RECEIVED,
            future_tolerance=TOLERANCE,
            max_event_bytes=kw.get("max_event_bytes", 32_000),
            body_bytes=kw.get("body_bytes", 10**6),
        )

    @pytest.mark.parametrize("n", [0, 1, 100])
    def test_batch_sizes(self, n: int) -> None:
        parsed, rejected = self.batch(n)
        assert len(parsed) == n and rejected == []

    def event_of_size(self, size: int) -> dict[str, Any]:
        raw = create_track(properties={"pad": ""})
        pad = size - normalize.event_size(raw)
        raw["properties"]["pad"] = "x" * pad
        assert normalize.event_size(raw) == size
        return raw

    @pytest.mark.parametrize(("size", "ok"), [(200, True), (32_000, True), (32_001, False)])
    def test_event_size(self, size: int, ok: bool) -> None:
        parsed, rejected = parse_batch(
            [self.event_of_size(size)],
            received_at=RECEIVED,
            future_tolerance=TOLERANCE,
            max_event_bytes=32_000,
            body_bytes=size + 20,
        )
        assert (len(parsed), len(rejected)) == ((1, 0) if ok else (0, 1))
        if not ok:
            assert rejected[0].reason is Reason.TOO_LARGE
            assert rejected[0].error.startswith("event: 32001 bytes")

    def test_multibyte_characters_count_as_bytes(self) -> None:
        accented = create_track(properties={"name": "é" * 10})
        ascii_twice = create_track(properties={"name": "ab" * 10})
        assert normalize.event_size(accented) == normalize.event_size(ascii_twice)


class TestBody:
    @pytest.mark.parametrize("size", [1, 999, 1000])
    def test_plain_body_up_to_the_limit(self, size: int) -> None:
        assert len(decode_body(b"x" * size, limit=1000, gzip=False)) == size

    def test_plain_body_over_the_limit(self) -> None:
        with pytest.raises(BodyError) as err:
            decode_body(b"x" * 1001, limit=1000, gzip=False)
        assert err.value.status == 413

    @pytest.mark.parametrize("size", [0, 1, 1000])
    def test_gzip_up_to_the_limit(self, size: int) -> None:
        assert decode_body(gzip.compress(b"y" * size), limit=1000, gzip=True) == b"y" * size

    def test_gzip_limit_applies_to_decompressed_size(self) -> None:
        packed = gzip.compress(b"y" * 1001)
        assert len(packed) < 100
        with pytest.raises(BodyError) as err:
            decode_body(packed, limit=1000, gzip=True)
        assert err.value.status == 413 and "decompressed" in str(err.value)

    def test_gzip_bomb_is_refused_without_inflating_it(self) -> None:
        bomb = gzip.compress(b"\0" * 50_000_000)
        with pytest.raises(BodyError) as err:
            decode_body(bomb, limit=500_000, gzip=True)
        assert err.value.status == 413

    def test_gzip_in_small_chunks_and_concatenated_members(self) -> None:
        from services.ingest.body import BodyReader

        data = gzip.compress(b"a" * 3000) + gzip.compress(b"b" * 3000)
        reader = BodyReader(10_000, gzip=True)
        for i in range(0, len(data), 7):
            reader.feed(data[i : i + 7])
        assert reader.finish() == b"a" * 3000 + b"b" * 3000

    @pytest.mark.parametrize("raw", [b"not gzip at all", gzip.compress(b"{}" * 100)[:-12]])
    def test_corrupt_or_truncated_gzip_is_400(self, raw: bytes) -> None:
        with pytest.raises(BodyError) as err:
            decode_body(raw, limit=1000, gzip=True)
        assert err.value.status == 400

    @pytest.mark.parametrize(
        ("encoding", "is_gzip"), [(None, False), ("", False), ("identity", False), ("GZIP", True)]
    )
    def test_encodings(self, encoding: str | None, is_gzip: bool) -> None:
        assert check_encoding(encoding) is is_gzip

    @pytest.mark.parametrize("encoding", ["br", "deflate", "zstd"])
    def test_other_encodings_are_415(self, encoding: str) -> None:
        with pytest.raises(BodyError) as err:
            check_encoding(encoding)
        assert err.value.status == 415

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"", "body: empty"),
            (b"{", "malformed JSON"),
            (b'{"a": NaN}', "malformed JSON"),
            (b"\xff\xfe", "malformed JSON"),
            (b"[1, 2]", "body: must be a JSON object"),
            (b"[" * 100_000 + b"]" * 100_000, "malformed JSON"),
        ],
    )
    def test_bad_json_is_400(self, body: bytes, message: str) -> None:
        with pytest.raises(BodyError) as err:
            parse_json(body)
        assert err.value.status == 400 and str(err.value).startswith(message)


class TestRateLimiter:
    def test_burst_then_refill(self) -> None:
        now = [0.0]
        limiter = RateLimiter(10, 20, clock=lambda: now[0])
        assert limiter.acquire(1, 20) is None
        assert limiter.acquire(1, 1) == 1
        assert limiter.acquire(2, 1) is None  # buckets are per key
        now[0] += 0.5
        assert limiter.acquire(1, 5) is None
        assert limiter.acquire(1, 1) is not None

    def test_batch_bigger_than_the_burst_passes_once_then_pays(self) -> None:
        now = [0.0]
        limiter = RateLimiter(10, 20, clock=lambda: now[0])
        assert limiter.acquire(1, 50) is None
        wait = limiter.acquire(1, 1)
        assert wait is not None and wait >= 3
        now[0] += wait
        assert limiter.acquire(1, 1) is None

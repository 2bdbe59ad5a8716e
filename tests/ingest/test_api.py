"""The ingest API end to end: uvicorn, the tansu broker, PostgreSQL, the Segment SDK."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import segment.analytics as analytics
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.normalize import NO_ACCOUNT_HELP
from shared.db.keys import revoke_key
from shared.db.models import UserAccount
from shared.db.session import transaction
from tests.support.broker import TansuBroker
from tests.support.ingest import ServedApp, new_write_key, read_events

pytestmark = pytest.mark.integration


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def track(account: str | None = None, **fields: Any) -> dict[str, Any]:
    call: dict[str, Any] = {
        "type": "track",
        "userId": fields.pop("userId", uid("user")),
        "event": "Report Exported",
        "messageId": uid("m"),
    }
    if account is not None:
        call["context"] = {"groupId": account}
    call.update(fields)
    return call


async def post(
    served: ServedApp,
    path: str,
    body: Any,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> httpx.Response:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        all_headers.update(basic(key))
    content = raw if raw is not None else json.dumps(body).encode()
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as client:
        return await client.post(path, content=content, headers=all_headers)


def sdk_client(served: ServedApp, key: str, *, gzip: bool = False) -> analytics.Client:
    # sync_mode: every call is one POST /v1/batch; a non-2xx answer raises in the test.
    return analytics.Client(key, host=served.url, sync_mode=True, gzip=gzip, max_retries=0)


class TestSegmentSdk:
    """Calls made with the official segment-analytics-python SDK arrive on tend.events.v1."""

    @pytest.mark.parametrize("use_gzip", [False, True])
    async def test_calls_arrive_with_account_key_and_fields(
        self,
        ingest: ServedApp,
        write_key: str,
        broker: TansuBroker,
        pg_sessions: async_sessionmaker[AsyncSession],
        use_gzip: bool,
    ) -> None:
        client = sdk_client(ingest, write_key, gzip=use_gzip)
        user, account = uid("user"), uid("acct")
        ids = {
            "group": uid("g"),
            "login": uid("t"),
            "feature": uid("t"),
            "identify": uid("i"),
            "page": uid("p"),
        }

        def send() -> None:
            client.group(user, account, traits={"name": "Acme"}, message_id=ids["group"])
            # No account in these calls: resolved through the group call above.
            client.track(user, "Signed In", message_id=ids["login"])
            client.track(
                user,
                "Chart Drawn",
                properties={"feature": "charts", "n": 3},
                message_id=ids["feature"],
            )
            client.identify(user, traits={"email": "a@example.com"}, message_id=ids["identify"])
            client.page(user, name="Home", message_id=ids["page"])

        await asyncio.to_thread(send)
        found = await read_events(broker.bootstrap, set(ids.values()))
        assert found.keys() == set(ids.values())

        key, headers, group = found[ids["group"]]
        assert key == account.encode() and headers["type"] == b"group"
        assert group.type == "group" and group.traits == {"name": "Acme"}

        key, headers, login = found[ids["login"]]
        assert key == account.encode() and headers["type"] == b"track"
        assert (login.account_id, login.user_id, login.name) == (account, user, "Signed In")
        assert login.is_login and login.feature is None
        assert login.write_key_id is not None

        _, _, feature = found[ids["feature"]]
        assert feature.feature == "charts" and feature.properties == {"feature": "charts", "n": 3}
        assert not feature.is_login

        _, headers, ident = found[ids["identify"]]
        assert headers["type"] == b"identify"
        assert ident.traits == {"email": "a@example.com"} and ident.account_id == account

        key, _, page = found[ids["page"]]
        assert key == account.encode()
        assert (page.type, page.name) == ("page", "Home")

        async with pg_sessions() as session:
            row = await session.scalar(select(UserAccount).where(UserAccount.user_id == user))
        assert row is not None and row.account_id == account

    async def test_identify_without_account_is_keyed_by_user(
        self, ingest: ServedApp, write_key: str, broker: TansuBroker
    ) -> None:
        client = sdk_client(ingest, write_key)
        user, message_id = uid("user"), uid("i")
        await asyncio.to_thread(client.identify, user, {"plan": "pro"}, message_id=message_id)
        found = await read_events(broker.bootstrap, {message_id})
        key, _, event = found[message_id]
        assert key == user.encode() and event.account_id is None


class TestBatch:
    async def test_partial_failure_lists_the_rejected(
        self, ingest: ServedApp, write_key: str, broker: TansuBroker
    ) -> None:
        good = [track("acme"), track(None, properties={"account_id": "beta"})]
        bad = [
            track(None, userId=uid("nobody")),
            {"type": "track", "userId": "u", "groupId": "a", "messageId": "no-event"},
            {"type": "merge", "userId": "u", "messageId": "merge"},
            track("acme", messageId="m" * 101),
        ]
        body = {"batch": [good[0], *bad[:2], good[1], *bad[2:]]}
        r = await post(ingest, "/v1/batch", body, key=write_key)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["success"] is True and answer["accepted"] == 2
        rejected = {e["index"]: e for e in answer["rejected"]}
        assert rejected.keys() == {1, 2, 4, 5}
        assert rejected[1]["error"] == NO_ACCOUNT_HELP
        assert rejected[2]["messageId"] == "no-event" and rejected[2]["error"].startswith("event:")
        assert rejected[4]["error"].startswith("type:")
        assert rejected[5]["error"].startswith("messageId:")

        found = await read_events(broker.bootstrap, {g["messageId"] for g in good})
        assert found[good[0]["messageId"]][0] == b"acme"
        assert found[good[1]["messageId"]][0] == b"beta"

    async def test_gzip_body(self, ingest: ServedApp, write_key: str, broker: TansuBroker) -> None:
        calls = [track("acme") for _ in range(50)]
        packed = gzip.compress(json.dumps({"batch": calls}).encode())
        r = await post(
            ingest,
            "/v1/batch",
            None,
            key=write_key,
            raw=packed,
            headers={"Content-Encoding": "gzip"},
        )
        assert r.status_code == 200 and r.json()["accepted"] == 50
        found = await read_events(broker.bootstrap, {c["messageId"] for c in calls})
        assert len(found) == 50

    @pytest.mark.parametrize("n", [0, 1, 2_500])
    async def test_batch_sizes_up_to_the_limit(
        self, ingest: ServedApp, write_key: str, n: int
    ) -> None:
        r = await post(
            ingest, "/v1/batch", {"batch": [track("acme") for _ in range(n)]}, key=write_key
        )
        assert r.status_code == 200 and r.json() == {"success": True, "accepted": n, "rejected": []}

    async def test_key_in_the_body_and_in_a_header(self, ingest: ServedApp, write_key: str) -> None:
        r = await post(ingest, "/v1/batch", {"batch": [track("acme")], "writeKey": write_key})
        assert r.status_code == 200
        r = await post(ingest, "/v1/track", track("acme"), headers={"X-Write-Key": write_key})
        assert r.status_code == 200 and r.json()["accepted"] == 1


class TestSingleCalls:
    @pytest.mark.parametrize(
        ("path", "body"),
        [
            ("/v1/track", {"userId": "u", "event": "Signed In", "groupId": "acme"}),
            ("/v1/identify", {"userId": "u", "traits": {"plan": "pro"}}),
            ("/v1/group", {"userId": "u", "groupId": "acme", "traits": {"seats": 10}}),
            ("/v1/page", {"anonymousId": "a", "name": "Pricing", "groupId": "acme"}),
        ],
    )
    async def test_each_route(
        self, ingest: ServedApp, write_key: str, broker: TansuBroker, path: str, body: Any
    ) -> None:
        body = {**body, "messageId": uid("m")}
        r = await post(ingest, path, body, key=write_key)
        assert r.status_code == 200 and r.json() == {"success": True, "accepted": 1, "rejected": []}
        found = await read_events(broker.bootstrap, {body["messageId"]})
        assert found[body["messageId"]][2].type == path.rsplit("/", 1)[1]


class TestBadInput:
    """Every whole-request problem is a 4xx with {"success": false, "error": ...}."""

    @pytest.mark.parametrize(
        ("path", "raw", "headers", "status", "error"),
        [
            ("/v1/batch", b"{not json", {}, 400, "malformed JSON"),
            ("/v1/batch", b"", {}, 400, "body: empty"),
            ("/v1/batch", b"[]", {}, 400, "body: must be a JSON object"),
            ("/v1/batch", b'{"batch": {}}', {}, 400, "batch:"),
            ("/v1/batch", b'{"sentAt": "x", "batch": []}', {}, 400, "sentAt:"),
            ("/v1/batch", b"\x1f\x8b garbage", {"Content-Encoding": "gzip"}, 400, "body:"),
            ("/v1/batch", b"{}", {"Content-Encoding": "br"}, 415, "Content-Encoding"),
            ("/v1/track", b'{"event": "x", "groupId": "a"}', {}, 400, "userId or anonymousId"),
            ("/v1/track", b'{"userId": "u", "groupId": "a"}', {}, 400, "event:"),
            ("/v1/group", b'{"userId": "u"}', {}, 400, "groupId:"),
            ("/v1/track", b'{"userId": "never-grouped", "event": "x"}', {}, 400, "no account"),
            ("/v1/identify", b'{"userId": "u", "timestamp": "x"}', {}, 400, "timestamp:"),
        ],
    )
    async def test_4xx(
        self,
        ingest: ServedApp,
        write_key: str,
        path: str,
        raw: bytes,
        headers: dict[str, str],
        status: int,
        error: str,
    ) -> None:
        r = await post(ingest, path, None, key=write_key, raw=raw, headers=headers)
        assert r.status_code == status, r.text
        answer = r.json()
        assert answer["success"] is False and answer["error"].startswith(error), answer
        # tend's code beside Segment's keys: the request's problem, or the one call's reason
        if path == "/v1/batch":
            code = {400: "bad_request", 415: "unsupported_media_type"}[status]
        else:
            code = "no_account" if error == "no account" else "invalid"
        assert answer["code"] == code, answer

    async def test_too_many_events(self, ingest: ServedApp, write_key: str) -> None:
        r = await post(
            ingest, "/v1/batch", {"batch": [track("a") for _ in range(2_501)]}, key=write_key
        )
        assert r.status_code == 413
        assert r.json() == {
            "success": False,
            "error": "batch: 2501 events, more than the limit of 2500",
            "code": "too_large",
            "field": "batch",
        }

    @pytest.mark.parametrize(("size", "status"), [(500_000, 200), (500_001, 413)])
    async def test_body_size(
        self, ingest: ServedApp, write_key: str, size: int, status: int
    ) -> None:
        r = await post(ingest, "/v1/batch", None, key=write_key, raw=padded_batch(size))
        assert r.status_code == status, r.text

    @pytest.mark.parametrize(("size", "status"), [(500_000, 200), (500_001, 413)])
    async def test_gzip_limit_is_on_the_decompressed_size(
        self, ingest: ServedApp, write_key: str, size: int, status: int
    ) -> None:
        packed = gzip.compress(padded_batch(size))
        r = await post(
            ingest,
            "/v1/batch",
            None,
            key=write_key,
            raw=packed,
            headers={"Content-Encoding": "gzip"},
        )
        assert r.status_code == status, r.text

    async def test_gzip_bomb(self, ingest: ServedApp, write_key: str) -> None:
        bomb = gzip.compress(b" " * 200_000_000)
        r = await post(
            ingest, "/v1/batch", None, key=write_key, raw=bomb, headers={"Content-Encoding": "gzip"}
        )
        assert r.status_code == 413

    async def test_one_event_too_large(self, ingest: ServedApp, write_key: str) -> None:
        big = track("acme", properties={"pad": "x" * 33_000})
        r = await post(ingest, "/v1/batch", {"batch": [big, track("acme")]}, key=write_key)
        assert r.status_code == 200
        assert r.json()["accepted"] == 1 and r.json()["rejected"][0]["index"] == 0
        r = await post(ingest, "/v1/track", big, key=write_key)
        assert r.status_code == 413 and r.json()["error"].startswith("event:")

    async def test_unknown_route_and_method(self, ingest: ServedApp) -> None:
        async with httpx.AsyncClient(base_url=ingest.url) as client:
            # Not a tracking path: no SDK calls it, so the tend shape of every other API.
            r = await client.post("/v1/nothing", content=b"{}")
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
            r = await client.get("/v1/batch")
            assert r.status_code == 405 and r.json()["success"] is False
            assert r.json()["code"] == "method_not_allowed"


def padded_batch(size: int) -> bytes:
    """A valid batch body of exactly ``size`` bytes (many events, each below 32 KB)."""
    calls = [track("acme", properties={"pad": ""}) for _ in range(size // 20_000 + 1)]
    body = json.dumps({"batch": calls}).encode()
    missing = size - len(body)
    per, extra = divmod(missing, len(calls))
    for i, call in enumerate(calls):
        call["properties"]["pad"] = "x" * (per + (1 if i < extra else 0))
    body = json.dumps({"batch": calls}).encode()
    assert len(body) == size
    return body


class TestAuth:
    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Basic " + base64.b64encode(b"tend_wk_unknown:").decode()},
            {"X-Write-Key": "tend_wk_unknown"},
            {"Authorization": "Bearer something"},
            {"Authorization": "Basic !!!"},
        ],
    )
    async def test_401(self, ingest: ServedApp, headers: dict[str, str]) -> None:
        r = await post(ingest, "/v1/batch", {"batch": [track("acme")]}, headers=headers)
        assert r.status_code == 401 and r.json()["success"] is False
        assert "tend_wk_unknown" not in r.text

    async def test_unknown_key_in_body(self, ingest: ServedApp) -> None:
        r = await post(ingest, "/v1/batch", {"batch": [], "writeKey": "tend_wk_unknown"})
        assert r.status_code == 401

    async def test_revoked_key(
        self, ingest: ServedApp, pg_url: str, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        key_id, plaintext = await new_write_key(pg_url, "to-revoke")
        async with transaction(pg_sessions) as session:
            await revoke_key(session, key_id)
        r = await post(ingest, "/v1/batch", {"batch": [track("acme")]}, key=plaintext)
        assert r.status_code == 401 and r.json() == {
            "success": False,
            "error": "unknown or revoked write key",
            "code": "unauthorized",
        }


class TestRateLimit:
    async def test_429_with_retry_after(
        self,
        serve_ingest: Callable[..., ServedApp],
        broker: TansuBroker,
        write_key: str,
    ) -> None:
        served = serve_ingest(broker.bootstrap, rate_limit_per_s=0.5, rate_limit_burst=10)
        r = await post(
            served, "/v1/batch", {"batch": [track("a") for _ in range(10)]}, key=write_key
        )
        assert r.status_code == 200
        r = await post(served, "/v1/track", track("a"), key=write_key)
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert r.headers["X-RateLimit-Reset"] == r.headers["Retry-After"]
        assert r.json()["error"].startswith("rate limit")


class TestBrokerDown:
    async def test_503_with_retry_after_and_no_2xx_for_what_the_broker_did_not_take(
        self,
        serve_ingest: Callable[..., ServedApp],
        own_broker: TansuBroker,
        write_key: str,
    ) -> None:
        served = serve_ingest(own_broker.bootstrap, produce_timeout_s=2.0, retry_after_s=7)
        before = [track("acme") for _ in range(5)]
        r = await post(served, "/v1/batch", {"batch": before}, key=write_key)
        assert r.status_code == 200

        own_broker.stop()
        for _ in range(3):
            r = await post(served, "/v1/batch", {"batch": [track("acme")]}, key=write_key)
            assert r.status_code == 503
            assert r.headers["Retry-After"] == "7"
            assert r.json()["success"] is False
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
            ready = await client.get("/readyz")
        assert ready.status_code == 503

        # Back up (empty: tansu keeps records in memory only): every 2xx is on the broker.
        own_broker.start()
        await recreate_events_topic(own_broker.bootstrap)
        answered_2xx: set[str] = set()
        for _ in range(60):
            calls = [track("acme") for _ in range(3)]
            r = await post(served, "/v1/batch", {"batch": calls}, key=write_key)
            assert r.status_code in (200, 503)
            if r.status_code == 200:
                answered_2xx |= {c["messageId"] for c in calls}
                break
            await asyncio.sleep(0.5)
        assert answered_2xx, "ingest did not recover after the broker came back"
        found = await read_events(own_broker.bootstrap, answered_2xx)
        assert found.keys() == answered_2xx

    async def test_starts_unready_when_the_broker_is_down_and_recovers(
        self,
        serve_ingest: Callable[..., ServedApp],
        own_broker: TansuBroker,
        write_key: str,
    ) -> None:
        own_broker.stop()
        served = serve_ingest(own_broker.bootstrap, produce_timeout_s=2.0, retry_after_s=3)
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 503
        r = await post(served, "/v1/track", track("acme"), key=write_key)
        assert r.status_code == 503 and r.headers["Retry-After"] == "3"

        own_broker.start()
        ready = False
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
            for _ in range(120):
                if (await client.get("/readyz")).status_code == 200:
                    ready = True
                    break
                await asyncio.sleep(0.5)
        assert ready, "ingest did not become ready after the broker came up"
        call = track("acme")
        for _ in range(20):
            r = await post(served, "/v1/track", call, key=write_key)
            if r.status_code == 200:
                break
            await asyncio.sleep(0.5)
        assert r.status_code == 200
        found = await read_events(own_broker.bootstrap, {call["messageId"]})
        assert set(found) == {call["messageId"]}


async def recreate_events_topic(bootstrap: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from shared import topics

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topics.EVENTS not in await admin.list_topics():
            await admin.create_topics([NewTopic(topics.EVENTS, 3, 1)])
    finally:
        await admin.close()


class TestOperations:
    async def test_health_ready_metrics_docs(self, ingest: ServedApp, write_key: str) -> None:
        await post(ingest, "/v1/track", track("acme"), key=write_key)
        async with httpx.AsyncClient(base_url=ingest.url, timeout=30) as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            assert (await client.get("/readyz")).status_code == 200
            text = (await client.get("/metrics")).text
            for name in (
                "tend_ingest_requests_total",
                "tend_ingest_events_accepted_total",
                "tend_ingest_events_rejected_total",
                "tend_ingest_payload_bytes",
                "tend_ingest_produce_seconds",
                "tend_ingest_clock_skew_corrections_total",
                "tend_ingest_future_timestamps_clamped_total",
            ):
                assert name in text
            assert 'route="/v1/track",status="200"' in text
            spec = (await client.get("/openapi.json")).json()
            for path in ("/v1/batch", "/v1/track", "/v1/identify", "/v1/group", "/v1/page"):
                assert path in spec["paths"]
            assert {"BatchRequest", "TrackCall", "IngestResponse"} <= spec["components"][
                "schemas"
            ].keys()
            assert (await client.get("/docs")).status_code == 200


class TestTime:
    async def test_skew_is_corrected_and_far_future_is_clamped(
        self, ingest: ServedApp, write_key: str, broker: TansuBroker
    ) -> None:
        # The client's clock is 3 days ahead: its timestamp and sentAt are both in the future.
        skewed = track("acme", timestamp="2099-01-04T10:00:00Z", sentAt="2099-01-04T10:05:00Z")
        future = track("acme", timestamp="2099-01-01T00:00:00Z")
        r = await post(ingest, "/v1/batch", {"batch": [skewed, future]}, key=write_key)
        assert r.status_code == 200 and r.json()["accepted"] == 2
        found = await read_events(broker.bootstrap, {skewed["messageId"], future["messageId"]})
        corrected = found[skewed["messageId"]][2]
        assert corrected.received_at - corrected.occurred_at == timedelta(minutes=5)
        clamped = found[future["messageId"]][2]
        assert clamped.occurred_at == clamped.received_at

"""CORS on the tracking routes: browser SDKs on the customer's own origin can send.

The first classes speak HTTP to the real ingest server (uvicorn, tansu, PostgreSQL) as a
browser would; :class:`TestInBrowser` sends from a page on another loopback origin in headless
Chromium (the Debian package, driven by Playwright) and checks the events on the broker.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from services.ingest.app import create_app
from services.ingest.cors import ALLOWED_HEADERS
from services.ingest.routes import TRACKING_PATHS
from services.web.api.accounts import router as accounts_router
from services.web.api.alerts import router as alerts_router
from services.web.console.routes import router as console_router
from shared.settings import Settings
from tests.ingest.test_api import basic, track, uid
from tests.support.broker import TansuBroker
from tests.support.ingest import ServedApp, read_events
from tests.support.pages import PageServer

pytestmark = pytest.mark.integration

PAGE_ORIGIN = "https://app.customer.example"


def preflight(origin: str, headers: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": headers,
    }


@pytest.fixture(scope="module")
def narrowed(serve_ingest: Callable[..., ServedApp], broker: TansuBroker) -> ServedApp:
    return serve_ingest(broker.bootstrap, cors_origins=f"{PAGE_ORIGIN}, http://127.0.0.1:1")


class TestPreflight:
    @pytest.mark.parametrize("path", sorted(TRACKING_PATHS))
    def test_sdk_headers_are_allowed_from_any_origin_by_default(
        self, ingest: ServedApp, path: str
    ) -> None:
        asked = "authorization,content-type,anonymousid,accept"
        r = httpx.options(f"{ingest.url}{path}", headers=preflight(PAGE_ORIGIN, asked))
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == "*"
        assert "POST" in r.headers["access-control-allow-methods"]
        allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
        assert {h.lower() for h in ALLOWED_HEADERS} <= allowed
        assert "access-control-allow-credentials" not in r.headers

    def test_narrowed_origins(self, narrowed: ServedApp) -> None:
        url = f"{narrowed.url}/v1/track"
        ok = httpx.options(url, headers=preflight(PAGE_ORIGIN, "authorization"))
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == PAGE_ORIGIN
        refused = httpx.options(url, headers=preflight("https://evil.example", "authorization"))
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers

    def test_unknown_header_is_not_allowed(self, ingest: ServedApp) -> None:
        r = httpx.options(
            f"{ingest.url}/v1/batch", headers=preflight(PAGE_ORIGIN, "x-something-else")
        )
        assert r.status_code == 400


class TestResponses:
    def test_text_plain_body_is_json_and_the_answer_is_readable(
        self, ingest: ServedApp, write_key: str
    ) -> None:
        body = json.dumps({"writeKey": write_key, "batch": [track("acme")]})
        r = httpx.post(
            f"{ingest.url}/v1/batch",
            content=body,
            headers={"Content-Type": "text/plain", "Origin": PAGE_ORIGIN},
        )
        assert r.status_code == 200 and r.json()["accepted"] == 1
        assert r.headers["access-control-allow-origin"] == "*"

    def test_errors_are_readable_too_with_retry_after_exposed(self, ingest: ServedApp) -> None:
        r = httpx.post(f"{ingest.url}/v1/track", content=b"{}", headers={"Origin": PAGE_ORIGIN})
        assert r.status_code == 401
        assert r.headers["access-control-allow-origin"] == "*"
        assert "retry-after" in r.headers["access-control-expose-headers"].lower()

    def test_other_origin_is_refused_before_anything_is_stored(
        self, narrowed: ServedApp, write_key: str
    ) -> None:
        r = httpx.post(
            f"{narrowed.url}/v1/track",
            json=track("acme"),
            headers={**basic(write_key), "Origin": "https://evil.example"},
        )
        assert r.status_code == 403
        assert r.json()["error"].startswith("Origin: 'https://evil.example' may not send")

    def test_requests_without_origin_are_unaffected(
        self, narrowed: ServedApp, write_key: str
    ) -> None:
        r = httpx.post(f"{narrowed.url}/v1/track", json=track("acme"), headers=basic(write_key))
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers

    @pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json"])
    def test_other_routes_get_no_cors(self, ingest: ServedApp, path: str) -> None:
        r = httpx.get(f"{ingest.url}{path}", headers={"Origin": PAGE_ORIGIN})
        assert "access-control-allow-origin" not in r.headers
        r = httpx.options(f"{ingest.url}{path}", headers=preflight(PAGE_ORIGIN, "authorization"))
        assert "access-control-allow-origin" not in r.headers


class TestOnlyTrackingRoutes:
    """``tend up`` serves the read and alerts APIs and the console from the ingest app."""

    @pytest.mark.parametrize("path", ["/v1/accounts", "/v1/alerts", "/console/login"])
    async def test_routes_added_to_the_app_get_no_cors(self, path: str) -> None:
        app = create_app(Settings())
        for router in (accounts_router, alerts_router, console_router):
            app.include_router(router)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tend") as client:
            r = await client.options(path, headers=preflight(PAGE_ORIGIN, "authorization"))
            assert "access-control-allow-origin" not in r.headers
            r = await client.options("/v1/batch", headers=preflight(PAGE_ORIGIN, "authorization"))
            assert r.headers["access-control-allow-origin"] == "*"


# -- in a browser ------------------------------------------------------------------------------

PAGE = b"<!doctype html><title>customer app</title><h1>customer app</h1>"

SEND = """
async ({url, key, preflighted, plain}) => {
  const result = async (promise) => {
    try {
      const r = await promise;
      return {status: r.status, body: await r.json(), retryAfter: r.headers.has("retry-after")};
    } catch (err) {
      return {error: String(err)};
    }
  };
  return {
    // RudderStack style: JSON with the write key as Basic user: the browser preflights it.
    preflighted: await result(fetch(url + "/v1/track", {
      method: "POST",
      headers: {
        "Authorization": "Basic " + btoa(key + ":"),
        "Content-Type": "application/json;charset=UTF-8",
        "AnonymousId": btoa("anon-1"),
        "Accept": "application/json",
      },
      body: JSON.stringify(preflighted),
    })),
    // analytics.js style: text/plain to its short path, the key in the body: no preflight.
    plain: await result(fetch(url + "/v1/t", {
      method: "POST",
      headers: {"Content-Type": "text/plain"},
      body: JSON.stringify({...plain, writeKey: key}),
      keepalive: true,
    })),
  };
}
"""


def send_from_page(
    chromium: Any, page_url: str, ingest_url: str, key: str, account: str
) -> dict[str, Any]:
    """The page at ``page_url`` (served by ``page_server``) sends two calls as :data:`SEND`."""
    calls = {
        "preflighted": track(account, messageId=uid("pre")),
        "plain": track(account, messageId=uid("plain")),
    }
    page = chromium.new_page()
    try:
        page.goto(page_url)
        answers: dict[str, Any] = page.evaluate(SEND, {"url": ingest_url, "key": key, **calls})
    finally:
        page.close()
    return {"calls": calls, "answers": answers}


def arrived(bootstrap: str, ids: set[str], seen: set[str] | None = None) -> set[str]:
    # Playwright's sync API keeps a loop running in this thread: read from another one.
    with ThreadPoolExecutor(1) as pool:
        found = pool.submit(asyncio.run, read_events(bootstrap, ids, seen=seen)).result()
    return set(found)


def new_account() -> str:
    return f"cors-{uuid.uuid4().hex[:8]}"


class TestInBrowser:
    def test_page_on_another_origin_sends_both_ways(
        self,
        chromium: Any,
        page_server: PageServer,
        ingest: ServedApp,
        write_key: str,
        broker: TansuBroker,
    ) -> None:
        page = page_server.add("/", PAGE)
        sent = send_from_page(chromium, page, ingest.url, write_key, new_account())
        for how in ("preflighted", "plain"):
            answer = sent["answers"][how]
            assert answer.get("status") == 200, (how, answer)
            assert answer["body"] == {"success": True, "accepted": 1, "rejected": []}
        ids = {c["messageId"] for c in sent["calls"].values()}
        assert arrived(broker.bootstrap, ids) == ids

    def test_only_the_allowed_origin_when_narrowed(
        self,
        chromium: Any,
        page_server: PageServer,
        serve_ingest: Callable[..., ServedApp],
        write_key: str,
        broker: TansuBroker,
    ) -> None:
        page_server.add("/", PAGE)
        allowed = f"http://127.0.0.1:{page_server.port}"
        served = serve_ingest(broker.bootstrap, cors_origins=allowed)

        account = new_account()
        refused = send_from_page(
            chromium, page_server.url("/", host="localhost"), served.url, write_key, account
        )
        for how in ("preflighted", "plain"):
            assert "Failed to fetch" in refused["answers"][how].get("error", ""), refused
        ok = send_from_page(chromium, f"{allowed}/", served.url, write_key, account)
        assert all(a.get("status") == 200 for a in ok["answers"].values()), ok

        # One account, so one partition, and the allowed calls were sent after the refused
        # ones: by the time the allowed ones are read, the refused ones would have been too.
        ok_ids = {c["messageId"] for c in ok["calls"].values()}
        refused_ids = {c["messageId"] for c in refused["calls"].values()}
        seen: set[str] = set()
        assert arrived(broker.bootstrap, ok_ids, seen) == ok_ids
        assert not refused_ids & seen

"""Segment's browser SDK from npm against a running tend ingest (issue 14).

``@segment/analytics-next`` is bundled from the npm package (never from Segment's CDN) and
loaded by a page on another loopback origin in headless Chromium, with its CDN settings given so
it calls nothing but tend: every call type, one request per call (the short paths, with
``Authorization: Basic``, hence preflighted) and in batching mode (``/v1/b``). Each call is
found on the events topic by its messageId. The Node SDKs are in test_node_sdks.py (Playwright's
sync API and asyncio tests do not share a module).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from shared.events import CanonicalEvent
from tests.ingest.test_instrumenting_doc import ACCOUNT, EXAMPLES
from tests.support.broker import TansuBroker
from tests.support.ingest import ServedApp, read_account_events, read_events
from tests.support.js import bundle
from tests.support.pages import PageServer

pytestmark = pytest.mark.integration

SHORT_PATH = {"identify": "i", "group": "g", "track": "t", "page": "p", "screen": "s", "alias": "a"}

PAGE = (
    "<!doctype html><title>customer app</title><h1>customer app</h1>"
    '<script src="/analytics.js"></script>'
)

# What an app runs: load the SDK with tend as its API host and the CDN settings given (so it
# fetches nothing from Segment), then make every kind of call.
LOAD_AND_CALL = """
async ({apiHost, key, account, user, previous, ids, batching}) => {
  const segment = {apiKey: key, apiHost, protocol: "http"};
  if (batching) segment.deliveryStrategy = {strategy: "batching", config: {size: 7, timeout: 300}};
  const [analytics] = await AnalyticsBrowser.load(
    {writeKey: key, cdnSettings: {integrations: {"Segment.io": segment}, metrics: {sampleRate: 0}}},
    {integrations: {"Segment.io": segment}, disableClientPersistence: true},
  );
  const on = (name) => ({messageId: ids[name], context: {groupId: account}});
  await analytics.identify(user, {email: user + "@customer.example"}, {messageId: ids.identify});
  await analytics.group(account, {name: "Customer Inc", plan: "pro", seats: 25}, on("group"));
  await analytics.track("Signed In", {}, on("track"));
  await analytics.page("Dashboard", {path: "/dashboard"}, on("page"));
  await analytics.screen("Home", {}, on("screen"));
  await analytics.alias(user, previous, on("alias"));
  return analytics.user().id();
}
"""


def read_sync(bootstrap: str, ids: set[str]) -> dict[str, CanonicalEvent]:
    # Playwright's sync API keeps a loop running in this thread: read from another one.
    with ThreadPoolExecutor(1) as pool:
        found = pool.submit(asyncio.run, read_events(bootstrap, ids)).result()
    return {i: event for i, (_, _, event) in found.items()}


def new_ids(tag: str) -> dict[str, str]:
    return {call: f"{tag}-{call}-{uuid.uuid4().hex[:8]}" for call in SHORT_PATH}


@pytest.fixture(scope="module")
def sdk_page(
    npm_sdks: Path, page_server: PageServer, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The customer's page with @segment/analytics-next from npm as /analytics.js."""
    script = bundle(tmp_path_factory.mktemp("sdk") / "analytics.js")
    page_server.add("/analytics.js", script, "text/javascript")
    return page_server.add("/", PAGE)


def run_page(chromium: Any, url: str, ingest: ServedApp, key: str, **call: Any) -> dict[str, Any]:
    """Loads the page, runs :data:`LOAD_AND_CALL`; every request the page made and every
    answer it got (the SDK reports none of them to the page)."""
    page = chromium.new_page()
    requests: list[Any] = []
    answers: list[tuple[str, int]] = []
    page.on("request", lambda r: requests.append(r))
    page.on("response", lambda r: answers.append((r.url, r.status)))
    try:
        page.goto(url)
        api_host = ingest.url.removeprefix("http://") + "/v1"
        user = page.evaluate(LOAD_AND_CALL, {"apiHost": api_host, "key": key, **call})
        # Batched calls leave after the batch's timeout, and calls may still be in flight:
        # wait for tend's answers (one per call, or one per batch), not for a fixed time.
        expected = 1 if call["batching"] else len(SHORT_PATH)
        deadline = time.monotonic() + 30
        while sum(1 for url, _ in answers if "/v1/" in url) < expected:
            assert time.monotonic() < deadline, answers
            page.wait_for_timeout(100)
    finally:
        page.close()
    return {"user": user, "requests": requests, "answers": answers}


class TestBrowserSdk:
    @pytest.mark.parametrize("batching", [False, True], ids=["per-call", "batching"])
    def test_every_call_arrives_from_another_origin(
        self,
        chromium: Any,
        sdk_page: str,
        ingest: ServedApp,
        write_key: str,
        broker: TansuBroker,
        batching: bool,
    ) -> None:
        tag = "batched" if batching else "per-call"
        ids = new_ids(tag)
        account, user, previous = (f"{tag}-{uuid.uuid4().hex[:8]}" for _ in range(3))
        seen = run_page(
            chromium,
            sdk_page,
            ingest,
            write_key,
            account=account,
            user=user,
            previous=previous,
            ids=ids,
            batching=batching,
        )
        assert seen["user"] == user

        # Nothing but the page's own origin and tend: no CDN, no metrics endpoint.
        origins = {r.url.split("/", 3)[2] for r in seen["requests"]}
        assert origins == {sdk_page.split("/", 3)[2], ingest.url.split("/", 3)[2]}, origins
        posted = [r for r in seen["requests"] if r.method == "POST"]
        paths = sorted(r.url.split("/", 3)[3] for r in posted)
        if batching:
            assert set(paths) == {"v1/b"}
        else:
            assert paths == sorted(f"v1/{p}" for p in SHORT_PATH.values())
        # The key as Basic user: the browser had to preflight every one of these.
        assert all(r.headers["authorization"].startswith("Basic ") for r in posted)
        assert all(status == 200 for url, status in seen["answers"] if "/v1/" in url), seen

        found = read_sync(broker.bootstrap, set(ids.values()))
        assert found.keys() == set(ids.values())
        events = {call: found[i] for call, i in ids.items()}
        assert {call: e.type for call, e in events.items()} == {c: c for c in SHORT_PATH}
        assert all(e.account_id == account for call, e in events.items() if call != "identify")
        assert events["group"].traits == {"name": "Customer Inc", "plan": "pro", "seats": 25}
        assert events["track"].is_login and events["track"].name == "Signed In"
        assert (events["page"].name, events["screen"].name) == ("Dashboard", "Home")
        assert (events["alias"].user_id, events["alias"].previous_id) == (user, previous)
        assert events["identify"].traits == {"email": f"{user}@customer.example"}
        # sentAt came with every call (the batch's in batching mode): times are corrected,
        # not taken as received.
        assert all(e.occurred_at <= e.received_at for e in events.values())


# The doc's placeholders, as a reader replaces them.
PLACEHOLDERS = {"'tend_wk_...'": "key", "'tend.example.com/v1'": "api_host", "'https'": "scheme"}


class TestTheDocsExample:
    def test_the_browser_example_runs_and_its_events_arrive(
        self,
        chromium: Any,
        npm_sdks: Path,
        page_server: PageServer,
        ingest: ServedApp,
        write_key: str,
        broker: TansuBroker,
        tmp_path: Path,
    ) -> None:
        [example] = [e for e in EXAMPLES if e.kind == "browser"]
        account = f"{ACCOUNT}-{uuid.uuid4().hex[:8]}"
        values = {
            "key": write_key,
            "api_host": ingest.url.removeprefix("http://") + "/v1",
            "scheme": "http",
        }
        source = example.code.replace(ACCOUNT, account)
        for placeholder, name in PLACEHOLDERS.items():
            assert placeholder in source, placeholder
            source = source.replace(placeholder, json.dumps(values[name]))
        page_server.add("/doc-app.js", bundle(tmp_path / "app.js", source), "text/javascript")
        url = page_server.add("/doc", '<!doctype html><script src="/doc-app.js"></script>')

        page = chromium.new_page()
        answers: list[int] = []
        page.on("response", lambda r: answers.append(r.status) if "/v1/" in r.url else None)
        try:
            page.goto(url)
            deadline = time.monotonic() + 30
            while len(answers) < example.sends:
                assert time.monotonic() < deadline, answers
                page.wait_for_timeout(100)
        finally:
            page.close()
        assert answers == [200] * example.sends

        with ThreadPoolExecutor(1) as pool:
            events = pool.submit(
                asyncio.run, read_account_events(broker.bootstrap, account, example.sends)
            ).result()
        assert sorted((e.type, e.name) for e in events) == [
            ("group", None),
            ("identify", None),
            ("track", "Report Exported"),
            ("track", "Signed In"),
        ]

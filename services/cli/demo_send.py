"""``tend demo``'s sender: posts the demo's calls to the ingest HTTP API, like an SDK.

:class:`DemoSender` posts them to ``/v1/batch`` in batches under the ingest limits (gzip by
default), retrying 503 and 429 after their ``Retry-After`` and stopping on any other 4xx with
the server's message. Before that, given the API token, it sets each account's profile and
CSM with ``PATCH /v1/accounts/{id}``, and records the demo's outcomes (cancellations,
renewals, expansions, contractions) with ``POST /v1/accounts/{id}/outcomes``, as an operator
would: group calls cannot route alerts, and a write key never records an outcome.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

import httpx

from services.cli.demo_outcomes import DemoOutcome
from services.cli.demo_plan import DemoAccount, iso_timestamp

MAX_BATCH_EVENTS: Final = 1000
MAX_BATCH_BYTES: Final = 400_000
"""Under the ingest defaults (2,500 events, 500,000 decompressed bytes per request)."""

MAX_RETRIES: Final = 20
MAX_RETRY_WAIT_S: Final = 30.0


class DemoError(Exception):
    """The demo cannot go on; the message says why and what to do."""


@dataclass(slots=True)
class SendStats:
    events: int = 0
    requests: int = 0
    retries: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class DemoSender:
    """Posts calls to ``/v1/batch``. Contract: a batch counts as sent only on a 2xx answer with
    nothing rejected; 503 and 429 are retried after ``Retry-After`` (at most
    :data:`MAX_RETRY_WAIT_S`), connection errors after a short backoff, :data:`MAX_RETRIES`
    times in a row at most; any other 4xx or 5xx raises :class:`DemoError` with the server's
    message. A retried batch keeps its message ids, so the scorer counts it once."""

    def __init__(
        self,
        url: str,
        write_key: str,
        *,
        use_gzip: bool = True,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.use_gzip = use_gzip
        self.client = client or httpx.Client(timeout=60.0)
        self.auth = httpx.BasicAuth(write_key, "")
        self.sleep = sleep
        self.stats = SendStats()

    def close(self) -> None:
        self.client.close()

    def send_day(self, calls: list[dict[str, Any]]) -> None:
        batch: list[bytes] = []
        size = 0
        for c in calls:
            encoded = json.dumps(c, separators=(",", ":")).encode()
            if batch and (len(batch) >= MAX_BATCH_EVENTS or size + len(encoded) > MAX_BATCH_BYTES):
                self._post(batch)
                batch, size = [], 0
            batch.append(encoded)
            size += len(encoded) + 1
        if batch:
            self._post(batch)

    def set_profiles(self, accounts: Iterable[DemoAccount], api_token: str) -> int:
        """Set each account's profile and CSM through the read API, as an operator would (a
        write key cannot route alerts). Raises :class:`DemoError` on the first refusal."""
        n = 0
        for account in accounts:
            n += 1
            self._operator(
                "PATCH",
                f"/v1/accounts/{quote(account.account_id, safe='')}",
                account.profile(),
                api_token,
                f"setting the profile of {account.account_id}",
            )
        return n

    def record_outcomes(self, outcomes: Iterable[DemoOutcome], api_token: str) -> int:
        """Record the outcomes through the outcomes API, one request per account (as an
        operator would; recording is idempotent). Raises :class:`DemoError` on the first
        refusal."""
        by_account: dict[str, list[dict[str, Any]]] = {}
        for o in outcomes:
            by_account.setdefault(o.account_id, []).append(o.body())
        for account_id, bodies in by_account.items():
            self._operator(
                "POST",
                f"/v1/accounts/{quote(account_id, safe='')}/outcomes",
                bodies,
                api_token,
                f"recording the outcomes of {account_id}",
            )
        return sum(len(b) for b in by_account.values())

    def _operator(self, method: str, path: str, body: Any, api_token: str, what: str) -> None:
        """One call of the operator's API with the API token; a refusal is a DemoError."""
        headers = {"Authorization": f"Bearer {api_token}"}
        try:
            r = self.client.request(method, f"{self.url}{path}", json=body, headers=headers)
        except httpx.TransportError as err:
            raise DemoError(
                f"cannot reach tend at {self.url} ({err!r}); is `tend up` running?"
            ) from None
        if r.status_code == 401:
            raise DemoError(
                f"tend at {self.url} refused the API token (401): use the token `tend up` "
                "printed (TEND_API_TOKEN)"
            )
        if r.status_code >= 300:
            raise DemoError(f"{what}: {_refusal(r, self.url)}")

    def _post(self, encoded: list[bytes]) -> None:
        sent_at = json.dumps(iso_timestamp(datetime.now(UTC)))
        body = b'{"batch":[' + b",".join(encoded) + b'],"sentAt":' + sent_at.encode() + b"}"
        headers = {"Content-Type": "application/json"}
        if self.use_gzip:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        started = time.perf_counter()
        for attempt in range(MAX_RETRIES + 1):
            try:
                r = self.client.post(
                    f"{self.url}/v1/batch", content=body, headers=headers, auth=self.auth
                )
            except httpx.TransportError as err:
                if attempt == MAX_RETRIES:
                    raise DemoError(
                        f"cannot reach tend at {self.url} ({err!r}); is `tend up` running?"
                    ) from None
                self.stats.retries += 1
                self.sleep(min(MAX_RETRY_WAIT_S, 0.5 * 2**attempt))
                continue
            if r.status_code in (429, 503) and attempt < MAX_RETRIES:
                self.stats.retries += 1
                self.sleep(_retry_after(r))
                continue
            if r.status_code >= 300:
                raise DemoError(_refusal(r, self.url))
            rejected = _json(r).get("rejected") or []
            if rejected:
                first = rejected[0]
                raise DemoError(
                    f"tend rejected {len(rejected)} of {len(encoded)} events, e.g. "
                    f"{first.get('messageId')}: {first.get('error')}"
                )
            break
        else:  # pragma: no cover - the loop always breaks or raises
            raise AssertionError
        self.stats.seconds += time.perf_counter() - started
        self.stats.events += len(encoded)
        self.stats.requests += 1
        self.stats.bytes_sent += len(body)


def _json(r: httpx.Response) -> dict[str, Any]:
    try:
        data = r.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _retry_after(r: httpx.Response) -> float:
    try:
        wait = float(r.headers.get("Retry-After", "1"))
    except ValueError:
        wait = 1.0
    return max(0.1, min(MAX_RETRY_WAIT_S, wait))


def _refusal(r: httpx.Response, url: str) -> str:
    error = _json(r).get("error") or r.text[:200] or r.reason_phrase
    if isinstance(error, dict):  # the web API's shape: {"error": {"code", "message", "field"}}
        error = error.get("message") or error
    if r.status_code == 401:
        return (
            f"tend at {url} refused the write key (401: {error}). Use the key `tend up` printed "
            "at its first start, or create one with `tend keys create demo`."
        )
    if r.status_code == 404:
        return f"{url}/v1/batch is not tend's ingest API (404); check --url"
    return f"tend at {url} answered {r.status_code}: {error}"

"""The HTTP routes: Segment tracking calls, health, readiness and metrics.

Every tracking call goes through :meth:`Ingestor.handle`:

1. check the encoding, authenticate from headers when a key is there (before reading a byte);
2. read the body with the size limit on the decoded bytes; parse the JSON;
3. authenticate from ``writeKey`` in the body otherwise; apply the key's rate limit;
4. check every call (:mod:`services.ingest.normalize`), look up the accounts of users whose
   calls name none, build canonical events;
5. publish all accepted events in one call and wait for the broker's acknowledgement of all
   of them; only then answer 2xx (a timeout or broker error answers 503, accepting nothing);
6. remember the users' group memberships for later calls.

Steps 2 and 4 take a shorter way for a body whose every call is valid:
:mod:`services.ingest.fastpath` reads it straight into structs with the same result, or says
it cannot vouch for the body, and then the steps run as written.

One module of about 470 lines on purpose: the six steps above are one method's contract
(:meth:`Ingestor.handle`), kept beside the thin routes that call it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import ClientDisconnect

from services.ingest import fastpath, metrics, normalize
from services.ingest.accounts import AccountDirectory
from services.ingest.auth import (
    Unauthorized,
    WriteKeyAuthenticator,
    key_from_body,
    key_from_headers,
)
from services.ingest.body import BodyError, BodyReader, check_encoding, parse_json
from services.ingest.ratelimit import RateLimiter
from services.ingest.schemas import (
    ERROR_RESPONSES,
    AliasCall,
    BatchRequest,
    GroupCall,
    IdentifyCall,
    IngestResponse,
    PageCall,
    ScreenCall,
    Status,
    TrackCall,
    request_body_doc,
)
from shared import api_errors, topics
from shared.api_errors import SEGMENT, ApiError, operation_id
from shared.bus.base import Producer
from shared.config import TendConfig
from shared.prometheus import render_metrics
from shared.settings import IngestSettings

log = logging.getLogger(__name__)

READY_TIMEOUT_S: Final = 3.0


class RequestError(Exception):
    """A whole-request problem: answered ``{"success": false, "error": ..., "code": ...}``
    (:func:`error_response`); ``reason`` is the rejection metric's label."""

    def __init__(
        self,
        status: int,
        message: str,
        reason: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.headers = headers or {}


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, *, code: str | None = None
) -> Response:
    """The Segment-compatible error body, with tend's ``code`` and ``field`` beside ``error``."""
    return api_errors.error_response(ApiError(status, message, code=code, headers=headers), SEGMENT)


@dataclass
class Ingestor:
    """Everything a tracking request needs; built once by the app's lifespan."""

    settings: IngestSettings
    config: TendConfig
    producer: Producer
    sessions: async_sessionmaker[AsyncSession]
    keys: WriteKeyAuthenticator
    accounts: AccountDirectory
    limiter: RateLimiter | None = None

    @classmethod
    def build(
        cls,
        settings: IngestSettings,
        config: TendConfig,
        producer: Producer,
        sessions: async_sessionmaker[AsyncSession],
    ) -> Ingestor:
        limiter = None
        if settings.rate_limit_per_s is not None:
            limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
        return cls(
            settings=settings,
            config=config,
            producer=producer,
            sessions=sessions,
            keys=WriteKeyAuthenticator(sessions, ttl_s=settings.key_cache_ttl_s),
            accounts=AccountDirectory(sessions, ttl_s=settings.account_cache_ttl_s),
            limiter=limiter,
        )

    async def handle(self, request: Request, call_type: str | None) -> Response:
        try:
            return await self._handle(request, call_type)
        except RequestError as err:
            metrics.EVENTS_REJECTED.labels(err.reason).inc()
            return error_response(err.status, err.message, err.headers)

    async def _authenticate(self, key: str | None) -> int:
        try:
            return await self.keys.authenticate(key)
        except Unauthorized as err:
            raise RequestError(
                401, str(err), "unauthorized", {"WWW-Authenticate": 'Basic realm="tend"'}
            ) from None
        except Exception:
            log.exception("write-key lookup failed")
            raise self._unavailable("the key database is unavailable") from None

    def _unavailable(self, what: str) -> RequestError:
        return RequestError(
            503,
            f"{what}; nothing was accepted, retry later",
            "unavailable",
            {"Retry-After": str(self.settings.retry_after_s)},
        )

    async def _read_body(self, request: Request) -> bytes:
        s = self.settings
        try:
            gzip = check_encoding(request.headers.get("content-encoding"))
            reader = BodyReader(s.max_body_bytes, gzip=gzip)
            length = request.headers.get("content-length")
            if not gzip and length is not None and length.isdigit() and int(length) > reader.limit:
                raise BodyError(413, f"body: more than the limit of {s.max_body_bytes} bytes")
            async for chunk in request.stream():
                reader.feed(chunk)
            body = reader.finish()
        except BodyError as err:
            reason = "too_large_request" if err.status == 413 else "bad_request"
            raise RequestError(err.status, str(err), reason) from None
        except ClientDisconnect:
            raise RequestError(400, "body: the client disconnected", "bad_request") from None
        metrics.PAYLOAD_BYTES.observe(len(body))
        return body

    async def _handle(self, request: Request, call_type: str | None) -> Response:
        received_at = datetime.now(UTC)
        s = self.settings

        # 1. A key in the headers is checked before the body is read.
        try:
            header_key = key_from_headers(request.headers)
        except Unauthorized as err:
            raise RequestError(401, str(err), "unauthorized") from None
        key_id = await self._authenticate(header_key) if header_key else None

        # 2. Body: the common case (every call valid) straight into structs, else the general
        # path, whose answer stands (fastpath's docstring).
        body = await self._read_body(request)
        fast = fastpath.read(
            body,
            call_type,
            received_at=received_at,
            future_tolerance=timedelta(seconds=s.future_tolerance_s),
            max_batch_events=s.max_batch_events,
            max_event_bytes=s.max_event_bytes,
            max_depth=s.max_depth,
        )
        data: dict[str, Any] = {}
        if fast is None:
            try:
                data = parse_json(body)
            except BodyError as err:
                raise RequestError(err.status, str(err), "bad_request") from None

        # 3. Key from the body, rate limit.
        if key_id is None:
            key_id = await self._authenticate(
                key_from_body(data) if fast is None else fast.write_key
            )

        items: list[Any] = []
        batch_sent_at: datetime | None = None
        batch_context: dict[str, Any] | None = None
        if fast is not None:
            count = fast.count
        elif call_type is None:
            found = data.get("batch")
            if not isinstance(found, list):
                raise RequestError(
                    400,
                    "batch: required, a list of calls "
                    "(track, identify, group, page, screen, alias)",
                    "bad_request",
                )
            items = found
            if len(items) > s.max_batch_events:
                raise RequestError(
                    413,
                    f"batch: {len(items)} events, more than the limit of {s.max_batch_events}",
                    "too_large_request",
                )
            try:
                batch_sent_at = normalize.parse_timestamp(data.get("sentAt"), "sentAt")
                batch_context = normalize.batch_context(data)
            except normalize.EventError as err:
                raise RequestError(400, str(err), "bad_request") from None
            count = len(items)
        else:
            items = [data]
            count = 1

        if self.limiter is not None and count:
            wait_s = self.limiter.acquire(key_id, count)
            if wait_s is not None:
                raise RequestError(
                    429,
                    f"rate limit of {self.limiter.rate_per_s:g} events/s for this write key "
                    f"exceeded; retry after {wait_s} s",
                    "rate_limited",
                    # analytics.js waits for X-RateLimit-Reset (seconds), not Retry-After.
                    {"Retry-After": str(wait_s), "X-RateLimit-Reset": str(wait_s)},
                )

        # 4. Check, resolve accounts, build events.
        parsed: list[normalize.ParsedEvent]
        rejected: list[normalize.Rejection]
        if fast is not None:
            parsed, rejected = fast.parsed, []
        else:
            parsed, rejected = normalize.parse_batch(
                items,
                received_at=received_at,
                future_tolerance=timedelta(seconds=s.future_tolerance_s),
                max_event_bytes=s.max_event_bytes,
                body_bytes=len(body),
                call_type=call_type,
                batch_sent_at=batch_sent_at,
                batch_context=batch_context,
                max_depth=s.max_depth,
            )
        wanted = normalize.users_to_look_up(parsed)
        known: dict[str, str] = {}
        if wanted:
            try:
                known = await self.accounts.lookup(wanted)
            except Exception:
                log.exception(
                    "user-to-account lookup failed",
                    extra={"key_id": key_id, "count": len(wanted)},
                )
                raise self._unavailable("the account database is unavailable") from None
        events, unresolved = normalize.resolve(
            parsed, known, self.config, received_at=received_at, write_key_id=key_id
        )
        rejected.extend(unresolved)
        rejected.sort(key=lambda r: r.index)
        for reason, n in Counter(r.reason.value for r in rejected).items():
            metrics.EVENTS_REJECTED.labels(reason).inc(n)

        if call_type is not None and rejected:
            r = rejected[0]
            status = 413 if r.reason is normalize.Reason.TOO_LARGE else 400
            return error_response(status, r.error, code=r.reason.value)

        # 5. Publish all of them at once; answer only after the broker acknowledged them all.
        if events:
            await self._publish(events, key_id)
            skewed = sum(1 for p in parsed if p.time.skew_corrected)
            clamped = sum(1 for p in parsed if p.time.future_clamped)
            if skewed:
                metrics.CLOCK_SKEW_CORRECTIONS.inc(skewed)
            if clamped:
                metrics.FUTURE_TIMESTAMPS.inc(clamped)
            for kind, n in Counter(e.type for e in events).items():
                metrics.EVENTS_ACCEPTED.labels(kind).inc(n)

            # 6. Later calls of these users resolve to the account they were grouped with.
            memberships = normalize.group_memberships(events)
            if memberships:
                await self.accounts.remember(memberships)

        payload = {
            "success": True,
            "accepted": len(events),
            "rejected": [r.as_json() for r in rejected],
        }
        return Response(json.dumps(payload, separators=(",", ":")), media_type="application/json")

    async def _publish(self, events: list[Any], key_id: int) -> None:
        s = self.settings
        messages = [normalize.to_message(e) for e in events]
        started = time.perf_counter()
        try:
            # The producer bounds its own wait; the outer bound guards against one that doesn't.
            async with asyncio.timeout(s.produce_timeout_s + 1.0):
                await self.producer.publish(topics.EVENTS, messages, timeout_s=s.produce_timeout_s)
        except Exception as err:  # BusUnavailable, a timeout, or anything the client raised
            metrics.PRODUCE_FAILURES.inc()
            log.warning(
                "publishing %d events failed: %r",
                len(messages),
                err,
                extra={"key_id": key_id, "topic": topics.EVENTS, "count": len(messages)},
            )
            raise self._unavailable("the event broker did not acknowledge the events") from None
        metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)


router = APIRouter(generate_unique_id_function=operation_id)


def _ingestor(request: Request) -> Ingestor:
    ingestor: Ingestor = request.app.state.ingest
    return ingestor


_TRACKING_DOC: dict[str, Any] = {
    "response_model": IngestResponse,
    "responses": ERROR_RESPONSES,
    "tags": ["tracking"],
}


@router.post("/v1/batch", openapi_extra=request_body_doc(BatchRequest), **_TRACKING_DOC)
async def batch(request: Request) -> Response:
    """Many calls at once (what the SDKs send). Valid calls are accepted and invalid ones
    listed in ``rejected``; the answer comes after the broker acknowledged the accepted ones."""
    return await _ingestor(request).handle(request, None)


@router.post("/v1/track", openapi_extra=request_body_doc(TrackCall), **_TRACKING_DOC)
async def track(request: Request) -> Response:
    """One track call: an action of a user (``event`` names it)."""
    return await _ingestor(request).handle(request, "track")


@router.post("/v1/identify", openapi_extra=request_body_doc(IdentifyCall), **_TRACKING_DOC)
async def identify(request: Request) -> Response:
    """One identify call: who the user is (``traits``)."""
    return await _ingestor(request).handle(request, "identify")


@router.post("/v1/group", openapi_extra=request_body_doc(GroupCall), **_TRACKING_DOC)
async def group(request: Request) -> Response:
    """One group call: the account (``groupId``) a user belongs to; later calls of the user
    without an account are attributed to it."""
    return await _ingestor(request).handle(request, "group")


@router.post("/v1/page", openapi_extra=request_body_doc(PageCall), **_TRACKING_DOC)
async def page(request: Request) -> Response:
    """One page view (``name`` is the page name)."""
    return await _ingestor(request).handle(request, "page")


@router.post("/v1/screen", openapi_extra=request_body_doc(ScreenCall), **_TRACKING_DOC)
async def screen(request: Request) -> Response:
    """One screen view of a mobile app (``name`` is the screen name); counted like a page."""
    return await _ingestor(request).handle(request, "screen")


@router.post("/v1/alias", openapi_extra=request_body_doc(AliasCall), **_TRACKING_DOC)
async def alias(request: Request) -> Response:
    """One alias call: ``previousId`` and ``userId`` are one person from now on (they count as
    one user of the account)."""
    return await _ingestor(request).handle(request, "alias")


# analytics.js (Segment's browser SDK, @segment/analytics-next) posts to the first letter of
# the call type, and to /v1/b when batching; same handling, left out of the OpenAPI document.
SHORT_PATHS: Final[dict[str, str | None]] = {
    "/v1/b": None,
    "/v1/t": "track",
    "/v1/i": "identify",
    "/v1/g": "group",
    "/v1/p": "page",
    "/v1/s": "screen",
    "/v1/a": "alias",
}


def _short_route(call_type: str | None) -> Any:
    async def endpoint(request: Request) -> Response:
        return await _ingestor(request).handle(request, call_type)

    return endpoint


for _path, _call_type in SHORT_PATHS.items():
    router.add_api_route(_path, _short_route(_call_type), methods=["POST"], include_in_schema=False)

CALL_TYPES: Final[dict[str, str | None]] = {
    "/v1/batch": None,
    "/v1/track": "track",
    "/v1/identify": "identify",
    "/v1/group": "group",
    "/v1/page": "page",
    "/v1/screen": "screen",
    "/v1/alias": "alias",
    **SHORT_PATHS,
}
"""Every tracking path and the call type its route hands :meth:`Ingestor.handle` (None: each
call's own ``type``), as the routes above do."""

TRACKING_PATHS: Final = frozenset(CALL_TYPES)
"""Every path that takes events (and gets CORS)."""


@router.get(
    "/healthz", tags=["operations"], response_model=Status, response_model_exclude_none=True
)
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["operations"],
    response_model=Status,
    responses={503: {"model": Status, "description": "Broker down; see Retry-After."}},
)
async def readyz(request: Request) -> Response:
    """The broker answers; 503 otherwise."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            ok = await _ingestor(request).producer.ping()
    except Exception:
        ok = False
    if ok:
        return JSONResponse({"status": "ready"})
    return JSONResponse(
        {"status": "unavailable", "error": "the event broker does not answer"},
        status_code=503,
        headers={"Retry-After": str(_ingestor(request).settings.retry_after_s)},
    )


@router.get("/metrics", tags=["operations"], response_class=Response)
async def prometheus_metrics() -> Response:
    """Prometheus text exposition."""
    content, media_type = render_metrics()
    return Response(content, media_type=media_type)

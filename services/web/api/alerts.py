"""The alerts API: list and read alerts, acknowledge, snooze and resolve them.

Served by ``tend web`` (and inside ``tend up``). Bearer-token auth (the admin token or a person's
API token): a CSM sees and moves the alerts of their book only. Every move is in the audit log
with its actor, in the move's transaction. A manual
move locks the alert row, so it never interleaves with a consumer batch deciding about the same
alert; a move the alert's status does not allow is a 409.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from services.web.api.schemas import AlertDetail, AlertList, AlertOut, IncidentMove
from services.web.deps import SessionDep, clock_of, webhooks_of
from shared.alert_rules import RULE_NAMES
from shared.alerting.lifecycle import AlertState, LifecycleError, acknowledge, resolve, snooze
from shared.alerting.state import apply_move, move_incident
from shared.api_auth import CallerDep, guard_account, require_token
from shared.api_errors import ApiError, ErrorRoute, error_responses, operation_id
from shared.api_input import MAX_BIGINT, is_id, storable, storable_params
from shared.db.models import Alert, AlertNotification
from shared.people import audit
from shared.people.caller import Caller
from shared.read import alerts
from shared.redact import mask_url
from shared.webhooks.outbox import AlertChange, record_alert_changes

router = APIRouter(
    prefix="/v1/alerts",
    tags=["alerts"],
    dependencies=[Depends(require_token), Depends(storable_params)],
    route_class=ErrorRoute,
    generate_unique_id_function=operation_id,
    responses=error_responses(401, 403, 422),
)
NOT_FOUND = error_responses(404)
MOVE_ERRORS = error_responses(404, 409)

ACTIVE = ("open", "acknowledged", "snoozed")
NOTIFIED = (*ACTIVE, "resolved")
STATUSES = (*NOTIFIED, "pending")
"""What ``status=`` accepts, besides ``active`` (the default) and ``all`` (every status but
``pending``: a condition that has held, not yet long enough to fire)."""


StatusQuery = Annotated[
    str, Query(description="active (default), all, or a comma list of statuses")
]
AccountQuery = Annotated[str | None, Query(description="account id")]
RuleQuery = Annotated[str | None, Query(description="rule name, e.g. login_plateau")]
CsmQuery = Annotated[str | None, Query(description="CSM email or Slack handle")]
"""The filters of ``GET /v1/alerts``, which its CSV export takes too."""


def _now(request: Request) -> datetime:
    return clock_of(request).now()


def alert_json(a: Alert) -> dict[str, Any]:
    return {
        "id": a.id,
        "account_id": a.account_id,
        "account_name": a.account_name,
        "rule": a.rule,
        "feature": a.feature,
        "status": a.status,
        "severity": a.severity,
        "reason": a.reason,
        "next_step": a.next_step,
        "facts": a.facts,
        "as_of": a.as_of,
        "started_on": a.started_on,
        "opened_on": a.opened_on,
        "resolved_on": a.resolved_on,
        "reopenings": a.reopenings,
        "score": a.score,
        "band": a.band,
        "mrr": a.mrr,
        "csm_email": a.csm_email,
        "opened_at": a.opened_at,
        "acknowledged_at": a.acknowledged_at,
        "snoozed_until": a.snoozed_until,
        "snooze_reason": a.snooze_reason,
        "resolved_at": a.resolved_at,
        "resolved_by": a.resolved_by,
        "last_notified_at": a.last_notified_at,
        "notifications": a.notifications,
        "consecutive_holds": a.consecutive_holds,
        "consecutive_clears": a.consecutive_clears,
        "updated_at": a.updated_at,
    }


def _notification_json(n: AlertNotification) -> dict[str, Any]:
    return {
        "id": n.id,
        "alert_id": n.alert_id,
        "kind": n.kind,
        "channel": n.channel,
        "destination": mask_url(n.destination),
        "status": n.status,
        "attempts": n.attempts,
        "next_attempt_at": n.next_attempt_at,
        "last_error": n.last_error,
        "created_at": n.created_at,
        "sent_at": n.sent_at,
    }


def _statuses(value: str) -> list[str]:
    if value == "active":
        return list(ACTIVE)
    if value == "all":
        return list(NOTIFIED)
    wanted = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STATUSES]
    if not wanted or unknown:
        raise ApiError.invalid(
            "status",
            f"{', '.join(unknown) or 'empty'} is not one of active, all, {', '.join(STATUSES)}",
        )
    return wanted


def _alert_id(alert_id: str) -> int:
    if not is_id(alert_id):
        raise ApiError.not_found("alert", alert_id)
    return int(alert_id)


@router.get(
    "",
    summary="List alerts (active ones unless status says otherwise)",
    response_model=AlertList,
)
async def list_alerts(
    session: SessionDep,
    caller: CallerDep,
    status: StatusQuery = "active",
    account: AccountQuery = None,
    rule: RuleQuery = None,
    csm: CsmQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_BIGINT)] = 0,
) -> dict[str, Any]:
    return await alert_listing(
        session, status, account, rule, csm, limit=limit, offset=offset, book=caller.book()
    )


async def alert_listing(
    session: AsyncSession,
    status: str,
    account: str | None,
    rule: str | None,
    csm: str | None,
    *,
    limit: int,
    offset: int = 0,
    book: str | None,
) -> dict[str, Any]:
    """``{"total", "alerts"}``: what ``GET /v1/alerts`` answers (and its CSV export lists);
    ``book``: only alerts of that CSM's accounts (the caller's ``book()``; None: all)."""
    statuses = _statuses(status)
    if rule is not None and rule not in RULE_NAMES:
        raise ApiError.invalid("rule", f"{rule!r} is not one of {', '.join(RULE_NAMES)}")
    total, rows = await alerts.search_alerts(
        session,
        statuses=statuses,
        account=account,
        rule=rule,
        csm=csm,
        limit=limit,
        offset=offset,
        book=book,
    )
    return {"total": total, "alerts": [alert_json(a) for a in rows]}


async def _get(session: AsyncSession, alert_id: str, *, lock: bool = False) -> Alert:
    row = await alerts.get_alert(session, _alert_id(alert_id), lock=lock)
    # A ``none`` row only remembers counters of a condition that does not hold.
    if row is None or row.status == "none":
        raise ApiError.not_found("alert", alert_id)
    return row


@router.get(
    "/{alert_id}",
    summary="One alert with its notifications",
    response_model=AlertDetail,
    responses=NOT_FOUND,
)
async def get_alert(alert_id: str, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    row = await _get(session, alert_id)
    await guard_account(session, caller, row.account_id)
    body = alert_json(row)
    body["deliveries"] = [_notification_json(n) for n in await alerts.deliveries(session, row.id)]
    body["actions"] = [
        {
            "action": a.action,
            "source": a.source,
            "actor_id": a.actor_id,
            "actor_name": a.actor_name,
            "snoozed_until": a.snoozed_until,
            "at": a.created_at,
        }
        for a in await alerts.actions(session, row.id)
    ]
    return body


async def _move(
    request: Request,
    session: AsyncSession,
    alert_id: str,
    move: Callable[[AlertState, datetime], AlertState],
    action: str,
    reason: str | None = None,
) -> dict[str, Any]:
    now = _now(request)
    caller: Caller = request.state.caller
    async with session.begin():
        row = await _get(session, alert_id, lock=True)
        await guard_account(session, caller, row.account_id, write=True)
        try:
            before = apply_move(row, move, now)
        except LifecycleError as err:
            raise ApiError.conflict(str(err)) from err
        audit.record_alert_move(session, caller, row, action, reason, now, "api")
        record_alert_changes(session, webhooks_of(request), [(row, before)], now)
    return alert_json(row)


@router.post(
    "/{alert_id}/ack",
    summary="Acknowledge: no more repeats",
    response_model=AlertOut,
    responses=MOVE_ERRORS,
)
async def ack_alert(alert_id: str, request: Request, session: SessionDep) -> dict[str, Any]:
    return await _move(request, session, alert_id, acknowledge, "ack")


class SnoozeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    until: AwareDatetime = Field(description="When the alert wakes up (ISO 8601 with offset).")
    reason: str | None = Field(None, max_length=1000)

    @field_validator("until")
    @classmethod
    def _in_utc_range(cls, value: datetime) -> datetime:
        # Stored in UTC: 9999-12-31T23:00-05:00 has no UTC time.
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("does not fit the years 1 to 9999 in UTC") from None

    @field_validator("reason")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        if value is not None and not storable(value):
            raise ValueError("contains NUL or a lone surrogate")
        return value


@router.post(
    "/{alert_id}/snooze",
    summary="Snooze until a time, with a reason",
    response_model=AlertOut,
    responses=MOVE_ERRORS,
)
async def snooze_alert(
    alert_id: str,
    body: Annotated[SnoozeBody, Body()],
    request: Request,
    session: SessionDep,
) -> dict[str, Any]:
    move = _snooze_move(body, request)
    return await _move(request, session, alert_id, move, "snooze", body.reason)


def _snooze_move(
    body: SnoozeBody, request: Request
) -> Callable[[AlertState, datetime], AlertState]:
    if body.until <= _now(request):
        raise ApiError.invalid("until", "must be in the future")
    return lambda s, now: snooze(s, body.until, body.reason, now)


@router.post(
    "/{alert_id}/resolve",
    summary="Resolve by hand",
    response_model=AlertOut,
    responses=MOVE_ERRORS,
)
async def resolve_alert(alert_id: str, request: Request, session: SessionDep) -> dict[str, Any]:
    return await _move(request, session, alert_id, resolve, "resolve")


async def _move_incident(
    request: Request,
    session: AsyncSession,
    account_id: str,
    move: Callable[[AlertState, datetime], AlertState],
    action: str,
    reason: str | None = None,
) -> dict[str, Any]:
    now = _now(request)
    caller: Caller = request.state.caller
    async with session.begin():
        await guard_account(session, caller, account_id, write=True)
        changes: list[AlertChange] = []
        moved = await move_incident(session, account_id, move, now, changes)
        for row in moved:
            audit.record_alert_move(session, caller, row, action, reason, now, "api")
        record_alert_changes(session, webhooks_of(request), changes, now)
    if not moved:
        raise ApiError(404, f"account {account_id!r} has no open alerts", code="not_found")
    return {"account_id": account_id, "alerts": [alert_json(a) for a in moved]}


@router.post(
    "/accounts/{account_id}/ack",
    summary="Acknowledge every open alert of an account",
    response_model=IncidentMove,
    responses=NOT_FOUND,
)
async def ack_incident(account_id: str, request: Request, session: SessionDep) -> dict[str, Any]:
    return await _move_incident(request, session, account_id, acknowledge, "ack")


@router.post(
    "/accounts/{account_id}/snooze",
    summary="Snooze every open alert of an account",
    response_model=IncidentMove,
    responses=NOT_FOUND,
)
async def snooze_incident(
    account_id: str,
    body: Annotated[SnoozeBody, Body()],
    request: Request,
    session: SessionDep,
) -> dict[str, Any]:
    move = _snooze_move(body, request)
    return await _move_incident(request, session, account_id, move, "snooze", body.reason)


@router.post(
    "/accounts/{account_id}/resolve",
    summary="Resolve every open alert of an account",
    response_model=IncidentMove,
    responses=NOT_FOUND,
)
async def resolve_incident(
    account_id: str, request: Request, session: SessionDep
) -> dict[str, Any]:
    return await _move_incident(request, session, account_id, resolve, "resolve")

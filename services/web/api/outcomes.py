"""The outcomes API: record what an account did (cancellation, renewal, expansion, contraction)
and list its outcomes with its MRR history and lifecycle stage.

Served by ``tend web`` (and inside ``tend up``). Bearer-token auth: outcomes come from operators
(leaders and admins record them; a CSM reads those of their book), never from a write key;
each recording is in the audit log. A body is checked by the same rules as an outcomes
file (:mod:`shared.outcomes.importer`; docs/retention.md), recording is idempotent on the natural
key ``(account_id, kind, effective_on)``, and its consequences (a renewal moves the renewal
date, a cancellation resolves the account's alerts) are :mod:`shared.outcomes.recording`'s.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.web.deps import SessionDep, clock_of, policy_of, webhooks_of
from shared.accounts_csv import MAX_ID
from shared.api_auth import CallerDep, guard_account, require_role, require_token
from shared.api_errors import ApiError, ErrorRoute, error_responses, operation_id
from shared.api_input import storable_params
from shared.outcomes.importer import ImportProblem, OutcomeImportError, parse_outcomes_json
from shared.outcomes.lifecycle import stage_on
from shared.outcomes.model import CustomerOutcome, OutcomeKind, OutcomesPolicy, Stage
from shared.outcomes.mrr import InconsistentOutcomes
from shared.outcomes.recording import record_outcomes
from shared.outcomes.repository import OutcomeRepository, UnknownAccounts
from shared.people import audit
from shared.read import accounts

router = APIRouter(
    prefix="/v1/accounts",
    tags=["outcomes"],
    dependencies=[Depends(require_token), Depends(storable_params)],
    route_class=ErrorRoute,
    generate_unique_id_function=operation_id,
    responses=error_responses(401, 403, 404, 422),
)

MAX_OUTCOMES = 1000
"""Outcomes one request may record (a larger batch: ``tend accounts import --outcomes``)."""

AccountId = Annotated[str, Path(min_length=1, max_length=MAX_ID)]


class OutcomeIn(BaseModel):
    """One outcome of the account named in the path. Which value fields a kind takes (and
    requires) is in docs/retention.md; a value a kind does not use is refused."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"kind": "cancellation", "effective_on": "2026-11-30", "reason": "budget cut"},
                {
                    "kind": "renewal",
                    "effective_on": "2026-12-01",
                    "new_mrr": 5200,
                    "new_term_end": "2027-12-01",
                },
                {"kind": "expansion", "effective_on": "2026-10-15", "mrr_delta": 400},
            ]
        },
    )

    kind: OutcomeKind
    effective_on: date = Field(description="The day it takes effect.")
    account_id: str | None = Field(None, description="If given, the path's account id.")
    reason: str | None = Field(
        None, max_length=1000, description="Cancellation: required (why they left)."
    )
    mrr_lost: float | None = Field(None, description="Cancellation, optional: the MRR that ended.")
    new_mrr: float | None = Field(None, description="Renewal, required: the MRR from it on.")
    new_term_end: date | None = Field(None, description="Renewal, required: the new term end.")
    mrr_delta: float | None = Field(
        None, description="Expansion (> 0) or contraction (< 0), required: the MRR change."
    )


class OutcomeOut(BaseModel):
    kind: OutcomeKind
    effective_on: date
    reason: str | None = None
    mrr_lost: float | None = None
    new_mrr: float | None = None
    new_term_end: date | None = None
    mrr_delta: float | None = None
    source: str = Field(description="import, api or demo.")


class MrrPointOut(BaseModel):
    effective_on: date
    mrr: float
    cause: str = Field(description="start, or the kind of the day's last outcome.")


class StageChangeOut(BaseModel):
    effective_on: date
    stage: Stage


class AccountOutcomes(BaseModel):
    """An account's outcomes (day order), MRR history and lifecycle stages."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "account_id": "acme",
                    "stage": "cancelled",
                    "renewal_date": "2027-03-31",
                    "outcomes": [
                        {
                            "kind": "cancellation",
                            "effective_on": "2026-11-30",
                            "reason": "budget cut",
                            "source": "api",
                        }
                    ],
                    "mrr_history": [
                        {"effective_on": "2025-02-03", "mrr": 4800.0, "cause": "start"},
                        {"effective_on": "2026-11-30", "mrr": 0.0, "cause": "cancellation"},
                    ],
                    "stage_changes": [
                        {"effective_on": "2025-02-03", "stage": "new"},
                        {"effective_on": "2025-03-05", "stage": "growing"},
                        {"effective_on": "2026-11-30", "stage": "cancelled"},
                    ],
                }
            ]
        }
    )

    account_id: str
    stage: Stage | None = Field(None, description="Today's lifecycle stage; null before start.")
    renewal_date: date | None = Field(None, description="The profile's (a renewal moves it).")
    outcomes: list[OutcomeOut]
    mrr_history: list[MrrPointOut]
    stage_changes: list[StageChangeOut]


class OutcomesRecorded(AccountOutcomes):
    inserted: int = Field(description="Outcomes new to tend.")
    updated: int = Field(description="Outcomes recorded before with other values (replaced).")
    unchanged: int = Field(description="Outcomes recorded before with the same values.")
    alerts_resolved: int = Field(description="Alerts resolved because the account is cancelled.")


_BODY_SCHEMA: dict[str, Any] = {
    "anyOf": [
        OutcomeIn.model_json_schema(),
        {"type": "array", "items": OutcomeIn.model_json_schema(), "maxItems": MAX_OUTCOMES},
    ]
}


def _field(problem: ImportProblem, listed: bool) -> str:
    name = problem.field or "body"
    return f"{problem.row - 1}.{name}" if listed and problem.row else name


def _parse(account_id: str, body: Any) -> list[CustomerOutcome]:
    """The body's outcomes, or a 422 naming the first field at fault (and listing all)."""
    listed = isinstance(body, list)
    items = body if listed else [body]
    if len(items) > MAX_OUTCOMES:
        raise ApiError.invalid("body", f"at most {MAX_OUTCOMES} outcomes per request")
    if not items:
        raise ApiError.invalid("body", "give an outcome or a list of outcomes")
    given: list[Any] = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            where = f"{n}" if listed else "body"
            raise ApiError.invalid(where, "must be an object (an outcome)")
        named = item.get("account_id")
        if named is not None and named != account_id:
            where = f"{n}.account_id" if listed else "account_id"
            raise ApiError.invalid(where, f"{named!r} is not the path's account {account_id!r}")
        given.append({**item, "account_id": account_id})
    try:
        return [i.outcome for i in parse_outcomes_json(given, source="api")]
    except OutcomeImportError as err:
        problems = err.problems
        first = _field(problems[0], listed)
        message = "; ".join(f"{_field(p, listed)}: {p.message}" for p in problems)
        raise ApiError(422, message, code="invalid", field=first) from None


async def _account_outcomes(
    session: AsyncSession, account_id: str, today: date, policy: OutcomesPolicy
) -> dict[str, Any]:
    account = await accounts.get_account(session, account_id)
    if account is None:
        raise ApiError.not_found("account", account_id)
    repo = OutcomeRepository(session, policy)
    try:
        # Derived from the outcomes and profile as they are now (the profile's MRR may have
        # changed since the stored history was rebuilt) ...
        (history,) = await repo.histories([account_id])
    except InconsistentOutcomes:
        # ... unless that contradicts them; then as last recorded.
        (history,) = await repo.histories([account_id], stored=True)
    return {
        "account_id": account_id,
        "stage": stage_on(history, today, policy),
        "renewal_date": account.renewal_date,
        "outcomes": [
            {
                "kind": o.kind,
                "effective_on": o.effective_on,
                "reason": o.reason,
                "mrr_lost": o.mrr_lost,
                "new_mrr": o.new_mrr,
                "new_term_end": o.new_term_end,
                "mrr_delta": o.mrr_delta,
                "source": o.source,
            }
            for o in history.outcomes
        ],
        "mrr_history": [
            {"effective_on": p.effective_on, "mrr": p.mrr, "cause": p.cause} for p in history.mrr
        ],
        "stage_changes": [
            {"effective_on": c.effective_on, "stage": c.stage}
            for c in await repo.stage_changes(account_id)
        ],
    }


@router.get(
    "/{account_id}/outcomes",
    summary="An account's outcomes, MRR history and lifecycle stage",
    response_model=AccountOutcomes,
)
async def list_outcomes(
    account_id: AccountId, request: Request, session: SessionDep, caller: CallerDep
) -> dict[str, Any]:
    await guard_account(session, caller, account_id)
    today = clock_of(request).now().date()
    return await _account_outcomes(session, account_id, today, policy_of(request))


@router.post(
    "/{account_id}/outcomes",
    summary="Record outcomes: cancellation, renewal, expansion, contraction",
    response_model=OutcomesRecorded,
    status_code=201,
    responses={
        200: {"model": OutcomesRecorded, "description": "Nothing new: all recorded before"},
        **error_responses(
            409,
            descriptions={409: "The outcomes contradict the account's other outcomes"},
            messages={
                409: "account 'acme': the expansion on 2026-12-02 changes the MRR of an "
                "account cancelled on 2026-11-30 (record a renewal first)"
            },
        ),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _BODY_SCHEMA}},
        }
    },
    dependencies=[require_role("admin", "leader")],
)
async def record_account_outcomes(
    account_id: AccountId,
    request: Request,
    response: Response,
    session: SessionDep,
    caller: CallerDep,
    body: Annotated[Any, Body(description="One outcome, or a list of them.")],
) -> dict[str, Any]:
    """Idempotent: posting an outcome again (same account, kind and day) replaces its values,
    and the same body twice changes nothing (``200`` instead of ``201``). Nothing is recorded
    when any outcome is refused. A cancellation in effect resolves the account's active alerts
    with the reason "account cancelled"; a renewal moves the account's renewal date."""
    if await accounts.get_account(session, account_id) is None:
        raise ApiError.not_found("account", account_id)
    outcomes = _parse(account_id, body)
    now = clock_of(request).now()
    policy = policy_of(request)
    try:
        recorded = await record_outcomes(
            session, outcomes, now=now, policy=policy, webhooks=webhooks_of(request)
        )
    except UnknownAccounts:
        await session.rollback()
        raise ApiError.not_found("account", account_id) from None
    except InconsistentOutcomes as err:
        await session.rollback()
        raise ApiError.conflict(str(err)) from None
    result = recorded.result
    audit.record(
        session,
        caller,
        "outcome.record",
        target=f"account:{account_id}",
        account_id=account_id,
        details={
            "outcomes": [f"{o.kind} {o.effective_on}" for o in outcomes][:50],
            "inserted": result.inserted,
            "updated": result.updated,
        },
        at=now,
    )
    await session.commit()
    response.status_code = 201 if result.inserted else 200
    return {
        **await _account_outcomes(session, account_id, now.date(), policy),
        "inserted": result.inserted,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "alerts_resolved": recorded.alerts_resolved,
    }

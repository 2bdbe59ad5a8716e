"""The read API: accounts, their current health with its reasons, history and usage; and the
one write an operator makes here, an account's profile (``PATCH /v1/accounts/{id}``).

Served by ``tend web`` (and inside ``tend up``). Bearer-token auth (the admin token or a person's
API token): a CSM sees their book, and only leaders and admins change profiles (a profile names
the CSM, so it decides books). Webhook URLs are secrets: every one shown (``csm_slack``,
traits) is masked.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.web.api.schemas import (
    AccountDetail,
    AccountHealth,
    AccountList,
    AccountSummary,
    AccountUsage,
)
from services.web.deps import SessionDep, clock_of, policy_of
from services.web.reports.build import (
    MonthError,
    MonthlyReport,
    build_report,
    key_features_of,
    last_month,
    parse_month,
)
from services.web.reports.render import render_html
from shared.accounts_csv import MAX_ID, PARSERS, AccountRow, import_accounts
from shared.api_auth import CallerDep, guard_account, require_role, require_token
from shared.api_errors import ApiError, ErrorRoute, error_responses, operation_id
from shared.api_input import MAX_BIGINT, storable, storable_params
from shared.config import TendConfig
from shared.db.models import Account, HealthScore
from shared.outcomes.model import Stage
from shared.outcomes.stages import current_stages
from shared.people import audit
from shared.people.caller import Caller
from shared.read import accounts, scores, usage
from shared.read.accounts import AccountFilter, SortKey
from shared.redact import mask_url, mask_values

router = APIRouter(
    prefix="/v1/accounts",
    tags=["accounts"],
    dependencies=[Depends(require_token), Depends(storable_params)],
    route_class=ErrorRoute,
    generate_unique_id_function=operation_id,
    responses=error_responses(401, 403, 422),
)
NOT_FOUND = error_responses(404)

MAX_RANGE_DAYS = 731

BandQuery = Annotated[str | None, Query(description="green, yellow, red, ...")]
CsmQuery = Annotated[str | None, Query(description="CSM email or Slack handle")]
StageQuery = Annotated[Stage | None, Query(description="lifecycle stage today")]
SortQuery = Annotated[SortKey, Query(description="prefix with - for descending")]
"""The filters of ``GET /v1/accounts``, which its CSV export takes too."""


def account_summary(a: Account) -> dict[str, Any]:
    return {
        "account_id": a.account_id,
        "name": a.name,
        "plan": a.plan,
        "seats": a.seats,
        "mrr": a.mrr,
        "renewal_date": a.renewal_date,
        "lifecycle_stage": a.lifecycle_stage,
        "csm_email": a.csm_email,
        "csm_slack": mask_url(a.csm_slack) if a.csm_slack else None,
        "customer_emails": list(a.customer_emails or []),
        "champion": a.champion,
        "score": a.score,
        "band": a.band,
        "scored_as_of": a.scored_as_of,
        "first_seen": a.first_seen,
    }


def _date_range(start: date | None, end: date | None, default_days: int) -> tuple[date, date]:
    end = end or date.today()
    if start is None:
        # Near date.min the default window is cut at the first day there is.
        back = min(default_days - 1, (end - date.min).days)
        start = end - timedelta(days=back)
    if start > end:
        raise ApiError.invalid("from", "must not be after to")
    if (end - start).days > MAX_RANGE_DAYS:
        raise ApiError.invalid("from", f"the range may span at most {MAX_RANGE_DAYS} days")
    return start, end


async def _get_account(session: AsyncSession, account_id: str) -> Account:
    account = await accounts.get_account(session, account_id)
    if account is None:
        raise ApiError.not_found("account", account_id)
    return account


@router.get("", summary="List accounts with their current health", response_model=AccountList)
async def list_accounts(
    session: SessionDep,
    request: Request,
    caller: CallerDep,
    band: BandQuery = None,
    csm: CsmQuery = None,
    stage: StageQuery = None,
    sort: SortQuery = "score",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_BIGINT)] = 0,
) -> dict[str, Any]:
    where = AccountFilter(csm=csm, band=band)
    return await account_listing(
        session, request, where, stage, sort=sort, limit=limit, offset=offset
    )


async def account_listing(
    session: AsyncSession,
    request: Request,
    where: AccountFilter,
    stage: Stage | None,
    *,
    sort: SortKey,
    limit: int,
    offset: int = 0,
) -> dict[str, Any]:
    """``{"total", "accounts"}``: what ``GET /v1/accounts`` answers (and its CSV export lists),
    only of the caller's book (``request.state.caller``: every authenticated route sets it)."""
    caller: Caller = request.state.caller
    where = replace(where, book=caller.book())
    today = clock_of(request).now().date()
    if stage is not None:
        found = await current_stages(session, None, today, policy_of(request))
        ids = tuple(sorted(a for a, s in found.items() if s == stage))
        where = replace(where, account_ids=ids)
    total, rows = await accounts.list_accounts(
        session, where, sort=sort, limit=limit, offset=offset
    )
    stages = await current_stages(session, [a.account_id for a in rows], today, policy_of(request))
    listed = [{**account_summary(a), "stage": stages.get(a.account_id)} for a in rows]
    return {"total": total, "accounts": listed}


@router.get(
    "/{account_id}",
    summary="One account: traits, current score and metrics",
    response_model=AccountDetail,
    responses=NOT_FOUND,
)
async def get_account(
    account_id: str, session: SessionDep, request: Request, caller: CallerDep
) -> dict[str, Any]:
    await guard_account(session, caller, account_id)
    account = await _get_account(session, account_id)
    latest = await scores.latest_score(session, account_id)
    body = account_summary(account)
    today = clock_of(request).now().date()
    stages = await current_stages(session, [account_id], today, policy_of(request))
    body["stage"] = stages.get(account_id)
    body["traits"] = mask_values(account.traits)
    body["metrics"] = latest.metrics if latest else None
    body["current_champion"] = _current_champion(latest.metrics if latest else None)
    return body


def _current_champion(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    """The champion of the latest score: the named one (``champion``) or the inferred one."""
    if not metrics or not metrics.get("champion"):
        return None
    return {
        "user_id": metrics["champion"],
        "source": metrics.get("champion_source"),
        "last_active": metrics.get("champion_last_active"),
        "days_since_active": metrics.get("champion_days_since_active"),
    }


class ProfileUpdate(BaseModel):
    """Profile columns to set, as ``tend accounts import`` sets them; ``null`` clears one."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=300)
    plan: str | None = Field(None, max_length=100)
    seats: int | None = Field(None, ge=0, le=2**31 - 1)
    mrr: float | None = Field(None, ge=0, allow_inf_nan=False)
    renewal_date: date | None = None
    lifecycle_stage: str | None = Field(None, max_length=50)
    created_at: date | None = Field(None, description="Contract start.")
    csm_email: str | None = Field(None, max_length=320, description="Where alert mail goes.")
    csm_slack: str | None = Field(
        None,
        max_length=200,
        description="A Slack handle, or an incoming webhook URL alerts are posted to (https, "
        "on TEND_ALERTS__SLACK_WEBHOOK_HOSTS).",
    )
    customer_emails: list[str] | None = Field(
        None,
        max_length=20,
        description="The customer's contacts: the monthly report is sent to them, the CSM in "
        "copy (`tend report --send`, TEND_REPORTS__SEND_DAY); null: none.",
    )
    champion: str | None = Field(
        None,
        max_length=MAX_ID,
        description="The champion's user id; null: infer the champion from usage again.",
    )


@router.patch(
    "/{account_id}",
    summary="Set an account's profile: CSM routing, seats, renewal (leader, admin)",
    response_model=AccountSummary,
    dependencies=[require_role("admin", "leader")],
)
async def update_profile(
    account_id: Annotated[str, Path(min_length=1, max_length=MAX_ID)],
    update: ProfileUpdate,
    session: SessionDep,
    caller: CallerDep,
) -> dict[str, Any]:
    """The operator's way to route an account's alerts (group calls cannot, unless
    ``TEND_SCORER__ROUTING_FROM_TRAITS``). Creates the account when it is new; marks it for
    re-scoring."""
    fields: dict[str, Any] = {}
    for column, value in update.model_dump(exclude_unset=True).items():
        if isinstance(value, str | list):
            if not all(storable(v) for v in (value if isinstance(value, list) else [value])):
                raise ApiError.invalid(column, "contains NUL or a lone surrogate")
            try:
                value = PARSERS[column](value)
            except ValueError as err:
                raise ApiError.invalid(column, str(err)) from None
        fields[column] = value
    if not fields:
        raise ApiError.invalid("body", "give at least one profile field")
    await import_accounts(session, [AccountRow(account_id, fields)])
    audit.record(
        session,
        caller,
        "profile.update",
        target=f"account:{account_id}",
        account_id=account_id,
        details={"fields": sorted(fields)},
    )
    await session.commit()
    return account_summary(await _get_account(session, account_id))


def _score_row(h: HealthScore) -> dict[str, Any]:
    return {
        "as_of": h.as_of,
        "score": h.score,
        "band": h.band,
        "previous_score": h.previous_score,
        "previous_band": h.previous_band,
        "components": h.components,
        "left_out": h.left_out,
        "moved": h.moved,
        "computed_at": h.computed_at,
    }


@router.get(
    "/{account_id}/health",
    summary="Current score with components, and daily history",
    response_model=AccountHealth,
    responses=NOT_FOUND,
)
async def get_health(
    account_id: str,
    session: SessionDep,
    caller: CallerDep,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    await guard_account(session, caller, account_id)
    await _get_account(session, account_id)
    start, end = _date_range(start, end, 90)
    latest = await scores.latest_score(session, account_id)
    history = await scores.score_history(session, account_id, start, end)
    return {
        "account_id": account_id,
        "current": _score_row(latest) if latest else None,
        "metrics": latest.metrics if latest else None,
        "history": [{"as_of": h.as_of, "score": h.score, "band": h.band} for h in history],
    }


@router.get(
    "/{account_id}/usage",
    summary="Daily rollups, overall and per feature",
    response_model=AccountUsage,
    responses=NOT_FOUND,
)
async def get_usage(
    account_id: str,
    session: SessionDep,
    caller: CallerDep,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    await guard_account(session, caller, account_id)
    await _get_account(session, account_id)
    start, end = _date_range(start, end, 28)
    days = await usage.account_days(session, account_id, start, end)
    features = await usage.feature_days(session, account_id, start, end)
    by_feature: dict[str, list[dict[str, Any]]] = {}
    for f in features:
        by_feature.setdefault(f.feature, []).append(
            {"day": f.day, "uses": f.uses, "users": f.users}
        )
    return {
        "account_id": account_id,
        "from": start,
        "to": end,
        "days": [
            {"day": d.day, "events": d.events, "logins": d.logins, "active_users": d.active_users}
            for d in days
        ],
        "features": by_feature,
    }


# -- monthly value report -------------------------------------------------------------------


async def _report(
    request: Request, session: AsyncSession, account_id: str, month: str | None
) -> MonthlyReport:
    await guard_account(session, request.state.caller, account_id)
    account = await _get_account(session, account_id)
    today = date.today()
    try:
        first = parse_month(month, today) if month is not None else last_month(today)
    except MonthError as err:
        raise ApiError(422, str(err), code="invalid") from None
    config: TendConfig | None = getattr(request.app.state, "config", None)
    return await build_report(session, account, first, today, key_features_of(config), config)


MonthQuery = Annotated[
    str | None, Query(description="YYYY-MM (UTC); default: the last complete month")
]


@router.get("/{account_id}/report", summary="Monthly value report (JSON)", responses=NOT_FOUND)
async def get_report(
    account_id: str, request: Request, session: SessionDep, month: MonthQuery = None
) -> MonthlyReport:
    """Active users and seat utilization, logins, feature adoption and the health trend of one
    month, each with the month before; ``highlights`` says what changed in words."""
    return await _report(request, session, account_id, month)


@router.get(
    "/{account_id}/report.html",
    summary="Monthly value report (printable HTML page)",
    response_class=HTMLResponse,
    responses=error_responses(401, 404, 422, html=True),
)
async def get_report_html(
    account_id: str, request: Request, session: SessionDep, month: MonthQuery = None
) -> HTMLResponse:
    report = await _report(request, session, account_id, month)
    return HTMLResponse(render_html(report, config=getattr(request.app.state, "config", None)))

"""CSV exports of the read API: accounts with scores and bands, alerts, retention tables.

Served by ``tend web`` (and inside ``tend up``). Bearer-token auth (``TEND_API_TOKEN``). Each
route takes the filters of its JSON route and lists what that route would list, every row at
once (up to :data:`services.web.exports.MAX_ROWS`), with the JSON's field names as columns;
docs/api.md lists them. The console's download links serve the same files
(:mod:`services.web.console.exports`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.web.api import accounts as accounts_api
from services.web.api import alerts as alerts_api
from services.web.api.accounts import BandQuery, SortQuery, StageQuery, account_listing
from services.web.api.alerts import AccountQuery, RuleQuery, StatusQuery, alert_listing
from services.web.api.retention import ByQuery, FromQuery, ToQuery, retention_report
from services.web.deps import SessionDep
from services.web.exports import MAX_ROWS, csv_response
from shared.api_auth import CallerDep, require_role, require_token
from shared.api_errors import ApiError, ErrorRoute, error_responses, operation_id
from shared.api_input import storable_params
from shared.outcomes.model import Stage
from shared.outcomes.retention import SegmentBy
from shared.read.accounts import AccountFilter, SortKey

router = APIRouter(
    prefix="/v1",
    tags=["exports"],
    dependencies=[Depends(require_token), Depends(storable_params)],
    route_class=ErrorRoute,
    generate_unique_id_function=operation_id,
    responses=error_responses(401, 422, html=True),
)

CSV_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"description": "A CSV file with a header line", "content": {"text/csv": {}}}
}

ACCOUNT_COLUMNS = (
    "account_id", "name", "plan", "seats", "mrr", "renewal_date", "lifecycle_stage", "stage",
    "csm_email", "csm_slack", "champion", "customer_emails", "score", "band", "scored_as_of",
    "first_seen",
)  # fmt: skip
ALERT_COLUMNS = (
    "id", "account_id", "account_name", "rule", "feature", "status", "severity", "reason",
    "next_step", "as_of", "started_on", "opened_on", "resolved_on", "reopenings", "score",
    "band", "mrr", "csm_email", "opened_at", "acknowledged_at", "snoozed_until",
    "snooze_reason", "resolved_at", "resolved_by", "last_notified_at", "notifications",
    "consecutive_holds", "consecutive_clears", "updated_at",
)  # fmt: skip
"""Every field of an alert in ``GET /v1/alerts`` but ``facts`` (an open object)."""
_LIFETIME = ("churn_rate", "arpa", "expected_lifetime_months", "capped", "clv")
RETENTION_COLUMNS: dict[str, tuple[str, ...]] = {
    "months": (
        "month", "segment", "accounts_at_start", "churned_accounts", "starting_mrr",
        "expansion_mrr", "contraction_mrr", "churned_mrr", "logo_churn_rate",
        "gross_revenue_retention", "net_revenue_retention",
    ),
    "lifetime_value": ("segment", "account_months", "churned_accounts", *_LIFETIME),
    "time_to_value": ("cohort", "accounts", "reached", "share_reached", "median_days"),
    "accounts": ("account_id", "segment", "months", *_LIFETIME),
}  # fmt: skip
RetentionTable = Literal["months", "lifetime_value", "time_to_value", "accounts"]


async def accounts_csv(
    session: AsyncSession,
    request: Request,
    where: AccountFilter,
    stage: Stage | None,
    sort: SortKey,
) -> Response:
    listing = await account_listing(session, request, where, stage, sort=sort, limit=MAX_ROWS)
    return csv_response(ACCOUNT_COLUMNS, listing["accounts"], "accounts.csv")


async def alerts_csv(
    session: AsyncSession,
    status: str,
    account: str | None,
    rule: str | None,
    csm: str | None,
    book: str | None,
) -> Response:
    """``book``: the caller's (``Caller.book()``), so a CSM's file holds their book only."""
    listing = await alert_listing(session, status, account, rule, csm, limit=MAX_ROWS, book=book)
    return csv_response(ALERT_COLUMNS, listing["alerts"], "alerts.csv")


async def retention_csv(
    request: Request,
    session: AsyncSession,
    start: str | None,
    end: str | None,
    by: SegmentBy | None,
    table: RetentionTable,
) -> Response:
    report = await retention_report(request, session, start, end, by, table == "accounts")
    return csv_response(RETENTION_COLUMNS[table], report[table], f"retention-{table}.csv")


@router.get(
    "/accounts.csv",
    summary="Accounts with their scores and bands, as CSV",
    response_class=Response,
    responses=CSV_ANSWER,
)
async def export_accounts(
    session: SessionDep,
    request: Request,
    band: BandQuery = None,
    csm: accounts_api.CsmQuery = None,
    stage: StageQuery = None,
    sort: SortQuery = "score",
) -> Response:
    return await accounts_csv(session, request, AccountFilter(csm=csm, band=band), stage, sort)


@router.get(
    "/alerts.csv",
    summary="Alerts (active ones unless status says otherwise), as CSV",
    response_class=Response,
    responses=CSV_ANSWER,
)
async def export_alerts(
    session: SessionDep,
    caller: CallerDep,
    status: StatusQuery = "active",
    account: AccountQuery = None,
    rule: RuleQuery = None,
    csm: alerts_api.CsmQuery = None,
) -> Response:
    return await alerts_csv(session, status, account, rule, csm, caller.book())


@router.get(
    "/retention.csv",
    summary="One retention table (months, lifetime value, time to value, accounts), as CSV",
    response_class=Response,
    responses={
        **CSV_ANSWER,
        **error_responses(
            409,
            html=True,
            descriptions={409: "An account's outcomes contradict its profile's MRR"},
        ),
    },
    dependencies=[require_role("admin", "leader")],
)
async def export_retention(
    request: Request,
    session: SessionDep,
    start: FromQuery = None,
    end: ToQuery = None,
    by: ByQuery = None,
    table: Annotated[
        str, Query(description="months (default), lifetime_value, time_to_value or accounts")
    ] = "months",
) -> Response:
    if table not in RETENTION_COLUMNS:
        raise ApiError.invalid("table", f"{table!r} is not one of {', '.join(RETENTION_COLUMNS)}")
    return await retention_csv(request, session, start, end, by, cast(RetentionTable, table))

"""The retention API: churn, revenue retention and lifetime value per month and segment, and
time to customer value per signup cohort (docs/retention.md writes out every formula).

Served by ``tend web`` (and inside ``tend up``). Bearer-token auth; leaders and admins only (the
figures span every account). The
figures are :mod:`shared.outcomes.retention` and :mod:`shared.outcomes.value` over every
account's profile and recorded outcomes, as they are now.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.web.deps import SessionDep, clock_of, policy_of
from shared.api_auth import require_role, require_token
from shared.api_errors import ApiError, ErrorRoute, error_responses, operation_id
from shared.api_input import storable_params
from shared.config import TendConfig
from shared.outcomes.model import FIRST_DAY
from shared.outcomes.mrr import InconsistentOutcomes
from shared.outcomes.retention import SEGMENT_BYS, Month, SegmentBy, months
from shared.outcomes.value import account_values
from shared.read.retention import last_complete_month, months_back, retention_figures

router = APIRouter(
    prefix="/v1/retention",
    tags=["retention"],
    dependencies=[
        Depends(require_token),
        require_role("admin", "leader"),
        Depends(storable_params),
    ],
    route_class=ErrorRoute,
    generate_unique_id_function=operation_id,
    responses=error_responses(401, 403, 422),
)

FromQuery = Annotated[
    str | None, Query(alias="from", description="YYYY-MM; default: 11 months before to")
]
ToQuery = Annotated[
    str | None, Query(alias="to", description="YYYY-MM; default: the last complete month")
]
ByQuery = Annotated[SegmentBy | None, Query(description=f"Segment by {', '.join(SEGMENT_BYS)}")]
"""The range and segment of ``GET /v1/retention``, which its CSV export takes too."""

MAX_MONTHS = 36
"""The longest range one request may ask for."""
DEFAULT_MONTHS = 12


class RetentionMonth(BaseModel):
    month: str = Field(description="YYYY-MM")
    segment: str = Field(description="The plan, CSM, signup month or stage; 'all' without by.")
    accounts_at_start: int = Field(description="Customers when the month begins (the cohort).")
    churned_accounts: int = Field(description="Cohort accounts cancelled at the month's end.")
    starting_mrr: float
    expansion_mrr: float
    contraction_mrr: float
    churned_mrr: float
    logo_churn_rate: float | None = Field(None, description="churned / accounts at start.")
    gross_revenue_retention: float | None = Field(
        None, description="(start - contraction - churned) / start; null when start is 0."
    )
    net_revenue_retention: float | None = Field(
        None, description="(start + expansion - contraction - churned) / start."
    )


class Lifetime(BaseModel):
    churn_rate: float | None = Field(None, description="Monthly, pooled: churned / account-months.")
    arpa: float | None = Field(None, description="Average MRR per account-month.")
    expected_lifetime_months: float | None = None
    capped: bool = Field(description="The lifetime is max_lifetime_months (churn too low).")
    clv: float | None = Field(None, description="arpa x gross margin x expected lifetime.")


class LifetimeValue(Lifetime):
    segment: str
    account_months: int = Field(description="Sum of the months' cohort sizes.")
    churned_accounts: int


class AccountLifetimeValue(Lifetime):
    """An account's own ARPA with its segment's churn rate."""

    account_id: str
    segment: str = Field(description="Its segment in the last month it was a customer.")
    months: int = Field(description="Months of the range it was a customer when they began.")


class CohortValueTime(BaseModel):
    cohort: str = Field(description="Signup month, YYYY-MM.")
    accounts: int
    reached: int = Field(description="Accounts that used a key feature.")
    share_reached: float | None = None
    median_days: float | None = Field(None, description="Start to first key-feature use.")


class RetentionReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from": "2026-02",
                    "to": "2026-02",
                    "by": None,
                    "gross_margin": 0.8,
                    "max_lifetime_months": 60,
                    "key_features": ["reports", "exports"],
                    "months": [
                        {
                            "month": "2026-02",
                            "segment": "all",
                            "accounts_at_start": 5,
                            "churned_accounts": 1,
                            "starting_mrr": 2600.0,
                            "expansion_mrr": 500.0,
                            "contraction_mrr": 50.0,
                            "churned_mrr": 200.0,
                            "logo_churn_rate": 0.2,
                            "gross_revenue_retention": 0.9038,
                            "net_revenue_retention": 1.0962,
                        }
                    ],
                    "lifetime_value": [
                        {
                            "segment": "all",
                            "account_months": 5,
                            "churned_accounts": 1,
                            "churn_rate": 0.2,
                            "arpa": 520.0,
                            "expected_lifetime_months": 5.0,
                            "capped": False,
                            "clv": 2080.0,
                        }
                    ],
                    "time_to_value": [
                        {
                            "cohort": "2026-02",
                            "accounts": 1,
                            "reached": 1,
                            "share_reached": 1.0,
                            "median_days": 4.0,
                        }
                    ],
                }
            ]
        },
        populate_by_name=True,
    )

    start: str = Field(alias="from", description="First month, YYYY-MM.")
    end: str = Field(alias="to", description="Last month, YYYY-MM.")
    by: SegmentBy | None = None
    gross_margin: float
    max_lifetime_months: int
    key_features: list[str] = Field(description="What counts as first value.")
    months: list[RetentionMonth]
    lifetime_value: list[LifetimeValue] = Field(description="Per segment, pooled over the range.")
    time_to_value: list[CohortValueTime] = Field(description="Signup cohorts within the range.")
    accounts: list[AccountLifetimeValue] | None = Field(
        None, description="Per account CLV (with accounts=true)."
    )


def _range(start: str | None, end: str | None, today: date) -> tuple[Month, Month]:
    current = Month.of(today)
    try:
        last = Month.parse(end, field="to") if end is not None else last_complete_month(today)
        first = (
            Month.parse(start, field="from")
            if start is not None
            else months_back(last, DEFAULT_MONTHS)
        )
    except ValueError as err:
        raise ApiError(422, str(err), code="invalid") from None
    for name, month in (("from", first), ("to", last)):
        if month.year < FIRST_DAY.year:
            raise ApiError.invalid(name, f"must not be before {FIRST_DAY.year}-01")
    if last > current:
        raise ApiError.invalid("to", f"must not be after the current month ({current})")
    if first > last:
        raise ApiError.invalid("from", "must not be after to")
    if len(months(first, last)) > MAX_MONTHS:
        raise ApiError.invalid("from", f"the range may span at most {MAX_MONTHS} months")
    return first, last


def _lifetime(v: Any) -> dict[str, Any]:
    life = v.lifetime
    return {
        "churn_rate": life.churn_rate,
        "arpa": life.arpa,
        "expected_lifetime_months": life.months,
        "capped": life.capped,
        "clv": life.clv,
    }


@router.get(
    "",
    summary="Churn, retention, CLV and time to value",
    response_model=RetentionReport,
    responses=error_responses(
        409,
        descriptions={409: "An account's outcomes contradict its profile's MRR"},
        messages={409: "account 'acme': the contraction on 2026-03-01 takes the MRR below 0"},
    ),
)
async def get_retention(
    request: Request,
    session: SessionDep,
    start: FromQuery = None,
    end: ToQuery = None,
    by: ByQuery = None,
    per_account: Annotated[
        bool, Query(alias="accounts", description="Also every account's CLV")
    ] = False,
) -> dict[str, Any]:
    """Per month and segment: logo churn rate, gross and net revenue retention, expansion,
    contraction and churned MRR; CLV per segment (and per account); median days to first
    key-feature use per signup cohort of the range. At most 36 months at once."""
    return await retention_report(request, session, start, end, by, per_account)


async def retention_report(
    request: Request,
    session: AsyncSession,
    start: str | None,
    end: str | None,
    by: SegmentBy | None,
    per_account: bool,
) -> dict[str, Any]:
    """What ``GET /v1/retention`` answers (and its CSV export takes a table of)."""
    first, last = _range(start, end, clock_of(request).now().date())
    policy = policy_of(request)
    config: TendConfig | None = getattr(request.app.state, "config", None)
    keys = list(config.key_features) if config is not None else []
    try:
        figures = await retention_figures(
            session, first, last, by=by, policy=policy, key_features=keys
        )
    except InconsistentOutcomes as err:
        raise ApiError.conflict(f"{err}; correct the outcomes or the profile's MRR") from None
    rows = figures.months
    body: dict[str, Any] = {
        "from": str(first),
        "to": str(last),
        "by": by,
        "gross_margin": policy.gross_margin,
        "max_lifetime_months": policy.max_lifetime_months,
        "key_features": keys,
        "months": [
            {
                "month": str(r.month),
                "segment": r.segment,
                "accounts_at_start": r.accounts_at_start,
                "churned_accounts": r.churned_accounts,
                "starting_mrr": r.starting_mrr,
                "expansion_mrr": r.expansion_mrr,
                "contraction_mrr": r.contraction_mrr,
                "churned_mrr": r.churned_mrr,
                "logo_churn_rate": r.logo_churn_rate,
                "gross_revenue_retention": r.gross_revenue_retention,
                "net_revenue_retention": r.net_revenue_retention,
            }
            for r in rows
        ],
        "lifetime_value": [
            {
                "segment": v.segment,
                "account_months": v.account_months,
                "churned_accounts": v.churned_accounts,
                **_lifetime(v),
            }
            for v in figures.lifetime_value
        ],
        "time_to_value": [
            {
                "cohort": str(c.cohort),
                "accounts": c.accounts,
                "reached": c.reached,
                "share_reached": c.share_reached,
                "median_days": c.median_days,
            }
            for c in figures.time_to_value
        ],
        "accounts": None,
    }
    if per_account:
        body["accounts"] = [
            {
                "account_id": v.account_id,
                "segment": v.segment,
                "months": v.months,
                **_lifetime(v),
            }
            for v in account_values(figures.histories, first, last, by=by, policy=policy)
        ]
    return body

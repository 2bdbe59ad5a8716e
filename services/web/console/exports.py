"""The console's CSV downloads: ``/console/accounts.csv`` (the portfolio as filtered),
``/console/alerts.csv`` (the open alerts, of a CSM) and ``/console/retention.csv`` (a table of
the retention page's range). Signed-in sessions only; the files are the API's
(:mod:`services.web.api.exports`), so a download and ``/v1/*.csv`` never disagree.
"""

from __future__ import annotations

from typing import Annotated, cast, get_args

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from services.web.api.exports import (
    RETENTION_COLUMNS,
    RetentionTable,
    accounts_csv,
    alerts_csv,
    retention_csv,
)
from services.web.console import plumbing as web
from services.web.console import retention, views
from services.web.console.plumbing import SessionDep
from services.web.console.routes import portfolio_filter
from services.web.deps import clock_of
from shared.api_errors import ApiError
from shared.api_input import storable_params
from shared.outcomes.model import Stage
from shared.read.accounts import SortKey

router = APIRouter(
    prefix="/console", include_in_schema=False, dependencies=[Depends(storable_params)]
)

SORTS: tuple[str, ...] = get_args(SortKey)


@router.get("/accounts.csv")
async def portfolio_csv(
    request: Request,
    session: SessionDep,
    csm: str | None = None,
    band: str | None = None,
    renewal: str | None = None,
    stage: str | None = None,
    sort: str | None = None,
) -> Response:
    f = portfolio_filter(csm, band, renewal, stage, sort)
    where = views.account_filter(f, clock_of(request).now().date())
    # The console also sorts by trend, which is not a column: such a file is by score.
    order = cast(SortKey, f.sort) if f.sort in SORTS else "score"
    async with web.database(request)() as db:
        return await accounts_csv(db, request, where, cast(Stage | None, f.stage), order)


@router.get("/alerts.csv")
async def open_alerts_csv(
    request: Request, session: SessionDep, csm: str | None = None
) -> Response:
    async with web.database(request)() as db:
        return await alerts_csv(db, "active", None, None, csm or None, web.caller(session).book())


@router.get("/retention.csv")
async def retention_table_csv(
    request: Request,
    session: SessionDep,
    start: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
    by: str | None = None,
    table: str = "months",
) -> Response:
    if not web.caller(session).sees_all:
        return web.error(request, 403, "The retention figures are for leaders and admins.", session)
    query = retention.parse_query(start, to, by, clock_of(request).now().date())
    which = cast(RetentionTable, table if table in RETENTION_COLUMNS else "months")
    async with web.database(request)() as db:
        try:
            return await retention_csv(
                request, db, str(query.first), str(query.last), query.by, which
            )
        except ApiError as err:
            return web.error(request, err.status, str(err), session)

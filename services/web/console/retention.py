"""The console's retention page: churn, revenue retention, CLV and time to value per month and
segment, the same figures as ``GET /v1/retention`` (both read :mod:`shared.read.retention`).

The query is read leniently, as a page should: a month that is not ``YYYY-MM`` or a range the
API would refuse shows the default range (the last 12 complete months) with a note saying why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.web.charts import LineChart, Margins, line_chart
from shared import format as fmt
from shared.outcomes.model import FIRST_DAY, OutcomesPolicy
from shared.outcomes.mrr import InconsistentOutcomes
from shared.outcomes.retention import (
    ALL,
    SEGMENT_BYS,
    Month,
    RetentionRow,
    SegmentBy,
    monthly_retention,
    months,
)
from shared.read.retention import (
    RetentionFigures,
    last_complete_month,
    months_back,
    retention_figures,
)

DEFAULT_MONTHS = 12
MAX_MONTHS = 36
"""As the retention API: the longest range one page shows."""
CHART_MARGINS = Margins(left=40.0, right=8.0, top=8.0, bottom=26.0)


@dataclass(frozen=True, slots=True)
class RetentionQuery:
    first: Month
    last: Month
    by: SegmentBy | None
    problem: str | None = None
    """Why the asked range or segment was not used (the defaults are shown instead)."""


def parse_query(start: str | None, end: str | None, by: str | None, today: date) -> RetentionQuery:
    """The months and segment a page asks for; the last 12 complete months by default."""
    segment: SegmentBy | None = by if by in SEGMENT_BYS else None
    problems = [f"there is no segment {by!r}"] if by and segment is None else []
    default_last = last_complete_month(today)
    try:
        last = Month.parse(end, field="to") if end else default_last
        first = Month.parse(start, field="from") if start else months_back(last, DEFAULT_MONTHS)
        if first > last:
            raise ValueError("from: must not be after to")
        if last > Month.of(today) or first.year < FIRST_DAY.year:
            raise ValueError(f"to: must lie between {FIRST_DAY.year}-01 and {Month.of(today)}")
        if len(months(first, last)) > MAX_MONTHS:
            raise ValueError(f"from: the range may span at most {MAX_MONTHS} months")
    except ValueError as err:
        problems.append(str(err))
        last = default_last
        first = months_back(last, DEFAULT_MONTHS)
    problem = "; ".join(problems) + " (showing the defaults)" if problems else None
    return RetentionQuery(first, last, segment, problem)


@dataclass(frozen=True, slots=True)
class Series:
    """One line of the chart: its name, CSS class and geometry (None: no value to draw)."""

    name: str
    css: str
    chart: LineChart | None


def _scale(values: Sequence[float]) -> float:
    """The chart's top in percent: 100, or the largest value rounded up to the next 20."""
    top = max([100.0, *values])
    return float(-(-top // 20) * 20)


def chart_series(
    rows: Sequence[RetentionRow], width: float = 640, height: float = 220
) -> list[Series]:
    """NRR, GRR and logo churn of the whole portfolio (segment ``all``) per month, in percent,
    on one shared axis; each month is plotted at its first day."""
    overall = [r for r in rows if r.segment == ALL]
    if not overall:
        return []
    series = {
        "Net revenue retention": ("nrr", [r.net_revenue_retention for r in overall]),
        "Gross revenue retention": ("grr", [r.gross_revenue_retention for r in overall]),
        "Logo churn": ("churn", [r.logo_churn_rate for r in overall]),
    }
    percents = {
        name: [None if v is None else 100 * v for v in values]
        for name, (_, values) in series.items()
    }
    top = _scale([v for values in percents.values() for v in values if v is not None])
    days = [r.month.first_day for r in overall]
    start, end = days[0], days[-1]
    ticks = sorted({0.0, 50.0, 100.0, top})
    return [
        Series(
            name,
            series[name][0],
            line_chart(
                list(zip(days, values, strict=True)),
                None,
                width,
                height,
                margins=CHART_MARGINS,
                ticks=ticks,
                start=start,
                end=end if end > start else None,
                scale_max=top,
            ),
        )
        for name, values in percents.items()
    ]


def by_options() -> list[tuple[str, str]]:
    return [("", "Whole portfolio"), *((b, f"By {fmt.words(b)}") for b in SEGMENT_BYS)]


async def page_context(
    session: AsyncSession,
    query: RetentionQuery,
    policy: OutcomesPolicy,
    key_features: Sequence[str],
) -> dict[str, Any]:
    """What ``console/retention.html`` shows; ``error`` when the outcomes contradict a profile
    (the page says which account, as the API's 409 does)."""
    context: dict[str, Any] = {
        "query": query,
        "by_options": by_options(),
        "policy": policy,
        "key_features": list(key_features),
        "figures": None,
        "series": [],
        "error": None,
    }
    try:
        figures: RetentionFigures = await retention_figures(
            session,
            query.first,
            query.last,
            by=query.by,
            policy=policy,
            key_features=key_features,
        )
    except InconsistentOutcomes as err:
        context["error"] = f"{err}; correct the outcomes or the profile's MRR"
        return context
    overall = figures.months
    if query.by is not None:  # the chart is of the whole portfolio
        overall = monthly_retention(figures.histories, query.first, query.last, policy=policy)
    context["figures"] = figures
    context["series"] = chart_series(overall)
    return context

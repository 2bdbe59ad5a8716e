"""The monthly value report as one self-contained, printable HTML page (no assets, no network:
a print stylesheet and an inline SVG chart), and the plain text of its email.

Both are Jinja templates (``templates/report/``, autoescaped); numbers and dates go through the
:mod:`shared.format` filters and the month's scores through the one chart helper
(:mod:`services.web.charts`), drawn by the same macro as the console's score history.
"""

from __future__ import annotations

from datetime import UTC, datetime

from services.web.charts import Bands, LineChart, line_chart
from services.web.reports.build import STATUS_WORDS, MonthlyReport
from services.web.templating import environment
from shared.config import TendConfig

__all__ = ["bands_of", "chart_of", "render_html", "render_text"]

CHART_WIDTH, CHART_HEIGHT = 600.0, 180.0


def bands_of(config: TendConfig | None) -> Bands:
    """The score bands of ``config`` (the defaults without one): the chart's zones."""
    b = (config or TendConfig()).scoring.bands
    return Bands(green=b.green, yellow=b.yellow)


def chart_of(r: MonthlyReport, bands: Bands) -> LineChart | None:
    """The month's daily scores on a 0..100 axis over the whole month; None without scores."""
    return line_chart(
        [(p.as_of, p.score, p.band) for p in r.health.history],
        bands,
        CHART_WIDTH,
        CHART_HEIGHT,
        start=r.period_start,
        end=r.period_end,
    )


def render_html(
    r: MonthlyReport, *, config: TendConfig | None = None, now: datetime | None = None
) -> str:
    """The report page; ``config`` gives the chart its bands, ``now`` the footer's time."""
    bands = bands_of(config)
    return (
        environment()
        .get_template("report/report.html")
        .render(
            r=r,
            chart=chart_of(r, bands),
            bands=bands,
            generated=now or datetime.now(UTC),
            currency=(config or TendConfig()).currency,
            status_words=STATUS_WORDS,
        )
    )


def render_text(r: MonthlyReport, *, pdf: bool = False) -> str:
    """The plain-text part of the report's email: the account, the month and the highlights;
    ``pdf``: a PDF is attached too."""
    return environment().get_template("report/email.txt").render(r=r, pdf=pdf)

"""The monthly value report as one self-contained, printable HTML page: no assets, no network
(a print stylesheet and an inline SVG chart); every value is escaped."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, date, datetime
from importlib import resources
from string import Template
from typing import Any

from services.web.reports.build import Delta, HealthPoint, MonthlyReport, month_label

# -- HTML ---------------------------------------------------------------------------------------

NONE = "\u2013"  # an en dash: "no value"
_BAND_COLOURS = {"green": "#1a7f37", "yellow": "#9a6700", "red": "#cf222e"}


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: float | None, fmt: str = ",.0f") -> str:
    return NONE if value is None else format(value, fmt)


def _change(d: Delta, fmt: str = "+,.0f", pct: bool = True) -> str:
    if d.change is None:
        return NONE
    text = format(d.change, fmt)
    if pct and d.change_pct is not None:
        text += f" ({d.change_pct:+.0f}%)"
    cls = "up" if d.change > 0 else "down" if d.change < 0 else "same"
    return f'<span class="{cls}">{_e(text)}</span>'


def _metric_row(label: str, d: Delta, fmt: str = ",.0f", change_fmt: str = "+,.0f") -> str:
    return (
        f"<tr><th scope=row>{_e(label)}</th><td>{_e(_num(d.value, fmt))}</td>"
        f"<td>{_e(_num(d.previous, fmt))}</td><td>{_change(d, change_fmt)}</td></tr>"
    )


def _chart(history: Sequence[HealthPoint], first: date, last: date) -> str:
    """An inline SVG line of the daily scores over the month (0..100)."""
    points = [p for p in history if p.score is not None]
    if not points:
        return "<p>No health scores in this month.</p>"
    width, height, pad = 600, 160, 24
    span = max(1, (last - first).days)

    def x(d: date) -> float:
        return pad + (width - 2 * pad) * (d - first).days / span

    def y(score: float) -> float:
        return pad + (height - 2 * pad) * (1 - score / 100)

    line = " ".join(f"{x(p.as_of):.1f},{y(p.score or 0):.1f}" for p in points)
    dots = "".join(
        f'<circle cx="{x(p.as_of):.1f}" cy="{y(p.score or 0):.1f}" r="3" '
        f'fill="{_BAND_COLOURS.get(p.band, "#57606a")}"><title>{_e(p.as_of)}: '
        f"{_e(_num(p.score))} ({_e(p.band)})</title></circle>"
        for p in points
    )
    grid = "".join(
        f'<line x1="{pad}" x2="{width - pad}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
        f'<text x="2" y="{y(v) + 4:.1f}" class="axis">{v}</text>'
        for v in (0, 40, 70, 100)
    )
    return (
        f'<svg viewBox="0 0 {width} {height}" role="img" class="chart" '
        f'aria-label="Health score each day of the month">{grid}'
        f'<polyline points="{line}" fill="none" stroke="#0969da" stroke-width="2"/>{dots}</svg>'
    )


def _feature_rows(r: MonthlyReport) -> str:
    if not r.features:
        return '<tr><td colspan="6">No feature use recorded.</td></tr>'
    rows = []
    for f in r.features:
        name = f"{f.feature} (key)" if f.key else f.feature
        rows.append(
            f"<tr><th scope=row>{_e(name)}</th><td>{f.uses:,}</td><td>{f.users:,}</td>"
            f"<td>{f.previous_uses:,}</td><td>{f.previous_users:,}</td>"
            f'<td><span class="status {_e(f.status)}">{_e(f.status)}</span></td></tr>'
        )
    return "".join(rows)


def _template() -> Template:
    text = (
        resources.files("services.web").joinpath("templates/report/report.html").read_text("utf-8")
    )
    return Template(text)


def render_html(r: MonthlyReport) -> str:
    """The report as one self-contained, printable HTML page."""
    a = r.account
    title = f"{a.name or a.account_id} · {month_label(r.period_start)}"
    prev = month_label(date.fromisoformat(r.previous_month + "-01"))
    h = r.health
    end_score = h.end.score if h.end else None
    facts = [
        ("Plan", a.plan or NONE),
        ("Seats", _num(a.seats)),
        ("MRR", NONE if a.mrr is None else f"${a.mrr:,.0f}"),
        ("Renewal", str(a.renewal_date) if a.renewal_date else NONE),
        ("CSM", a.csm_name or a.csm_email or NONE),
    ]
    period = f"{r.period_start:%b %-d} to {r.period_end:%b %-d, %Y}"
    if not r.complete:
        period += " (month to date)"
    health_summary = (
        f"{_num(end_score)} ({h.end.band}) on {h.end.as_of}" if h.end else "not scored yet"
    )
    if h.change is not None:
        health_summary += f", {h.change:+.0f} points over the month"
    bands = ", ".join(f"{n} days {b}" for b, n in sorted(h.days_by_band.items()))
    return _template().substitute(
        title=_e(title),
        account=_e(a.name or a.account_id),
        account_id=_e(a.account_id),
        period=_e(period),
        facts="".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts),
        highlights="".join(f"<li>{_e(s)}</li>" for s in r.highlights),
        month=_e(month_label(r.period_start)),
        previous=_e(prev),
        usage_rows="".join(
            [
                _metric_row("Active users", r.active_users),
                _metric_row("Seat utilization", r.seat_utilization, ".0%", "+.0%"),
                _metric_row("Logins", r.logins),
                _metric_row("Days with activity", r.active_days),
                _metric_row(
                    "Daily active users (mean)", r.mean_daily_active_users, ",.1f", "+,.1f"
                ),
                _metric_row("Events", r.events),
                _metric_row("Key features in use", r.key_features_used),
            ]
        ),
        feature_rows=_feature_rows(r),
        health_summary=_e(health_summary),
        health_bands=_e(bands or NONE),
        chart=_chart(h.history, r.period_start, r.period_end),
        generated=_e(datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
    )

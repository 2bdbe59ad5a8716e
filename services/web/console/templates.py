"""HTML of the console: plain functions returning strings, every value through :func:`e`.

No template engine and no JavaScript: pages are server-rendered, charts are inline SVG, and the
one stylesheet ships in ``static/``. Every chart has a text alternative (a label and, for the
larger ones, the numbers in a table), every form control a label.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from string import Template
from typing import Any
from urllib.parse import quote, urlencode

from services.web.console.views import (
    BANDS,
    RENEWAL_WINDOWS,
    AccountPage,
    Portfolio,
    PortfolioFilter,
    PortfolioRow,
    csm_label,
)
from shared.db.models import Alert

DASH = "—"
BAND_LABELS = {
    "green": "Green",
    "yellow": "Yellow",
    "red": "Red",
    "new": "New",
    "unknown": "Unknown",
}
AT_RISK = ("red", "yellow")
NOTICES = {
    "acknowledged": "Alert acknowledged: no more reminders for it.",
    "snoozed": "Alert snoozed.",
    "resolved": "Alert resolved.",
    "conflict": "That alert cannot make that move in its current state (refresh to see it).",
    "bad-until": "Snooze needs a time in the future (YYYY-MM-DD HH:MM, UTC).",
    "not-found": "That alert no longer exists.",
}


def e(value: Any) -> str:
    """Escaped text; None shows as a dash."""
    return DASH if value is None else html.escape(str(value), quote=True)


def fmt_score(score: float | None) -> str:
    return DASH if score is None else f"{score:.1f}"


def fmt_money(amount: float | None) -> str:
    if amount is None:
        return DASH
    return f"{amount:,.0f}" if float(amount).is_integer() else f"{amount:,.2f}"


def fmt_pct(ratio: float | None) -> str:
    return DASH if ratio is None else f"{100 * ratio:.0f}%"


def fmt_date(day: date | str | None) -> str:
    if day is None:
        return DASH
    if isinstance(day, str):
        return e(day[:10])
    return day.isoformat()


def fmt_when(at: datetime | None) -> str:
    return DASH if at is None else at.strftime("%Y-%m-%d %H:%M UTC")


def fmt_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return e(value)
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return e(value)


def human(name: str) -> str:
    return name.replace("_", " ").capitalize()


def band_badge(band: str | None) -> str:
    b = band or "unknown"
    css = b if b in BAND_LABELS else "unknown"
    return f'<span class="band band-{css}">{e(BAND_LABELS.get(b, b))}</span>'


def trend_marker(delta: float | None) -> str:
    if delta is None:
        return (
            f'<span class="trend flat">{DASH}'
            '<span class="sr-only"> no score a week ago</span></span>'
        )
    if delta >= 2:
        css, arrow, words = "up", "↑", "up"
    elif delta <= -2:
        css, arrow, words = "down", "↓", "down"
    else:
        css, arrow, words = "flat", "→", "steady,"
    return (
        f'<span class="trend {css}"><span aria-hidden="true">{arrow}</span> '
        f'<span class="sr-only">{words} </span>{delta:+.1f}'
        '<span class="sr-only"> points in 7 days</span></span>'
    )


# -- SVG ---------------------------------------------------------------------------------------


def _points(pairs: Iterable[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in pairs)


def sparkline(points: Sequence[tuple[date, float | None]], band: str | None) -> str:
    scored = [(d, s) for d, s in points if s is not None]
    if len(scored) < 2:
        return f'<span class="muted">{DASH}<span class="sr-only"> not enough history</span></span>'
    w, h = 120.0, 28.0
    first, last = scored[0][0], scored[-1][0]
    span = max(1, (last - first).days)
    xy = [((d - first).days / span * (w - 4) + 2, h - 2 - s / 100 * (h - 4)) for d, s in scored]
    label = (
        f"Score over the last 12 weeks: {scored[0][1]:.0f} on {first.isoformat()}, "
        f"{scored[-1][1]:.0f} on {last.isoformat()}"
    )
    css = band if band in BAND_LABELS else "unknown"
    lx, ly = xy[-1]
    return (
        f'<svg class="spark spark-{css}" viewBox="0 0 {w:.0f} {h:.0f}" width="{w:.0f}" '
        f'height="{h:.0f}" role="img" aria-label="{e(label)}"><title>{e(label)}</title>'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" '
        f'points="{_points(xy)}"/><circle cx="{lx:.1f}" cy="{ly:.1f}" r="2.2" '
        'fill="currentColor"/></svg>'
    )


def score_chart(
    history: Sequence[tuple[date, float | None, str]], green: float, yellow: float
) -> str:
    """The score over time on a 0-100 axis, with the bands shaded behind it."""
    scored = [(d, s) for d, s, _ in history if s is not None]
    if not scored:
        return '<p class="muted">No scores yet.</p>'
    w, h, left, right, top, bottom = 640.0, 220.0, 34.0, 8.0, 8.0, 26.0
    pw, ph = w - left - right, h - top - bottom
    first, last = scored[0][0], scored[-1][0]
    span = max(1, (last - first).days)

    def x(d: date) -> float:
        return left + (d - first).days / span * pw

    def y(v: float) -> float:
        return top + (1 - v / 100) * ph

    parts = [
        f'<rect class="zone-green" x="{left}" y="{y(100):.1f}" width="{pw}" '
        f'height="{y(green) - y(100):.1f}"/>',
        f'<rect class="zone-yellow" x="{left}" y="{y(green):.1f}" width="{pw}" '
        f'height="{y(yellow) - y(green):.1f}"/>',
        f'<rect class="zone-red" x="{left}" y="{y(yellow):.1f}" width="{pw}" '
        f'height="{y(0) - y(yellow):.1f}"/>',
    ]
    for tick in (0, yellow, green, 100):
        parts.append(
            f'<line class="grid" x1="{left}" x2="{w - right}" y1="{y(tick):.1f}" '
            f'y2="{y(tick):.1f}"/><text class="axis" x="{left - 4}" y="{y(tick) + 4:.1f}" '
            f'text-anchor="end">{tick:g}</text>'
        )
    segments: list[list[tuple[float, float]]] = [[]]
    for d, s, _ in history:
        if s is None:
            segments.append([])
        else:
            segments[-1].append((x(d), y(s)))
    for seg in segments:
        if len(seg) > 1:
            parts.append(f'<polyline class="line" fill="none" points="{_points(seg)}"/>')
        elif len(seg) == 1:
            parts.append(f'<circle class="dot" cx="{seg[0][0]:.1f}" cy="{seg[0][1]:.1f}" r="2.5"/>')
    lx, ly = x(scored[-1][0]), y(scored[-1][1])
    parts.append(f'<circle class="dot" cx="{lx:.1f}" cy="{ly:.1f}" r="3.5"/>')
    labels = [first, last] if span < 14 else [first, first + timedelta(days=span // 2), last]
    for i, d in enumerate(labels):
        anchor = "start" if i == 0 else "end" if d == last else "middle"
        parts.append(
            f'<text class="axis" x="{x(d):.1f}" y="{h - 8}" text-anchor="{anchor}">'
            f"{d.isoformat()}</text>"
        )
    lo = min(s for _, s in scored)
    hi = max(s for _, s in scored)
    desc = (
        f"{len(scored)} daily scores from {first.isoformat()} to {last.isoformat()}: "
        f"now {scored[-1][1]:.1f}, lowest {lo:.1f}, highest {hi:.1f}. "
        f"Green from {green:g}, yellow from {yellow:g}."
    )
    return (
        f'<svg class="chart" viewBox="0 0 {w:.0f} {h:.0f}" role="img" '
        f'aria-labelledby="score-chart-title score-chart-desc">'
        f'<title id="score-chart-title">Health score history</title>'
        f'<desc id="score-chart-desc">{e(desc)}</desc>{"".join(parts)}</svg>'
    )


def bar_chart(title: str, values: Sequence[int], labels: Sequence[str], css: str) -> str:
    w, h, left, top, bottom = 320.0, 170.0, 8.0, 16.0, 22.0
    n = max(1, len(values))
    peak = max([*values, 1])
    slot = (w - 2 * left) / n
    bar = slot * 0.7
    parts = []
    for i, v in enumerate(values):
        bh = v / peak * (h - top - bottom)
        bx = left + i * slot + (slot - bar) / 2
        by = h - bottom - bh
        parts.append(
            f'<rect class="bar {css}" x="{bx:.1f}" y="{by:.1f}" width="{bar:.1f}" '
            f'height="{bh:.1f}"><title>{e(labels[i] if i < len(labels) else "")}: {v}</title>'
            f'</rect><text class="value" x="{bx + bar / 2:.1f}" y="{by - 3:.1f}" '
            f'text-anchor="middle">{v}</text>'
        )
    parts.append(
        f'<line class="grid" x1="{left}" x2="{w - left}" y1="{h - bottom}" y2="{h - bottom}"/>'
    )
    if labels:
        parts.append(
            f'<text class="axis" x="{left}" y="{h - 6}">{e(labels[0])}</text>'
            f'<text class="axis" x="{w - left}" y="{h - 6}" text-anchor="end">'
            f"{e(labels[-1])}</text>"
        )
    desc = ", ".join(f"{lab}: {v}" for lab, v in zip(labels, values, strict=False))
    return (
        f'<figure class="bars"><figcaption>{e(title)}</figcaption>'
        f'<svg class="chart" viewBox="0 0 {w:.0f} {h:.0f}" role="img" aria-label="'
        f'{e(title)}, weeks ending {e(desc)}">{"".join(parts)}</svg></figure>'
    )


# -- layout ------------------------------------------------------------------------------------

_LAYOUT = Template(
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>$title · tend</title>
<link rel="stylesheet" href="/console/static/console.css">
<link rel="icon" href="/console/static/favicon.svg" type="image/svg+xml">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<a class="brand" href="/console/">tend</a>
$nav
</header>
<main id="main" tabindex="-1">
$body
</main>
</body>
</html>
"""
)


def csrf_field(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{e(csrf)}">'


def page(title: str, body: str, *, csrf: str | None = None, current: str = "") -> str:
    nav = ""
    if csrf is not None:
        links = []
        for href, label in (("/console/", "Portfolio"), ("/console/alerts", "Alerts")):
            here = ' aria-current="page"' if href == current else ""
            links.append(f'<a href="{href}"{here}>{label}</a>')
        nav = (
            f'<nav aria-label="Console">{"".join(links)}</nav>'
            f'<form class="logout" method="post" action="/console/logout">{csrf_field(csrf)}'
            '<button type="submit" class="link">Log out</button></form>'
        )
    return _LAYOUT.substitute(title=e(title), nav=nav, body=body)


def login_page(*, error: str | None, next_url: str) -> str:
    alert = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
    body = f"""<section class="login" aria-labelledby="login-title">
<h1 id="login-title">Sign in to the tend console</h1>
<p>Use the API token of this tend installation: <code>TEND_API_TOKEN</code>, or the one
<code>tend up</code> printed when it started.</p>
{alert}
<form method="post" action="/console/login">
<input type="hidden" name="next" value="{e(next_url)}">
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required
 autofocus{' aria-invalid="true" aria-describedby="login-error"' if error else ""}>
<button type="submit">Sign in</button>
</form>
</section>"""
    if error:
        body = body.replace('role="alert"', 'role="alert" id="login-error"', 1)
    return page("Sign in", body)


def error_page(status: int, message: str, *, csrf: str | None = None) -> str:
    body = f'<h1>{status}: {e(message)}</h1><p><a href="/console/">Back to the portfolio</a></p>'
    return page(f"{status}", body, csrf=csrf)


# -- portfolio ---------------------------------------------------------------------------------


def _options(values: Iterable[tuple[str, str]], selected: str | None) -> str:
    out = []
    for value, label in values:
        sel = " selected" if value == (selected or "") else ""
        out.append(f'<option value="{e(value)}"{sel}>{e(label)}</option>')
    return "".join(out)


def _query(f: PortfolioFilter, **changes: Any) -> str:
    params = {
        "csm": f.csm,
        "band": f.band,
        "renewal": f.renewal_days,
        "sort": f.sort,
    }
    params.update(changes)
    return "?" + urlencode({k: v for k, v in params.items() if v not in (None, "")})


def _sort_header(label: str, key: str, f: PortfolioFilter, *, css: str = "") -> str:
    current = f.sort.lstrip("-")
    descending = f.sort.startswith("-")
    if current == key:
        aria = ' aria-sort="descending"' if descending else ' aria-sort="ascending"'
        target = key if descending else f"-{key}"
        arrow = " ▼" if descending else " ▲"
    else:
        aria, target, arrow = "", key, ""
    cls = f' class="{css}"' if css else ""
    return (
        f'<th scope="col"{aria}{cls}><a href="{e(_query(f, sort=target))}">{e(label)}'
        f'<span aria-hidden="true">{arrow}</span></a></th>'
    )


def account_href(account_id: str) -> str:
    return f"/console/accounts/{quote(account_id, safe='')}"


def _portfolio_row(r: PortfolioRow) -> str:
    util = r.seat_utilization
    seats = (
        f"{r.seats_used}/{r.seats} <span class=muted>({fmt_pct(util)})</span>"
        if r.seats_used is not None and r.seats
        else e(r.seats)
    )
    alerts = (
        f'<a href="{account_href(r.account_id)}#alerts" class="count">{r.open_alerts}</a>'
        if r.open_alerts
        else "0"
    )
    return (
        f'<tr data-account-id="{e(r.account_id)}">'
        f'<th scope="row"><a href="{account_href(r.account_id)}">{e(r.name or r.account_id)}</a>'
        f' <span class="sub">{e(r.account_id)}</span></th>'
        f'<td class="num">{fmt_score(r.score)}</td>'
        f"<td>{band_badge(r.band)}</td>"
        f'<td class="num">{trend_marker(r.trend)}</td>'
        f'<td class="spark-cell">{sparkline(r.spark, r.band)}</td>'
        f'<td class="num">{fmt_money(r.mrr)}</td>'
        f'<td class="num">{seats}</td>'
        f"<td>{fmt_date(r.renewal_date)}</td>"
        f"<td>{e(r.csm)}</td>"
        f'<td class="num">{alerts}</td>'
        "</tr>"
    )


def portfolio_page(p: Portfolio, f: PortfolioFilter, csrf: str) -> str:
    at_risk = sum(p.mrr_by_band.get(b, 0.0) for b in AT_RISK)
    band_rows = "".join(
        f'<tr><th scope="row">{band_badge(b)}</th>'
        f'<td class="num">{p.accounts_by_band.get(b, 0)}</td>'
        f'<td class="num">{fmt_money(p.mrr_by_band.get(b, 0.0))}</td></tr>'
        for b in BANDS
        if b in p.accounts_by_band
    )
    summary = f"""<section class="summary" aria-labelledby="risk-title">
<h2 id="risk-title">Revenue at risk</h2>
<p class="headline"><strong>{fmt_money(at_risk)}</strong> MRR in red and yellow accounts,
of {fmt_money(p.total_mrr)} across {len(p.rows)} account(s).</p>
<div class="table-wrap narrow"><table class="compact" id="mrr-by-band">
<caption class="sr-only">MRR by band</caption>
<thead><tr><th scope="col">Band</th><th scope="col" class="num">Accounts</th>
<th scope="col" class="num">MRR</th></tr></thead>
<tbody>{band_rows}</tbody></table></div>
</section>"""

    csm_opts = _options([("", "All CSMs"), *((c, c) for c in p.csms)], f.csm)
    band_opts = _options([("", "All bands"), *((b, BAND_LABELS[b]) for b in BANDS)], f.band)
    renewal_opts = _options(
        [("", "Any time"), *((str(d), f"Within {d} days") for d in RENEWAL_WINDOWS)],
        str(f.renewal_days) if f.renewal_days is not None else "",
    )
    sort_opts = _options(
        [
            ("score", "Score, lowest first"),
            ("-score", "Score, highest first"),
            ("trend", "Biggest drop first"),
            ("-mrr", "MRR, highest first"),
            ("renewal", "Renewal, soonest first"),
            ("name", "Name"),
        ],
        f.sort,
    )
    filters = f"""<form class="filters" method="get" action="/console/" role="search"
 aria-label="Filter accounts">
<div><label for="f-csm">CSM</label><select id="f-csm" name="csm">{csm_opts}</select></div>
<div><label for="f-band">Band</label><select id="f-band" name="band">{band_opts}</select></div>
<div><label for="f-renewal">Renewal</label>
<select id="f-renewal" name="renewal">{renewal_opts}</select></div>
<div><label for="f-sort">Sort by</label><select id="f-sort" name="sort">{sort_opts}</select></div>
<div class="actions"><button type="submit">Apply</button>
<a href="/console/">Reset</a></div>
</form>"""

    if p.rows:
        rows = "".join(_portfolio_row(r) for r in p.rows)
        table = f"""<div class="table-wrap"><table id="portfolio">
<caption class="sr-only">Accounts with their health (sorted as chosen above)</caption>
<thead><tr>
{_sort_header("Account", "name", f)}
{_sort_header("Score", "score", f, css="num")}
<th scope="col">Band</th>
{_sort_header("Trend (7 d)", "trend", f, css="num")}
<th scope="col">12 weeks</th>
{_sort_header("MRR", "mrr", f, css="num")}
<th scope="col" class="num">Seats used regularly</th>
{_sort_header("Renewal", "renewal", f)}
<th scope="col">CSM</th>
<th scope="col" class="num">Open alerts</th>
</tr></thead>
<tbody>{rows}</tbody></table></div>"""
    else:
        filtered = f.csm or f.band or f.renewal_days is not None
        table = (
            '<p class="empty">No accounts match these filters.</p>'
            if filtered
            else '<p class="empty">No accounts yet: they appear once events arrive '
            "(try <code>tend demo</code>).</p>"
        )
    body = f"""<h1>Portfolio</h1>
{summary}
<section aria-labelledby="accounts-title">
<h2 id="accounts-title">Accounts</h2>
{filters}
{table}
</section>"""
    return page("Portfolio", body, csrf=csrf, current="/console/")


# -- account -----------------------------------------------------------------------------------


def _inputs(inputs: Mapping[str, Any]) -> str:
    if not inputs:
        return DASH
    items = "".join(f"<li>{e(human(k))}: <b>{fmt_value(v)}</b></li>" for k, v in inputs.items())
    return f'<ul class="inputs">{items}</ul>'


def _components(latest_components: Mapping[str, Any], moved: Mapping[str, Any]) -> str:
    deltas: dict[str, Any] = {}
    for m in moved.get("components") or []:
        if isinstance(m, dict) and "name" in m:
            deltas[str(m["name"])] = m.get("delta")
    rows = []
    for name, c in latest_components.items():
        if not isinstance(c, dict):
            continue
        delta = deltas.get(name)
        delta_text = DASH if delta is None else f"{float(delta):+.1f}"
        share = c.get("share")
        rows.append(
            f'<tr data-component="{e(name)}"><th scope="row">{e(human(name))}</th>'
            f'<td class="num">{fmt_score(c.get("score"))}</td>'
            f'<td class="num">{fmt_value(c.get("weight"))}'
            f"{f' <span class=muted>({fmt_pct(share)})</span>' if share is not None else ''}</td>"
            f'<td class="num">{fmt_value(c.get("value"))}</td>'
            f"<td>{_inputs(c.get('inputs') or {})}</td>"
            f"<td>{e(c.get('explanation'))}</td>"
            f'<td class="num">{delta_text}</td></tr>'
        )
    if not rows:
        return '<p class="muted">No component had data.</p>'
    return f"""<div class="table-wrap"><table id="components">
<caption class="sr-only">Score components and the numbers behind them</caption>
<thead><tr><th scope="col">Component</th><th scope="col" class="num">Score</th>
<th scope="col" class="num">Weight (share)</th><th scope="col" class="num">Value</th>
<th scope="col">Numbers behind it</th><th scope="col">Why</th>
<th scope="col" class="num">Since last score</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table></div>"""


def _week_labels(as_of: date | None, n: int) -> list[str]:
    if as_of is None:
        return [f"week {i + 1}" for i in range(n)]
    return [(as_of - timedelta(days=7 * (n - 1 - i))).strftime("%b %d") for i in range(n)]


def _usage(metrics: Mapping[str, Any]) -> str:
    actives = [int(v) for v in metrics.get("weekly_active_users") or []]
    logins = [int(v) for v in metrics.get("weekly_logins") or []]
    if not actives and not logins:
        return '<p class="muted">No usage yet.</p>'
    raw_as_of = metrics.get("as_of")
    as_of = date.fromisoformat(raw_as_of[:10]) if isinstance(raw_as_of, str) else None
    labels = _week_labels(as_of, max(len(actives), len(logins)))
    rows = "".join(
        f'<tr><th scope="row">{e(lab)}</th>'
        f'<td class="num">{actives[i] if i < len(actives) else DASH}</td>'
        f'<td class="num">{logins[i] if i < len(logins) else DASH}</td></tr>'
        for i, lab in enumerate(labels)
    )
    return f"""<div class="charts">
{bar_chart("Weekly active users", actives, labels, "actives")}
{bar_chart("Weekly logins", logins, labels, "logins")}
</div>
<details><summary>The numbers, week by week</summary>
<div class="table-wrap narrow"><table id="weekly" class="compact">
<caption class="sr-only">Weekly active users and logins (weeks ending on the date)</caption>
<thead><tr><th scope="col">Week ending</th><th scope="col" class="num">Active users</th>
<th scope="col" class="num">Logins</th></tr></thead><tbody>{rows}</tbody></table></div>
</details>"""


def _features(metrics: Mapping[str, Any]) -> str:
    features = [f for f in metrics.get("features") or [] if isinstance(f, dict)]
    if not features:
        return '<p class="muted">No key features configured (TEND_CONFIG key_features).</p>'
    rows = []
    for f in features:
        uses = int(f.get("uses_28d") or 0)
        state = (
            '<span class="tag ok">in use</span>'
            if uses
            else '<span class="tag warn">never used</span>'
            if f.get("last_used") is None
            else '<span class="tag warn">unused 28 days</span>'
        )
        since = f.get("days_since_last_use")
        rows.append(
            f'<tr data-feature="{e(f.get("feature"))}"><th scope="row">{e(f.get("feature"))}</th>'
            f"<td>{fmt_date(f.get('last_used'))}"
            f"{f' <span class=muted>({since} d ago)</span>' if since is not None else ''}</td>"
            f'<td class="num">{uses:,}</td>'
            f'<td class="num">{int(f.get("users_28d") or 0):,}</td>'
            f"<td>{state}</td></tr>"
        )
    return f"""<div class="table-wrap"><table id="features">
<caption class="sr-only">Key feature adoption over the last 28 days</caption>
<thead><tr><th scope="col">Key feature</th><th scope="col">Last used</th>
<th scope="col" class="num">Uses (28 d)</th><th scope="col" class="num">Users (28 d)</th>
<th scope="col">Status</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>"""


def _alert_actions(a: Alert, csrf: str, back: str, now: datetime) -> str:
    can_ack = a.status in ("open", "snoozed")
    return _actions(f"/console/alerts/{a.id}", str(a.id), can_ack, csrf, back, now)


def _actions(base: str, uid: str, can_ack: bool, csrf: str, back: str, now: datetime) -> str:
    """Acknowledge / snooze / resolve forms posting to ``base``/{ack,snooze,resolve}."""
    hidden = f'{csrf_field(csrf)}<input type="hidden" name="next" value="{e(back)}">'
    parts = []
    if can_ack:
        parts.append(
            f'<form method="post" action="{base}/ack">{hidden}'
            f'<button type="submit">Acknowledge</button></form>'
        )
    default_until = (now + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M")
    minimum = now.strftime("%Y-%m-%dT%H:%M")
    parts.append(
        f'<form method="post" action="{base}/snooze" class="snooze">{hidden}'
        f'<label for="until-{uid}">Snooze until (UTC)</label>'
        f'<input id="until-{uid}" name="until" type="datetime-local" required '
        f'value="{default_until}" min="{minimum}">'
        f'<label for="reason-{uid}">Reason</label>'
        f'<input id="reason-{uid}" name="reason" type="text" maxlength="1000" '
        'placeholder="e.g. waiting for the QBR">'
        '<button type="submit" class="secondary">Snooze</button></form>'
    )
    parts.append(
        f'<form method="post" action="{base}/resolve">{hidden}'
        f'<button type="submit" class="secondary">Resolve</button></form>'
    )
    return f'<div class="alert-actions">{"".join(parts)}</div>'


def _status_line(a: Alert) -> str:
    bits = [f'<span class="status status-{e(a.status)}">{e(human(a.status))}</span>']
    if a.status == "acknowledged":
        bits.append(f"since {fmt_when(a.acknowledged_at)}")
    elif a.status == "snoozed":
        bits.append(f"until {fmt_when(a.snoozed_until)}")
        if a.snooze_reason:
            bits.append(f"({e(a.snooze_reason)})")
    elif a.status == "resolved":
        bits.append(f"{fmt_when(a.resolved_at)} ({e(a.resolved_by or 'condition')})")
    return " ".join(bits)


def alert_title(a: Alert) -> str:
    return human(a.rule) + (f": {a.feature}" if a.feature else "")


def _alert_card(a: Alert, csrf: str, back: str, now: datetime, *, actions: bool) -> str:
    return f"""<article class="alert sev-{e(a.severity)}" id="alert-{a.id}"
 data-alert-id="{a.id}" data-status="{e(a.status)}" aria-labelledby="alert-{a.id}-title">
<h3 id="alert-{a.id}-title">{e(alert_title(a))}
 <span class="sev">{e(a.severity)}</span></h3>
<p class="status-line">{_status_line(a)}{_began(a)} · opened {fmt_when(a.opened_at)}</p>
<p>{e(a.reason)}</p>
{f'<p class="next"><b>Next step:</b> {e(a.next_step)}</p>' if a.next_step else ""}
{_alert_actions(a, csrf, back, now) if actions else ""}
</article>"""


def _began(a: Alert) -> str:
    # The event-time day the problem began, which a backfill's wall-clock opening time is not.
    return f" · began {fmt_date(a.started_on)}" if a.started_on else ""


def _incident_card(alerts: Sequence[Alert], csrf: str, back: str, now: datetime) -> str:
    """An account's open alerts as one card: the rules inside, and with two or more,
    acknowledge / snooze / resolve for all of them at once."""
    first = alerts[0]
    began = min((a.started_on for a in alerts if a.started_on), default=None)
    group = ""
    if len(alerts) > 1:
        can_ack = any(a.status in ("open", "snoozed") for a in alerts)
        base = f"{account_href(first.account_id)}/alerts"
        group = '<p class="muted">All of them:</p>' + _actions(
            base, "all", can_ack, csrf, back, now
        )
    rules = "".join(_alert_card(a, csrf, back, now, actions=True) for a in alerts)
    count = f"{len(alerts)} open alert{'s' if len(alerts) != 1 else ''}"
    return f"""<section class="incident" id="incident" aria-labelledby="incident-title">
<h3 id="incident-title">{count} {band_badge(first.band)}</h3>
{f'<p class="status-line">Began {fmt_date(began)}</p>' if began else ""}
{group}
<div class="incident-rules">{rules}</div>
</section>"""


def _champion(m: Mapping[str, Any]) -> str:
    """Who the champion is, how we know, and when they were last active."""
    who = m.get("champion")
    if not who:
        return '<span class="muted">none yet</span>'
    how = "named" if m.get("champion_source") == "named" else "most regular user"
    days = m.get("champion_days_since_active")
    last = f", last active {e(days)} days ago" if isinstance(days, int) and days > 0 else ""
    return f'{e(who)} <span class="muted">({how}{last})</span>'


def account_page(
    p: AccountPage,
    *,
    csrf: str,
    now: datetime,
    today: date,
    green: float,
    yellow: float,
    notice: str | None,
) -> str:
    a = p.account
    m = p.metrics
    back = account_href(a.account_id)
    days_left = (a.renewal_date - today).days if a.renewal_date else None
    renewal = fmt_date(a.renewal_date) + (
        f" <span class=muted>(in {days_left} days)</span>"
        if days_left is not None and days_left >= 0
        else f" <span class=muted>({-days_left} days ago)</span>"
        if days_left is not None
        else ""
    )
    used = m.get("regular_users")
    seats_used = (
        f"{e(used)}/{a.seats} ({fmt_pct(m.get('seat_utilization'))})"
        f" <span class=muted>{e(m.get('mau'))} active in 28 days</span>"
        if a.seats and used is not None
        else e(a.seats)
    )
    facts = [
        ("Health score", f"{fmt_score(a.score)} {band_badge(a.band)}"),
        ("Scored as of", fmt_date(a.scored_as_of)),
        ("MRR", fmt_money(a.mrr)),
        ("Seats used regularly", seats_used),
        ("Champion", _champion(m)),
        ("Renewal", renewal),
        ("Plan", e(a.plan)),
        ("Lifecycle stage", e(a.lifecycle_stage)),
        ("CSM", e(csm_label(a.csm_email, a.csm_slack))),
    ]
    dl = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
    flash = f'<p class="notice" role="status">{e(NOTICES[notice])}</p>' if notice in NOTICES else ""
    latest = p.latest
    left_out = ""
    moved_text = ""
    components = '<p class="muted">Not scored yet.</p>'
    if latest is not None:
        components = _components(latest.components or {}, latest.moved or {})
        items = "".join(
            f"<li><b>{e(human(str(lo.get('name'))))}</b>: {e(lo.get('reason'))}</li>"
            for lo in latest.left_out or []
            if isinstance(lo, dict)
        )
        if items:
            left_out = (
                f'<h3>Left out (weight spread over the rest)</h3><ul class="left-out">{items}</ul>'
            )
        delta = (latest.moved or {}).get("score_delta")
        if delta is not None:
            moved_text = (
                f"<p>Since the previous score ({fmt_score(latest.previous_score)}, "
                f"{e(latest.previous_band)}): <b>{float(delta):+.1f}</b> points.</p>"
            )
    active = [x for x in p.alerts if x.status != "resolved"]
    past = [x for x in p.alerts if x.status == "resolved"]
    active_html = (
        _incident_card(active, csrf, back, now)
        if active
        else '<p class="empty">No open alerts.</p>'
    )
    past_html = (
        "".join(_alert_card(x, csrf, back, now, actions=False) for x in past)
        if past
        else '<p class="muted">None.</p>'
    )
    body = f"""<p class="crumbs"><a href="/console/">Portfolio</a> / {e(a.name or a.account_id)}</p>
<h1>{e(a.name or a.account_id)} <span class="sub">{e(a.account_id)}</span></h1>
{flash}
<dl class="facts">{dl}</dl>
<section aria-labelledby="history-title">
<h2 id="history-title">Health score history</h2>
{score_chart(p.history, green, yellow)}
</section>
<section aria-labelledby="why-title">
<h2 id="why-title">Why this score</h2>
{moved_text}
{components}
{left_out}
</section>
<section aria-labelledby="usage-title">
<h2 id="usage-title">Weekly actives and logins</h2>
{_usage(m)}
</section>
<section aria-labelledby="features-title">
<h2 id="features-title">Feature adoption</h2>
{_features(m)}
</section>
<section id="alerts" aria-labelledby="alerts-title">
<h2 id="alerts-title">Alerts</h2>
<h3 class="group">Open ({len(active)})</h3>
{active_html}
<h3 class="group">Past ({len(past)})</h3>
{past_html}
</section>"""
    return page(a.name or a.account_id, body, csrf=csrf)


# -- alerts ------------------------------------------------------------------------------------


def alerts_page(
    groups: Mapping[str, list[Alert]],
    health: Mapping[str, tuple[float | None, str | None]],
    csms: Sequence[str],
    csm: str | None,
    csrf: str,
) -> str:
    csm_opts = _options([("", "All CSMs"), *((c, c) for c in csms)], csm)
    form = f"""<form class="filters" method="get" action="/console/alerts" role="search"
 aria-label="Filter alerts">
<div><label for="a-csm">CSM</label><select id="a-csm" name="csm">{csm_opts}</select></div>
<div class="actions"><button type="submit">Apply</button>
<a href="/console/alerts">Reset</a></div></form>"""
    total = sum(len(v) for v in groups.values())
    sections = []
    for rule, alerts in groups.items():
        rows = "".join(
            f'<tr data-alert-id="{a.id}"><th scope="row"><a href="{account_href(a.account_id)}'
            f'#alert-{a.id}">{e(a.account_name or a.account_id)}</a>'
            f"{f'<span class=sub>{e(a.feature)}</span>' if a.feature else ''}</th>"
            f'<td><span class="sev">{e(a.severity)}</span></td>'
            f'<td><span class="status status-{e(a.status)}">{e(human(a.status))}</span></td>'
            f"<td>{band_badge(health.get(a.account_id, (a.score, a.band))[1])} "
            f"{fmt_score(health.get(a.account_id, (a.score, a.band))[0])}</td>"
            f'<td class="num">{fmt_money(a.mrr)}</td>'
            f"<td>{e(a.reason)}</td>"
            f"<td>{fmt_when(a.opened_at)}</td>"
            f"<td>{e(csm_label(a.csm_email, a.csm_slack))}</td></tr>"
            for a in alerts
        )
        rid = f"rule-{e(rule)}"
        sections.append(f"""<section aria-labelledby="{rid}">
<h2 id="{rid}">{e(human(rule))} <span class="count-badge">{len(alerts)}</span></h2>
<div class="table-wrap"><table class="alerts" data-rule="{e(rule)}">
<caption class="sr-only">Open {e(human(rule))} alerts</caption>
<thead><tr><th scope="col">Account</th><th scope="col">Severity</th><th scope="col">Status</th>
<th scope="col">Health</th><th scope="col" class="num">MRR</th><th scope="col">Why</th>
<th scope="col">Opened</th><th scope="col">CSM</th></tr></thead>
<tbody>{rows}</tbody></table></div></section>""")
    listing = "".join(sections) or '<p class="empty">No open alerts. Nice.</p>'
    body = f"""<h1>Open alerts <span class="count-badge">{total}</span></h1>
{form}
{listing}"""
    return page("Alerts", body, csrf=csrf, current="/console/alerts")

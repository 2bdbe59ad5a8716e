"""The monthly value report of one account: the proof a customer's champion shows their CFO.

What it says, for one calendar month (UTC days) and compared with the month before: active users
and seat utilization, logins and activity, each key feature's uses and users (and the other
features used), the health trend (the daily scores), and a few plain sentences on what changed.

Three parts: :func:`build_report` reads the rollups and scores (queries only, no commit) into a
:class:`MonthlyReport`; :func:`render_html` turns it into a printable page (no assets, no
network: a print stylesheet and an inline SVG chart; every value is escaped);
:func:`report_email` and :func:`send_reports` deliver it to the account's CSM (``tend report
--email``).

Seat utilization uses the account's current seats: traits have no history.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from importlib import resources
from string import Template
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Account, AccountDay, FeatureDay, FeatureUserDay, HealthScore, UserDay
from shared.settings import Settings

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class MonthError(ValueError):
    """A ``month`` that is not YYYY-MM, or has not started yet; the message names the field."""


def parse_month(text: str, today: date) -> date:
    """The first day of ``YYYY-MM``; refuses months that have not started by ``today``."""
    m = _MONTH.match(text.strip())
    if m is None or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1970:
        raise MonthError(f"month: {text[:20]!r} is not a month (YYYY-MM, e.g. 2026-10)")
    first = date(int(m.group(1)), int(m.group(2)), 1)
    if first > today:
        raise MonthError(f"month: {text} has not started yet")
    return first


def last_month(today: date) -> date:
    """The first day of the month before ``today``'s: the last complete month."""
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)


def month_end(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def month_label(first: date) -> str:
    return first.strftime("%B %Y")


# -- the model ----------------------------------------------------------------------------------


class Delta(BaseModel):
    """A number this month and the month before."""

    value: float | None
    previous: float | None
    change: float | None = Field(description="value - previous; None when either is missing.")
    change_pct: float | None = Field(description="Relative change in percent; None from zero.")

    @classmethod
    def of(cls, value: float | None, previous: float | None, digits: int = 3) -> Delta:
        change = pct = None
        if value is not None and previous is not None:
            change = round(value - previous, digits)
            pct = round(100.0 * (value - previous) / previous, 1) if previous else None
        return cls(
            value=None if value is None else round(value, digits),
            previous=None if previous is None else round(previous, digits),
            change=change,
            change_pct=pct,
        )


FeatureStatus = Literal["adopted", "new", "dropped", "growing", "shrinking", "steady", "unused"]


class FeatureAdoption(BaseModel):
    feature: str
    key: bool = Field(description="One of the configured key features.")
    uses: int
    users: int = Field(description="Distinct users of the feature in the month.")
    previous_uses: int
    previous_users: int
    status: FeatureStatus = Field(
        description="new (first used this month after none last month), dropped (none this month "
        "after some), growing / shrinking (uses +-10% or more), steady, unused (neither month)."
    )


class HealthPoint(BaseModel):
    as_of: date
    score: float | None
    band: str


class HealthTrend(BaseModel):
    start: HealthPoint | None = Field(description="The first score of the month.")
    end: HealthPoint | None = Field(description="The last score of the month.")
    previous_month_end: HealthPoint | None
    change: float | None = Field(description="end - previous_month_end (else end - start).")
    low: float | None
    high: float | None
    days_by_band: dict[str, int]
    history: list[HealthPoint]


class ReportAccount(BaseModel):
    account_id: str
    name: str | None
    plan: str | None
    seats: int | None
    mrr: float | None
    renewal_date: date | None
    csm_email: str | None
    csm_name: str | None


class MonthlyReport(BaseModel):
    account: ReportAccount
    month: str = Field(description="YYYY-MM")
    period_start: date
    period_end: date = Field(description="The month's last day, or today while it runs.")
    complete: bool = Field(description="False while the month is still running.")
    previous_month: str
    active_users: Delta = Field(description="Distinct users active in the month.")
    seat_utilization: Delta = Field(description="Active users / seats (current seats).")
    logins: Delta
    events: Delta
    active_days: Delta = Field(description="Days with any activity.")
    mean_daily_active_users: Delta
    key_features_used: Delta
    key_features_total: int
    features: list[FeatureAdoption]
    health: HealthTrend
    highlights: list[str] = Field(description="What changed from the month before, in words.")


# -- queries ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Month:
    events: int = 0
    logins: int = 0
    active_days: int = 0
    active_user_days: int = 0
    users: int = 0
    days: int = 1


async def _usage(session: AsyncSession, account_id: str, start: date, end: date) -> _Month:
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(AccountDay.events), 0),
                func.coalesce(func.sum(AccountDay.logins), 0),
                func.count().filter(AccountDay.active_users > 0),
                func.coalesce(func.sum(AccountDay.active_users), 0),
            ).where(AccountDay.account_id == account_id, AccountDay.day.between(start, end))
        )
    ).one()
    users = await session.scalar(
        select(func.count(distinct(UserDay.user_id))).where(
            UserDay.account_id == account_id, UserDay.day.between(start, end)
        )
    )
    return _Month(
        events=int(row[0]),
        logins=int(row[1]),
        active_days=int(row[2]),
        active_user_days=int(row[3]),
        users=int(users or 0),
        days=(end - start).days + 1,
    )


async def _features(
    session: AsyncSession, account_id: str, start: date, end: date
) -> dict[str, tuple[int, int]]:
    """feature -> (uses, distinct users) in the period."""
    uses: dict[str, int] = dict(
        (
            await session.execute(
                select(FeatureDay.feature, func.sum(FeatureDay.uses))
                .where(FeatureDay.account_id == account_id, FeatureDay.day.between(start, end))
                .group_by(FeatureDay.feature)
            )
        ).all()
    )
    users: dict[str, int] = dict(
        (
            await session.execute(
                select(FeatureUserDay.feature, func.count(distinct(FeatureUserDay.user_id)))
                .where(
                    FeatureUserDay.account_id == account_id,
                    FeatureUserDay.day.between(start, end),
                )
                .group_by(FeatureUserDay.feature)
            )
        ).all()
    )
    return {f: (int(n or 0), int(users.get(f, 0))) for f, n in uses.items()}


async def scored_key_features(session: AsyncSession, account_id: str) -> list[str]:
    """The key features of the account's latest score: what the scorer was configured with,
    for callers that have no configuration of their own."""
    metrics = await session.scalar(
        select(HealthScore.metrics)
        .where(HealthScore.account_id == account_id)
        .order_by(HealthScore.as_of.desc())
        .limit(1)
    )
    features = (metrics or {}).get("features") or []
    return [f["feature"] for f in features if isinstance(f, dict) and "feature" in f]


def _status(uses: int, previous: int) -> FeatureStatus:
    if uses == 0:
        return "dropped" if previous else "unused"
    if previous == 0:
        return "new"
    if uses >= previous * 1.1:
        return "growing"
    if uses <= previous * 0.9:
        return "shrinking"
    return "steady"


def _point(h: HealthScore) -> HealthPoint:
    return HealthPoint(as_of=h.as_of, score=h.score, band=h.band)


async def build_report(
    session: AsyncSession,
    account: Account,
    first: date,
    today: date,
    key_features: Sequence[str] | None = None,
) -> MonthlyReport:
    """The report of ``account`` for the month starting ``first``. ``key_features`` None: those
    of the account's latest score (:func:`scored_key_features`)."""
    aid = account.account_id
    end = min(month_end(first), today)
    prev_first = last_month(first)
    prev_end = month_end(prev_first)
    keys = (
        list(dict.fromkeys(key_features))
        if key_features is not None
        else await scored_key_features(session, aid)
    )

    now, before = (
        await _usage(session, aid, first, end),
        await _usage(session, aid, prev_first, prev_end),
    )
    f_now = await _features(session, aid, first, end)
    f_before = await _features(session, aid, prev_first, prev_end)
    others = sorted((f_now.keys() | f_before.keys()) - set(keys))
    features = []
    for name in [*keys, *others]:
        uses, users = f_now.get(name, (0, 0))
        p_uses, p_users = f_before.get(name, (0, 0))
        features.append(
            FeatureAdoption(
                feature=name,
                key=name in keys,
                uses=uses,
                users=users,
                previous_uses=p_uses,
                previous_users=p_users,
                status=_status(uses, p_uses),
            )
        )
    key_used = sum(1 for f in features if f.key and f.uses)
    key_used_before = sum(1 for f in features if f.key and f.previous_uses)

    scores = (
        await session.scalars(
            select(HealthScore)
            .where(HealthScore.account_id == aid, HealthScore.as_of.between(prev_first, end))
            .order_by(HealthScore.as_of)
        )
    ).all()
    history = [_point(h) for h in scores if h.as_of >= first]
    previous_end = next((_point(h) for h in reversed(scores) if h.as_of < first), None)
    start_p = history[0] if history else None
    end_p = history[-1] if history else None
    base = previous_end or start_p
    values = [p.score for p in history if p.score is not None]
    by_band: dict[str, int] = {}
    for p in history:
        by_band[p.band] = by_band.get(p.band, 0) + 1
    health = HealthTrend(
        start=start_p,
        end=end_p,
        previous_month_end=previous_end,
        change=(
            round(end_p.score - base.score, 1)
            if end_p and base and end_p.score is not None and base.score is not None
            else None
        ),
        low=min(values) if values else None,
        high=max(values) if values else None,
        days_by_band=by_band,
        history=history,
    )

    seats = account.seats if account.seats and account.seats > 0 else None
    traits = account.traits or {}
    csm_name = traits.get("csm_name")
    report = MonthlyReport(
        account=ReportAccount(
            account_id=aid,
            name=account.name,
            plan=account.plan,
            seats=account.seats,
            mrr=account.mrr,
            renewal_date=account.renewal_date,
            csm_email=account.csm_email,
            csm_name=csm_name if isinstance(csm_name, str) else None,
        ),
        month=first.strftime("%Y-%m"),
        period_start=first,
        period_end=end,
        complete=month_end(first) < today,
        previous_month=prev_first.strftime("%Y-%m"),
        active_users=Delta.of(now.users, before.users),
        seat_utilization=Delta.of(
            now.users / seats if seats else None, before.users / seats if seats else None
        ),
        logins=Delta.of(now.logins, before.logins),
        events=Delta.of(now.events, before.events),
        active_days=Delta.of(now.active_days, before.active_days),
        mean_daily_active_users=Delta.of(
            now.active_user_days / now.days, before.active_user_days / before.days, 1
        ),
        key_features_used=Delta.of(key_used, key_used_before),
        key_features_total=len(keys),
        features=features,
        health=health,
        highlights=[],
    )
    report.highlights = highlights(report)
    return report


def _signed(n: float, unit: str = "") -> str:
    return f"{'+' if n > 0 else ''}{n:,.0f}{unit}"


def highlights(r: MonthlyReport) -> list[str]:
    """What changed from the month before, as short sentences (most telling first)."""
    prev = month_label(date.fromisoformat(r.previous_month + "-01"))
    out = []
    au = r.active_users
    if au.value is not None:
        seats = r.account.seats
        util = f" of {seats} seats ({r.seat_utilization.value:.0%})" if seats else ""
        if au.change:
            out.append(f"{au.value:,.0f} active users{util}, {_signed(au.change)} from {prev}.")
        else:
            out.append(f"{au.value:,.0f} active users{util}, as in {prev}.")
    lg = r.logins
    if lg.value is not None and lg.change_pct is not None and lg.change:
        word = "up" if lg.change > 0 else "down"
        out.append(f"{lg.value:,.0f} logins, {word} {abs(lg.change_pct):.0f}% from {prev}.")
    elif lg.value is not None:
        out.append(f"{lg.value:,.0f} logins.")
    new = [f.feature for f in r.features if f.key and f.status == "new"]
    dropped = [f.feature for f in r.features if f.key and f.status == "dropped"]
    unused = [f.feature for f in r.features if f.key and f.status == "unused"]
    if new:
        out.append(f"Started using {', '.join(new)}.")
    if dropped:
        out.append(f"Stopped using {', '.join(dropped)} (used in {prev}).")
    if unused:
        out.append(f"Not adopted yet: {', '.join(unused)}.")
    if r.key_features_total:
        out.append(
            f"{r.key_features_used.value:.0f} of {r.key_features_total} key features in use."
        )
    h = r.health
    if h.end is not None and h.end.score is not None:
        base = h.previous_month_end or h.start
        if base is not None and base.score is not None and base.as_of != h.end.as_of:
            out.append(
                f"Health {h.end.score:.0f} ({h.end.band}) on {h.end.as_of:%b %-d}, from "
                f"{base.score:.0f} ({base.band}) on {base.as_of:%b %-d}."
            )
        else:
            out.append(f"Health {h.end.score:.0f} ({h.end.band}) on {h.end.as_of:%b %-d}.")
    return out


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
    text = resources.files("services.scorer").joinpath("templates/report.html").read_text("utf-8")
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


# -- email --------------------------------------------------------------------------------------


def report_text(r: MonthlyReport) -> str:
    a = r.account
    lines = [f"{a.name or a.account_id}: monthly value report, {month_label(r.period_start)}", ""]
    lines += [f"- {s}" for s in r.highlights]
    lines += ["", "The full report is attached as HTML (print it or save it as PDF)."]
    return "\n".join(lines) + "\n"


def report_email(r: MonthlyReport, page: str, sender: str, to: Sequence[str]) -> EmailMessage:
    """A text summary and the HTML page as the alternative, and the page again as an
    attachment the CSM can forward to the customer."""
    a = r.account
    msg = EmailMessage()
    msg["Subject"] = (
        f"Monthly value report: {a.name or a.account_id}, {month_label(r.period_start)}"
    )
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid("tend-report")
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(report_text(r))
    msg.add_alternative(page, subtype="html")
    msg.add_attachment(
        page.encode("utf-8"),
        maintype="text",
        subtype="html",
        filename=report_filename(r, unique=False),
    )
    return msg


def report_filename(r: MonthlyReport, *, unique: bool = True) -> str:
    """``<readable slug>-<hash of the account id>-<month>.html``. Ids that slugify alike
    (``acme/eu`` and ``acme eu``, or ones differing only in case on a case-insensitive disk)
    still get their own files: the hash is of the exact id. ``unique=False`` leaves the hash
    out, for a mail's single attachment."""
    account_id = r.account.account_id
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", account_id).strip("-.")[:80] or "account"
    if not unique:
        return f"{slug}-{r.month}.html"
    digest = hashlib.sha256(account_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{slug}-{digest}-{r.month}.html"


class SmtpNotConfigured(Exception):
    """``--email`` without ``TEND_SMTP_HOST``."""


async def send_reports(
    settings: Settings, messages: Sequence[EmailMessage]
) -> list[tuple[EmailMessage, str | None]]:
    """Send over one SMTP connection (``TEND_SMTP_*``); each message with ``None`` when the
    server accepted it, else the error. A message refused stays refused (no retry): the command
    prints which, and can be run again for those accounts."""
    import aiosmtplib

    if not settings.smtp_host:
        raise SmtpNotConfigured(
            "--email needs an SMTP server: set TEND_SMTP_HOST (and TEND_SMTP_PORT, "
            "TEND_SMTP_USER, TEND_SMTP_PASSWORD, TEND_SMTP_FROM, TEND_SMTP_TLS as needed)"
        )
    smtp = aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        use_tls=settings.smtp_tls == "tls",
        start_tls=settings.smtp_tls == "starttls",
        timeout=30,
    )
    results: list[tuple[EmailMessage, str | None]] = []
    await smtp.connect()
    try:
        if settings.smtp_user:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            await smtp.login(settings.smtp_user, password)
        for msg in messages:
            try:
                await smtp.send_message(msg)
                results.append((msg, None))
            except aiosmtplib.SMTPResponseException as err:
                results.append((msg, f"{err.code} {err.message}"))
            except aiosmtplib.SMTPRecipientsRefused as err:
                results.append((msg, "; ".join(f"{r.code} {r.message}" for r in err.recipients)))
    finally:
        try:
            await smtp.quit()
        except aiosmtplib.SMTPException:
            smtp.close()
    return results

"""The report's brief: what changed from the month before, in a few plain sentences the
customer reads (features by their catalog labels, time saved in minutes or hours).

A month without any activity says so, and claims no feature "in use".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared import format as fmt

if TYPE_CHECKING:
    from services.web.reports.build import FeatureAdoption, MonthlyReport


def _names(features: list[FeatureAdoption]) -> str:
    return ", ".join(f.label for f in features)


def _users(r: MonthlyReport, prev: str) -> str | None:
    au = r.active_users
    if au.value is None:
        return None
    seats = r.account.seats
    users = fmt.plural(round(au.value), "active user")
    if seats:
        users += f" of {fmt.plural(seats, 'seat')} ({fmt.percent(r.seat_utilization.value)})"
    if au.change:
        return f"{users}, {fmt.signed(au.change)} from {prev}."
    return f"{users}, as in {prev}."


def _logins(r: MonthlyReport, prev: str) -> str | None:
    lg = r.logins
    if lg.value is None:
        return None
    logins = fmt.plural(round(lg.value), "login")
    if lg.change_pct is not None and lg.change:
        word = "up" if lg.change > 0 else "down"
        return f"{logins}, {word} {fmt.number(abs(lg.change_pct))}% from {prev}."
    return f"{logins}."


def _time_saved(r: MonthlyReport) -> str | None:
    saved = r.minutes_saved
    if not saved.value:
        return None
    which = [f for f in r.features if f.minutes_saved]
    text = f"About {fmt.duration_minutes(saved.value)} saved with {_names(which)}"
    if saved.previous:
        return f"{text} ({fmt.duration_minutes(saved.previous)} the month before)."
    return f"{text}."


def _health(r: MonthlyReport) -> str | None:
    h = r.health
    if h.end is None or h.end.score is None:
        return None
    now = f"Health {fmt.score_band(h.end.score, h.end.band)} on {fmt.short_day(h.end.as_of)}"
    base = h.previous_month_end or h.start
    if base is not None and base.score is not None and base.as_of != h.end.as_of:
        before = f"{fmt.score_band(base.score, base.band)} on {fmt.short_day(base.as_of)}"
        return f"{now}, from {before}."
    return f"{now}."


def highlights(r: MonthlyReport) -> list[str]:
    """What changed from the month before, as short sentences (most telling first)."""
    prev = fmt.month(r.previous_month)
    this = fmt.month(r.period_start)
    keys = [f for f in r.features if f.key]
    dropped = [f for f in keys if f.status == "dropped"]
    out: list[str | None] = []
    if r.silent:
        out.append(f"No activity in {this}" + (" so far." if not r.complete else "."))
        if dropped:
            out.append(f"Used in {prev}, not since: {_names(dropped)}.")
        out.append(_health(r))
        return [line for line in out if line]
    out += [_users(r, prev), _logins(r, prev), _time_saved(r)]
    new = [f for f in keys if f.status == "new"]
    unused = [f for f in keys if f.status == "unused"]
    if new:
        out.append(f"Started using {_names(new)}.")
    if dropped:
        out.append(f"Stopped using {_names(dropped)} (used in {prev}).")
    if unused:
        out.append(f"Not adopted yet: {_names(unused)}.")
    if r.key_features_total:
        used = fmt.count(r.key_features_used.value)
        out.append(f"{used} of {r.key_features_total} key features used in {this}.")
    out.append(_health(r))
    return [line for line in out if line]

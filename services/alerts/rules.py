"""The alert rules: pure functions over one account's score snapshot (and a little history).

Each rule looks at a :class:`~shared.scores.ScoreMessage` and returns zero or more
:class:`Finding` objects, one per (rule, feature) it could judge, saying whether its condition
*holds* today, with the reason in numbers and a suggested next step. A rule that lacks the data
to judge (unknown seats, no trend yet, no history) returns nothing rather than a finding that
does not hold, so missing data never fires an alert and never resolves one either.

:func:`evaluate` runs every enabled rule; the caller feeds each finding to
:func:`shared.alerting.lifecycle.transition`, which counts consecutive holds and clears.
No I/O and no clock here: "today" is the snapshot's ``as_of``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta
from functools import lru_cache, partial
from statistics import median
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.alert_rules import (
    ChampionLost,
    Dormant,
    FeatureUnused,
    HealthDrop,
    HealthRed,
    LoginDecline,
    LoginPlateau,
    LowSeatUtilization,
    RenewalRisk,
    RuleName,
    RulesConfig,
    RuleSettings,
    Severity,
    UpsellSeats,
    WeeklySeries,
)
from shared.construct import built
from shared.format import words
from shared.scores import Band, FeatureUsage, Scorecard, ScoreMessage
from shared.weekly_stats import binomial_variance, fit_line, robust_variance

__all__ = [
    "READS_OTHER_DAYS",
    "RULES",
    "Finding",
    "ScoreHistory",
    "ScorePoint",
    "evaluate",
    "judge_again",
    "worst_move",
]

FactValue = str | int | float | bool | None | list[int]

# Thresholds are compared with a little slack so that "exactly at 70%" is at 70%, whatever the
# binary rounding of 0.7 * mean.
_EPS = 1e-9


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Finding(_Frozen):
    """One rule's verdict on one snapshot (for one feature, for ``feature_unused``)."""

    rule: RuleName
    feature: str = Field("", description="The key feature; empty for account-wide rules.")
    as_of: date
    holds: bool
    severity: Severity
    reason: str = Field(description="What was measured, in numbers.")
    next_step: str = Field(description="What the CSM could do about it.")
    facts: dict[str, FactValue] = Field(default_factory=dict)

    @property
    def key(self) -> tuple[RuleName, str]:
        return (self.rule, self.feature)


class ScorePoint(_Frozen):
    as_of: date
    score: float | None
    band: Band
    scorecard: Scorecard = "health"

    @classmethod
    def of(cls, message: ScoreMessage) -> ScorePoint:
        return cls(
            as_of=message.as_of,
            score=message.score,
            band=message.band,
            scorecard=message.scorecard,
        )


class ScoreHistory(_Frozen):
    """An account's earlier scores (the caller passes at least the last ``within_days``).

    Points on or after the snapshot's ``as_of`` are ignored, so passing the snapshot itself, or a
    history read after it was stored, is harmless.
    """

    points: tuple[ScorePoint, ...] = ()

    @classmethod
    def of(cls, messages: Iterable[ScoreMessage]) -> ScoreHistory:
        return cls(points=tuple(ScorePoint.of(m) for m in messages))

    def between(self, first: date, before: date) -> list[ScorePoint]:
        return sorted((p for p in self.points if first <= p.as_of < before), key=lambda p: p.as_of)


# -- formatting ----------------------------------------------------------------------------------


def _num(x: float) -> str:
    """1 decimal at most, no trailing ``.0``."""
    r = round(x, 1)
    return str(int(r)) if r == int(r) else f"{r:.1f}"


def _pct(ratio: float) -> str:
    return f"{_num(100 * ratio)}%"


def _signed_pct(ratio: float) -> str:
    return ("+" if ratio >= 0 else "") + _pct(ratio)


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def _ago(n: int) -> str:
    return "today" if n == 0 else f"{_days(n)} ago"


def _seats(n: int) -> str:
    return "1 seat" if n == 1 else f"{n} seats"


def _is(n: int) -> str:
    return "is" if n == 1 else "are"


def _champion(s: ScoreMessage) -> str:
    return s.metrics.champion or s.metrics.top_user or "the champion"


# -- shared reads --------------------------------------------------------------------------------


def _seat_count(s: ScoreMessage) -> int | None:
    seats = s.metrics.seats if s.metrics.seats is not None else s.seats
    return seats if seats is not None and seats > 0 else None


def _lived_weeks(s: ScoreMessage, series: Sequence[int]) -> int:
    """Whole weeks of the account's life in the series (earlier weeks are padding, not zeros)."""
    age = s.metrics.account_age_days
    if age is None or age < 0:
        return 0
    return min(len(series), (age + 1) // 7)


def _series(s: ScoreMessage, which: WeeklySeries) -> tuple[int, ...]:
    return (
        s.metrics.weekly_active_users if which == "weekly_active_users" else s.metrics.weekly_logins
    )


def _relative_slope(s: ScoreMessage, which: WeeklySeries) -> float | None:
    m = s.metrics
    return m.trend_relative_slope if which == "weekly_active_users" else m.logins_relative_slope


def _label(which: WeeklySeries) -> str:
    return "weekly actives" if which == "weekly_active_users" else "weekly logins"


def _after_onboarding(s: ScoreMessage) -> bool:
    return s.scorecard == "health"


Explained = tuple[str, str, dict[str, FactValue]]
"""A finding's reason, next step and facts."""


def _finding(
    s: ScoreMessage | ScorePoint,
    rule: RuleName,
    cfg: RuleSettings,
    *,
    holds: bool,
    explain: bool,
    text: Callable[[], Explained],
    feature: str = "",
) -> Finding:
    """``text()`` gives the reason, next step and facts; it is called only when ``explain``
    (without it the finding carries only its verdict: what a backtest reads)."""
    if not explain:
        return _verdict(rule, feature, s.as_of, holds, cfg.severity)
    reason, next_step, facts = text()
    # Built, not validated: every field is computed here from a validated snapshot and
    # config, with the declared types (tests/alerts/test_rules.py validates each finding it
    # sees and compares), and validation was a fifth of the rules' time in a backtest.
    return built(
        Finding,
        {
            "rule": rule,
            "feature": feature,
            "as_of": s.as_of,
            "holds": holds,
            "severity": cfg.severity,
            "reason": reason,
            "next_step": next_step,
            "facts": facts,
        },
    )


@lru_cache(maxsize=1024)
def _verdict(rule: RuleName, feature: str, as_of: date, holds: bool, severity: Severity) -> Finding:
    """A finding without its text. A backtest asks for the same few verdicts of one day for
    every account of a chunk (it replays them day by day), so one frozen instance each is
    shared: building a model cost more than most rules (its ``facts`` is empty, and stays so)."""
    return built(
        Finding,
        {
            "rule": rule,
            "feature": feature,
            "as_of": as_of,
            "holds": holds,
            "severity": severity,
            "reason": "",
            "next_step": "",
            "facts": {},
        },
    )


# -- the rules -----------------------------------------------------------------------------------


def _noise_variance(
    s: ScoreMessage, level: float, which: WeeklySeries, weeks: Sequence[int]
) -> float:
    """Week-to-week variance of a steady series at ``level``. Weekly actives: binomial in the
    users in play (those seen in 28 days, or the most active in any of ``weeks``), each active
    in a week or not; seats nobody uses add no noise. Logins: Poisson."""
    # At least one user's worth: in a 5-seat account one person's holiday is a 20% week, and
    # the binomial of people who nearly always come would call that rare.
    if which == "weekly_active_users":
        return max(1.0, binomial_variance(level, max(s.metrics.mau, *weeks, 1)))
    return max(1.0, binomial_variance(level, None))


def login_plateau(
    s: ScoreMessage, history: ScoreHistory | None, cfg: LoginPlateau, explain: bool = True
) -> list[Finding]:
    """Weekly actives flat over the last ``weeks`` whole weeks (a younger account: the weeks it
    lived, at least ``min_weeks``) while the regular users leave room to grow (see
    :class:`~shared.alert_rules.LoginPlateau`).

    Flat: the slope is within ±``relative_slope`` of the level a week, or within ``sigmas``
    standard errors of 0 (the noise of a small account hides a slow trend either way). Room:
    regular users clearly (by ``sigmas`` binomial standard deviations) under
    ``seat_utilization_below`` of the seats. Under ``min_weeks`` lived, no activity, unknown seats
    or no regular users measured: not evaluable.
    """
    m = s.metrics
    seats = _seat_count(s)
    series = _series(s, cfg.series)
    weeks = min(cfg.weeks, _lived_weeks(s, series))
    if seats is None or m.regular_users is None or weeks < cfg.min_weeks:
        return []
    window = list(series[-weeks:])
    regular = m.regular_users
    share = regular / seats
    seat_sd = math.sqrt(binomial_variance(regular, seats))
    room = (
        share < cfg.seat_utilization_below - _EPS
        and cfg.seat_utilization_below * seats - regular >= cfg.sigmas * seat_sd - _EPS
    )
    if not room and not explain:
        # Without room the verdict is "does not hold" whatever the line: only whether it can
        # be judged is left (fit_line's conditions: 2 weeks or more, their mean above 0).
        if len(window) < 2 or sum(window) / len(window) <= 0:
            return []
        return [_verdict("login_plateau", "", s.as_of, False, cfg.severity)]
    fit = fit_line(window)
    if fit is None or fit.level <= 0:
        return []
    noise = _noise_variance(s, fit.level, cfg.series, window)
    standard_error = math.sqrt(max(noise, fit.residual_variance) / fit.sxx)
    band = max(cfg.relative_slope * fit.level, cfg.sigmas * standard_error)
    flat = abs(fit.slope) <= band + _EPS

    def text() -> Explained:
        relative = fit.slope / fit.level
        idle = max(0, seats - regular)
        reason = (
            f"{_label(cfg.series)} {', '.join(map(str, window))} over {weeks} weeks "
            f"(trend {_signed_pct(relative)} a week; flat within ±{_num(band)} a week, the larger "
            f"of {_pct(cfg.relative_slope)} of the level and {_num(cfg.sigmas)} standard errors); "
            f"{regular} of {seats} seats used regularly ({_pct(share)}; {m.mau} active in 28 "
            f"days), room to grow below {_pct(cfg.seat_utilization_below)}"
        )
        step = (
            f"Book a usage review with {_champion(s)}; {_seats(idle)} {_is(idle)} not "
            "used regularly."
        )
        facts: dict[str, FactValue] = {
            "series": window,
            "relative_slope": round(relative, 4),
            "flat_band": round(band, 3),
            "weeks": weeks,
            "regular_users": regular,
            "mau": m.mau,
            "seats": seats,
            "seat_utilization": round(share, 4),
        }
        return reason, step, facts

    return [_finding(s, "login_plateau", cfg, holds=flat and room, explain=explain, text=text)]


DAILY_WINDOW = 35
"""Days of daily actives the daily view needs (the score carries 35)."""
_DAILY_BASELINE_FROM = 14
"""The daily view's baseline: the days from this many days back to the start of the series."""


def _daily_decline(
    s: ScoreMessage, cfg: LoginDecline, explain: bool
) -> tuple[bool, str, dict[str, FactValue]] | None:
    """The daily view of a decline (``cfg.daily``): daily actives against the same weekdays of
    the baseline days (14 to 34 days back). The last 7 days at most ``ratio`` of what the
    baseline expects, the 7 before them at most ``earlier_ratio``, the 14 days together ``sigmas``
    standard deviations (Poisson, with the baseline's own error) below it, and the last
    ``recent_days`` not recovering: no higher a share than the last 7 days (``recovery_margin``)
    and at most ``ratio``. A one-week dip that has ended is recovering; one still under way has a
    week before it at the baseline; a decline has neither. None when it cannot judge; the text
    and facts are empty unless ``explain``."""
    n = len(s.metrics.daily_active_users)
    age = s.metrics.account_age_days
    if n < DAILY_WINDOW or (age is not None and age + 1 < DAILY_WINDOW):
        return None
    # back[i]: the day i days back.
    back = s.metrics.daily_active_users[::-1]

    # The baseline of day i (i days back) depends only on its weekday, i % 7: the mean of the
    # baseline days j >= 14 with (j - i) % 7 == 0 (14 is a whole number of weeks, so they start
    # at 14 + i % 7), and how many there are. Computed once per weekday.
    same = [back[_DAILY_BASELINE_FROM + r :: 7] for r in range(7)]
    by_weekday = [sum(days) / len(days) for days in same]
    counts = [len(days) for days in same]
    # Day i's baseline and sample count, for every day a window below reaches (summed in the
    # same order as day by day, so the same floats).
    reach = range(max(14, cfg.recent_days))
    expected = [by_weekday[i % 7] for i in reach]
    samples_of = [counts[i % 7] for i in reach]

    def window(first: int, stop: int) -> tuple[float, float, float]:
        seen = float(sum(back[first:stop]))
        exp = sum(expected[first:stop])
        samples = min(samples_of[first:stop])
        return seen, exp, exp * (1 + 1 / samples)

    last, last_exp, _ = window(0, 7)
    if not explain and (last_exp <= 0 or last / last_exp > cfg.ratio + _EPS):
        # The last 7 days are not low enough: it cannot hold (not judged, or judged not to
        # hold: the same verdict to login_decline, which reads only whether it holds).
        return None
    before, before_exp, before_var = window(7, 14)
    both, both_exp, both_var = window(0, 14)
    recent, recent_exp, _ = window(0, cfg.recent_days)
    if last_exp <= 0 or before_exp <= 0 or recent_exp <= 0:
        return None
    last_share, before_share = last / last_exp, before / before_exp
    recent_share = recent / recent_exp
    limit = both_exp - cfg.sigmas * math.sqrt(max(both_var, 0.25))
    before_limit = before_exp - cfg.earlier_sigmas * math.sqrt(max(before_var, 0.25))
    holds = (
        last_share <= cfg.ratio + _EPS
        and last_share <= before_share + cfg.recovery_margin + _EPS
        and before_share <= cfg.earlier_ratio + _EPS
        and before <= before_limit + _EPS
        and 1 - before_share >= cfg.earlier_drop_share * (1 - last_share) - _EPS
        and both <= limit + _EPS
        and recent_share <= min(cfg.ratio, last_share + cfg.recovery_margin) + _EPS
    )
    if not explain:
        return holds, "", {}
    part = (
        f"daily actives {_pct(last_share)} of the same weekdays' baseline in the last 7 days, "
        f"{_pct(before_share)} in the 7 before, {_pct(recent_share)} in the last "
        f"{cfg.recent_days}; alert when at most {_pct(cfg.ratio)}, {_pct(cfg.earlier_ratio)}, "
        f"not recovering, and the 14 days {_num(cfg.sigmas)} standard deviations below the "
        f"baseline (at most {_num(limit)} active user-days, {_num(both)} seen)"
    )
    facts: dict[str, FactValue] = {
        "daily_last_share": round(last_share, 4),
        "daily_before_share": round(before_share, 4),
        "daily_recent_share": round(recent_share, 4),
        "daily_limit": round(limit, 3),
        "daily_seen": both,
    }
    return holds, part, facts


def login_decline(
    s: ScoreMessage, history: ScoreHistory | None, cfg: LoginDecline, explain: bool = True
) -> list[Finding]:
    """The last of the ``current_weeks`` whole weeks down to at most ``ratio`` of the median of
    the ``trailing_weeks`` before them, the earlier ones already down to ``earlier_ratio`` (a
    one-week dip, or a dip that recovered, is not a decline), and their mean ``sigmas``
    standard deviations of the noise below the median (see
    :class:`~shared.alert_rules.LoginDecline`); or, when configured, a relative slope at or
    below ``relative_slope``.

    Each half is judged only with its data (``min_baseline_weeks`` whole weeks before the current
    ones and a baseline above 0; a slope); with neither, the rule is not evaluable.
    """
    series = _series(s, cfg.series)
    lived = _lived_weeks(s, series)
    parts: list[str] = []
    facts: dict[str, FactValue] = {}
    holds = False
    evaluable = False

    k = cfg.current_weeks
    baseline_weeks = min(cfg.trailing_weeks, lived - k, len(series) - k)
    if baseline_weeks >= cfg.min_baseline_weeks:
        current = list(series[-k:])
        baseline = list(series[-k - baseline_weeks : -k])
        level = float(median(baseline))
        if level > 0:
            evaluable = True
            latest_limit = cfg.ratio * level
            earlier_limit = cfg.earlier_ratio * level
            dropped = current[-1] <= latest_limit + _EPS and all(
                x <= earlier_limit + _EPS for x in current[:-1]
            )
            # Not down to the limits, the mean's limit cannot make it hold: a verdict without
            # text needs no noise then.
            if dropped or explain:
                # Never below the week-to-week spread the baseline shows (robustly: neither a
                # trend already under way nor one holiday week in it counts).
                noise = max(
                    _noise_variance(s, level, cfg.series, baseline), robust_variance(baseline)
                )
                # The baseline is itself an estimate: the variance of a median of n weeks is
                # about pi/2 times that of their mean.
                baseline_var = noise * (math.pi / 2) / baseline_weeks
                sd = math.sqrt(noise + baseline_var)
                sd_mean = math.sqrt(noise / k + baseline_var)
                mean = sum(current) / k
                mean_limit = level - cfg.sigmas * sd_mean
                holds = dropped and mean <= mean_limit + _EPS
            if explain:
                parts.append(
                    _weekly_decline_text(
                        cfg, current, baseline, level, sd, latest_limit, earlier_limit, mean_limit
                    )
                )
                facts.update(
                    current=current,
                    baseline=baseline,
                    baseline_median=level,
                    latest_limit=round(latest_limit, 3),
                    earlier_limit=round(earlier_limit, 3),
                    mean_limit=round(mean_limit, 3),
                    noise_sd=round(sd, 3),
                    last_week=current[-1],
                    share=current[-1] / level,
                )

    if cfg.daily and evaluable and not holds:
        daily = _daily_decline(s, cfg, explain)
        if daily is not None:
            holds = daily[0]
            parts.append(daily[1])
            facts.update(daily[2])

    slope = _relative_slope(s, cfg.series)
    if cfg.relative_slope is not None and slope is not None:
        evaluable = True
        holds = holds or slope <= cfg.relative_slope + _EPS
        if explain:
            parts.append(
                f"trend {_signed_pct(slope)} a week over {s.metrics.trend_slope_weeks} weeks, "
                f"alert at {_signed_pct(cfg.relative_slope)}"
            )
            facts["relative_slope"] = round(slope, 4)

    if not evaluable:
        return []

    def text() -> Explained:
        step = (
            f"Ask {_champion(s)} what changed in the last weeks; usage is falling "
            "and the cause (reorg, tool switch, bad release) is worth knowing now."
        )
        return "; ".join(parts), step, facts

    return [_finding(s, "login_decline", cfg, holds=holds, explain=explain, text=text)]


def _weekly_decline_text(
    cfg: LoginDecline,
    current: list[int],
    baseline: list[int],
    level: float,
    sd: float,
    latest_limit: float,
    earlier_limit: float,
    mean_limit: float,
) -> str:
    k = cfg.current_weeks
    shares = ", ".join(_pct(x / level) for x in current)
    if k == 1:
        when = (
            f"alert when it is at most {_num(min(latest_limit, mean_limit))} "
            f"({_pct(cfg.ratio)} of the median, and {_num(cfg.sigmas)} times the "
            f"week-to-week noise of ±{_num(sd)} below it)"
        )
    else:
        when = (
            f"alert when the last is at most {_pct(cfg.ratio)} of the median "
            f"({_num(latest_limit)}), the weeks before it at most "
            f"{_pct(cfg.earlier_ratio)} ({_num(earlier_limit)}), and their mean "
            f"{_num(cfg.sigmas)} standard deviations below the median (at most "
            f"{_num(mean_limit)}; noise ±{_num(sd)} a week)"
        )
    weeks_word = "last week" if k == 1 else f"the last {k} weeks"
    return (
        f"{_label(cfg.series)} {', '.join(map(str, current))} in {weeks_word} vs a median of "
        f"{_num(level)} over the {len(baseline)} weeks before "
        f"({', '.join(map(str, baseline))}): {shares}; {when}"
    )


def dormant(
    s: ScoreMessage, history: ScoreHistory | None, cfg: Dormant, explain: bool = True
) -> list[Finding]:
    """No login for ``days`` days (no activity of any kind, when logins were never seen)."""
    m = s.metrics
    if m.days_since_last_login is not None:
        days, last, what = m.days_since_last_login, m.last_login, "login"
    elif m.days_since_last_active is not None:
        days, last, what = m.days_since_last_active, m.last_active, "activity"
    else:
        return []

    def text() -> Explained:
        return (
            f"no {what} for {_days(days)} (last {what} {last}); alert after {cfg.days}",
            f"Call the account's main contact; nobody has used the product for {_days(days)}.",
            {"days_since": days, "last": last.isoformat() if last else None},
        )

    return [_finding(s, "dormant", cfg, holds=days >= cfg.days, explain=explain, text=text)]


def feature_unused(
    s: ScoreMessage, history: ScoreHistory | None, cfg: FeatureUnused, explain: bool = True
) -> list[Finding]:
    """One finding per key feature: abandoned (used before, not for ``days`` days) or never
    adopted (never used once onboarding is over). A never-used feature during onboarding, or
    with ``never_adopted: false``, is not judged."""
    out: list[Finding] = []
    for f in s.metrics.features:
        if f.last_used is not None and f.days_since_last_use is not None:
            holds = f.days_since_last_use >= cfg.days
        elif cfg.never_adopted and _after_onboarding(s):
            holds = True
        else:
            continue
        if not explain:
            out.append(_verdict("feature_unused", f.feature, s.as_of, holds, cfg.severity))
            continue
        text = partial(_feature_unused_text, s, f, cfg, holds)
        out.append(
            _finding(
                s, "feature_unused", cfg, feature=f.feature, holds=holds, explain=explain, text=text
            )
        )
    return out


def _feature_unused_text(
    s: ScoreMessage, f: FeatureUsage, cfg: FeatureUnused, holds: bool
) -> Explained:
    days: int | None
    if f.last_used is not None and f.days_since_last_use is not None:
        days = f.days_since_last_use
        since = f" (first used {f.first_used})" if f.first_used else ""
        reason = (
            f"{f.feature} last used {_ago(days)} ({f.last_used}){since}; "
            f"{f.uses_28d} uses by {f.users_28d} users in 28 days; alert after {cfg.days} days"
        )
        kind = "abandoned" if holds else "in_use"
        step = (
            f"Ask why {f.feature} was dropped and offer a refresher; "
            f"it was in use until {f.last_used}."
        )
    else:
        kind, days = "never_adopted", None
        age = s.metrics.account_age_days
        aged = f", account {_days(age)} old" if age is not None else ""
        reason = f"{f.feature} never used{aged}"
        step = f"Offer a short {f.feature} walkthrough; it has never been used."
    facts: dict[str, FactValue] = {
        "kind": kind,
        "days_since_last_use": days,
        "last_used": f.last_used.isoformat() if f.last_used else None,
        "uses_28d": f.uses_28d,
    }
    return reason, step, facts


def low_seat_utilization(
    s: ScoreMessage, history: ScoreHistory | None, cfg: LowSeatUtilization, explain: bool = True
) -> list[Finding]:
    """Regular users / seats below ``below`` once onboarding is over (MAU / seats before the
    account's first whole week); unknown seats: not evaluable."""
    seats = _seat_count(s)
    if seats is None or not _after_onboarding(s):
        return []
    m = s.metrics
    regular = m.regular_users
    used = m.mau if regular is None else regular
    utilization = used / seats

    def text() -> Explained:
        idle = max(0, seats - used)
        if regular is None:
            measured = f"{used} of {seats} seats active in 28 days ({_pct(utilization)})"
        else:
            measured = (
                f"{used} of {seats} seats used regularly ({_pct(utilization)}; "
                f"{m.mau} active in 28 days)"
            )
        step = f"Plan an adoption push with {_champion(s)}: {_seats(idle)} {_is(idle)} idle" + (
            f", renewal in {_days(d)}." if (d := m.days_to_renewal) else "."
        )
        facts: dict[str, FactValue] = {
            "mau": m.mau,
            "regular_users": regular,
            "seats": seats,
            "seat_utilization": round(utilization, 4),
            "idle_seats": idle,
        }
        return f"{measured}; alert below {_pct(cfg.below)}", step, facts

    holds = utilization < cfg.below - _EPS
    return [_finding(s, "low_seat_utilization", cfg, holds=holds, explain=explain, text=text)]


def _weakest(s: ScoreMessage) -> str:
    if not s.components:
        return ""
    c = min(s.components, key=lambda c: c.score)
    return f"; weakest: {words(c.name)} at {_num(c.score)} points ({c.explanation})"


def health_red(
    s: ScoreMessage, history: ScoreHistory | None, cfg: HealthRed, explain: bool = True
) -> list[Finding]:
    """Band red. Bands ``new`` and ``unknown`` say nothing about health: not evaluable."""
    if s.band not in ("green", "yellow", "red") or s.score is None:
        return []
    score = s.score

    def text() -> Explained:
        return (
            f"health score {_num(score)} is {s.band}{_weakest(s)}",
            "Open the account in the console, go through the red components and "
            "agree a recovery plan with the customer.",
            {"score": score, "band": s.band},
        )

    return [_finding(s, "health_red", cfg, holds=s.band == "red", explain=explain, text=text)]


def health_drop(
    s: ScoreMessage, history: ScoreHistory | None, cfg: HealthDrop, explain: bool = True
) -> list[Finding]:
    """The score fell ``points``+ from its highest in the last ``within_days`` days.

    Needs history: the earlier scores of the same scorecard (a switch from onboarding to health
    is a new scale, not a drop) dated ``as_of - within_days .. as_of - 1``.
    """
    if history is None or s.score is None:
        return []
    return _health_drop(s, lambda: worst_move(s), history, cfg, explain)


def worst_move(s: ScoreMessage) -> tuple[str, float] | None:
    """The component that moved down most since the last score, and by how much: what
    ``health_drop`` reads of a day besides its :class:`ScorePoint`, so the alerts service keeps
    it with the day and can judge the day again (:func:`judge_again`)."""
    moves = [c for c in s.moved.components if c.delta is not None and c.delta < 0]
    if not moves:
        return None
    worst = min(moves, key=lambda c: c.delta or 0.0)
    return worst.name, worst.delta or 0.0


def judge_again(
    s: ScorePoint,
    mover: tuple[str, float] | None,
    history: ScoreHistory,
    rules_config: RulesConfig,
    explain: bool = True,
) -> list[Finding]:
    """The findings of the rules that read other days (:data:`READS_OTHER_DAYS`) on a day
    judged before, from what is kept of it: its score and its :func:`worst_move`. The same as
    :func:`evaluate` gives for those rules from the day's message."""
    cfg = rules_config.health_drop
    if not cfg.enabled:
        return []
    return _health_drop(s, lambda: mover, history, cfg, explain)


def _health_drop(
    s: ScoreMessage | ScorePoint,
    mover_of: Callable[[], tuple[str, float] | None],
    history: ScoreHistory,
    cfg: HealthDrop,
    explain: bool,
) -> list[Finding]:
    if s.score is None:
        return []
    # The highest (score, day) of the window's points of this scorecard, in one pass (the
    # order of the points does not matter: equal keys are the same score on the same day).
    first, before, scorecard = s.as_of - timedelta(days=cfg.within_days), s.as_of, s.scorecard
    peak: ScorePoint | None = None
    for p in history.points:
        if (
            p.score is not None
            and first <= p.as_of < before
            and p.scorecard == scorecard
            and (peak is None or (p.score, p.as_of) > (peak.score, peak.as_of))
        ):
            peak = p
    if peak is None:
        return []
    assert peak.score is not None
    score, peak_score = s.score, peak.score
    drop = peak_score - score

    def text() -> Explained:
        moved, mover = "", mover_of()
        if mover is not None:
            moved = (
                f"; {words(mover[0])} moved most (down {_num(abs(mover[1]))} points "
                "since the last score)"
            )
        reason = (
            f"health score {_num(score)}, down {_num(drop)} points from {_num(peak_score)} "
            f"on {peak.as_of} (within {_days(cfg.within_days)}; alert at {_num(cfg.points)})"
            f"{moved}"
        )
        step = (
            "Look at what moved in the console and check in with the account "
            "before the drop becomes a trend."
        )
        facts: dict[str, FactValue] = {
            "score": score,
            "peak": peak_score,
            "peak_as_of": peak.as_of.isoformat(),
            "drop": round(drop, 1),
        }
        return reason, step, facts

    holds = drop >= cfg.points - _EPS
    return [_finding(s, "health_drop", cfg, holds=holds, explain=explain, text=text)]


def renewal_risk(
    s: ScoreMessage, history: ScoreHistory | None, cfg: RenewalRisk, explain: bool = True
) -> list[Finding]:
    """Renewal within ``within_days`` days and band in ``bands`` (not green by default).

    No renewal date, or band ``new``/``unknown``: not evaluable. A renewal date in the past
    does not hold (the date needs updating, the risk is no longer ahead).
    """
    m = s.metrics
    renewal = m.renewal_date or s.renewal_date
    if renewal is None or s.band not in ("green", "yellow", "red") or s.score is None:
        return []
    days = m.days_to_renewal if m.days_to_renewal is not None else (renewal - s.as_of).days
    score = s.score

    def text() -> Explained:
        mrr = f"; MRR {_num(s.mrr)}" if s.mrr is not None else ""
        return (
            f"renewal in {_days(days)} ({renewal}) with health {s.band} ({_num(score)}){mrr}",
            "Prepare the renewal now: review the weak components with the customer's "
            "sponsor and agree on a success plan before the date.",
            {
                "days_to_renewal": days,
                "renewal_date": renewal.isoformat(),
                "band": s.band,
                "score": score,
                "mrr": s.mrr,
            },
        )

    holds = 0 <= days <= cfg.within_days and s.band in cfg.bands
    return [_finding(s, "renewal_risk", cfg, holds=holds, explain=explain, text=text)]


def _typical(typical: float | None, own: float) -> str:
    if typical is None or typical >= own:
        return ""
    return f" (people here are active in {_pct(typical)} of weeks)"


def champion_lost(
    s: ScoreMessage, history: ScoreHistory | None, cfg: ChampionLost, explain: bool = True
) -> list[Finding]:
    """The champion has not been active for ``days``+ days, a silence with at most ``chance``
    of happening to them (their weekly rate, from the weeks before the silence with one active
    and one quiet week of prior, missed every quiet week), while someone else was active within
    ``account_active_within_days`` days. No champion, or one never seen: not evaluable."""
    m = s.metrics
    if m.champion is None or m.champion_last_active is None:
        return []
    days = (
        m.champion_days_since_active
        if m.champion_days_since_active is not None
        else (s.as_of - m.champion_last_active).days
    )
    quiet_weeks = max(0, days) // 7
    own = (m.champion_weeks_active + 1) / (m.champion_weeks_observed + 2)
    # The champion is the most regular of many, so their own past overstates how regular they
    # are: never assume more than the account's typical user shows.
    typical = m.users_weekly_rate
    rate = own if typical is None else min(own, typical)
    chance = (1 - rate) ** quiet_weeks
    active = m.days_since_last_active
    otherwise_active = active is not None and active <= cfg.account_active_within_days

    def text() -> Explained:
        activity = (
            f"the account was last active {_ago(active)}, {m.wau} weekly actives"
            if active is not None
            else "the account has no activity"
        )
        who = "named champion" if m.champion_source == "named" else "champion"
        reason = (
            f"{who} {m.champion} not active for {_days(days)} (last {m.champion_last_active}); "
            f"active in {m.champion_weeks_active} of the {m.champion_weeks_observed} weeks "
            f"before{_typical(typical, own)}, so {quiet_weeks} quiet weeks had a "
            f"{_pct(chance)} chance; alert after "
            f"{cfg.days} days at a chance of {_pct(cfg.chance)} or less; {activity}"
        )
        step = (
            f"Reach out to {m.champion}; if they have left or moved on, find and "
            "onboard a new champion."
        )
        facts: dict[str, FactValue] = {
            "champion": m.champion,
            "top_user": m.champion,
            "champion_source": m.champion_source,
            "days_since": days,
            "quiet_weeks": quiet_weeks,
            "chance": round(chance, 4),
            "weekly_rate": round(rate, 4),
            "days_since_account_active": active,
            "wau": m.wau,
        }
        return reason, step, facts

    holds = days >= cfg.days and chance <= cfg.chance + _EPS and otherwise_active
    return [_finding(s, "champion_lost", cfg, holds=holds, explain=explain, text=text)]


def upsell_seats(
    s: ScoreMessage, history: ScoreHistory | None, cfg: UpsellSeats, explain: bool = True
) -> list[Finding]:
    """MAU at ``at_least`` of the seats or more (a positive signal).

    Unknown seats: not evaluable."""
    seats = _seat_count(s)
    if seats is None:
        return []
    mau = s.metrics.mau
    utilization = mau / seats

    def text() -> Explained:
        free = max(0, seats - mau)
        reason = (
            f"{mau} of {seats} seats active in 28 days ({_pct(utilization)}); "
            f"signal at {_pct(cfg.at_least)}"
        )
        step = (
            f"Talk to the account about more seats; {_seats(free)} {_is(free)} left."
            if free
            else f"Talk to the account about more seats; all {seats} are in use."
        )
        facts: dict[str, FactValue] = {
            "mau": mau,
            "seats": seats,
            "seat_utilization": round(utilization, 4),
            "free_seats": free,
        }
        return reason, step, facts

    holds = utilization >= cfg.at_least - _EPS
    return [_finding(s, "upsell_seats", cfg, holds=holds, explain=explain, text=text)]


# -- all of them ---------------------------------------------------------------------------------

Rule = Callable[[ScoreMessage, "ScoreHistory | None", Any, bool], list[Finding]]

READS_OTHER_DAYS: frozenset[RuleName] = frozenset({"health_drop"})
"""The rules whose verdict on a day reads other days' scores (the history); every other rule
reads only the day's own message (tests/alerts/test_rules.py checks it). A re-score that changes
one day's score without changing a later day's message (the scorer publishes only the days
whose own score changed) changes these rules' verdicts on the later days."""

RULES: dict[RuleName, Rule] = {
    "login_plateau": login_plateau,
    "login_decline": login_decline,
    "dormant": dormant,
    "feature_unused": feature_unused,
    "low_seat_utilization": low_seat_utilization,
    "health_red": health_red,
    "health_drop": health_drop,
    "renewal_risk": renewal_risk,
    "champion_lost": champion_lost,
    "upsell_seats": upsell_seats,
}


def evaluate(
    snapshot: ScoreMessage,
    history: ScoreHistory | None,
    rules_config: RulesConfig,
    *,
    explain: bool = True,
) -> list[Finding]:
    """A finding for every enabled rule (and feature) the snapshot has the data to judge.

    Findings that do not hold are returned too: the life cycle counts clears from them. A rule
    missing from the result was not evaluable and should leave its alert as it is. With
    ``explain=False`` the findings are the same verdicts (rule, feature, holds) without their
    reason, next step and facts (empty): what a backtest reads, at a fraction of the cost.
    """
    findings: list[Finding] = []
    for name, rule in RULES.items():
        cfg = rules_config.rule(name)
        if cfg.enabled:
            findings.extend(rule(snapshot, history, cfg, explain))
    return findings

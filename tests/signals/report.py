"""What a run of the simulated portfolio says about tend's signals (pure).

Per behaviour: end bands, rules fired, delay of the first alert on the expected rule after the
behaviour changed, false alarms (risk alerts opened on steady, growing or seasonal accounts),
reopenings, notifications; across arrival orders: account-days whose band differs and alert
episodes that differ.

Lead time: a rule can only see some behaviours once they have lasted as long as the product
defines them: a dormant account is one without a login for ``rules.dormant.days``, a feature is
abandoned after ``rules.feature_unused.days`` without use, a plateau is flat for
``rules.login_plateau.weeks`` weeks, a champion is lost after ``rules.champion_lost.days``,
seats are in use when the 28-day actives fill them. :func:`allowed_delay` is that definition
plus :data:`LEAD_DAYS` (14): the most a CSM should wait to hear of it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from shared.alert_rules import RulesConfig
from tests.signals.runner import Episode, Outcome
from tests.signals.simulator import BEHAVIOURS, HEALTHY, Behaviour, Portfolio, SimAccount

LEAD_DAYS = 14
OPPORTUNITY_RULES = frozenset({"upsell_seats"})
SEAT_WINDOW_DAYS = 28


def definition_days(rule: str, rules: RulesConfig) -> int:
    """How long a behaviour must last before ``rule``'s definition can see it at all."""
    if rule == "dormant":
        return int(rules.dormant.days)
    if rule == "feature_unused":
        return int(rules.feature_unused.days)
    if rule == "login_plateau":
        return int(rules.login_plateau.weeks) * 7
    if rule == "champion_lost":
        return int(rules.champion_lost.days)
    if rule == "upsell_seats":
        return SEAT_WINDOW_DAYS
    return 0


def allowed_delay(rule: str, rules: RulesConfig) -> int:
    return definition_days(rule, rules) + LEAD_DAYS


def is_risk(episode: Episode) -> bool:
    return episode.rule not in OPPORTUNITY_RULES


def quarter(day: date) -> tuple[int, int]:
    return day.year, (day.month - 1) // 3


@dataclass(slots=True)
class AccountResult:
    account: SimAccount
    end_band: str
    episodes: list[Episode]
    notices: int
    delay: int | None
    """Days from the behaviour change to the first alert on the expected rule (0 when it was
    already open then); None when it never came (or none is expected)."""

    @property
    def reopenings(self) -> int:
        """Episodes after the first of each (rule, feature), plus returns that continued one."""
        per_key = Counter((e.rule, e.feature) for e in self.episodes)
        return sum(n - 1 for n in per_key.values()) + sum(e.reopenings for e in self.episodes)

    def reopenings_by_quarter(self) -> Counter[tuple[int, int]]:
        out: Counter[tuple[int, int]] = Counter()
        first: dict[tuple[str, str], date] = {}
        for e in sorted(self.episodes, key=lambda e: e.opened_on):
            key = (e.rule, e.feature)
            if key in first:
                out[quarter(e.opened_on)] += 1
            else:
                first[key] = e.opened_on
            if e.reopenings:
                out[quarter(e.opened_on)] += e.reopenings
        return out

    @property
    def false_alarms(self) -> list[Episode]:
        if not self.account.healthy:
            return []
        return [e for e in self.episodes if is_risk(e)]


def account_results(portfolio: Portfolio, outcome: Outcome) -> list[AccountResult]:
    by_account: dict[str, list[Episode]] = defaultdict(list)
    for e in outcome.episodes:
        by_account[e.account_id].append(e)
    notices = Counter(n.account_id for n in outcome.notices)
    bands = outcome.bands()
    out = []
    for a in portfolio.accounts:
        episodes = sorted(by_account.get(a.account_id, []), key=lambda e: e.opened_on)
        out.append(
            AccountResult(
                a,
                bands.get((a.account_id, portfolio.end), "-"),
                episodes,
                notices[a.account_id],
                first_alert_delay(a, episodes),
            )
        )
    return out


def first_alert_delay(account: SimAccount, episodes: Iterable[Episode]) -> int | None:
    if account.expected_rule is None:
        return None
    for e in sorted(episodes, key=lambda e: e.opened_on):
        if e.rule != account.expected_rule:
            continue
        if account.expected_feature and e.feature != account.expected_feature:
            continue
        if e.resolved_on is not None and e.resolved_on < account.change:
            continue  # an episode over before the behaviour changed says nothing about it
        return max(0, (e.opened_on - account.change).days)
    return None


@dataclass(slots=True)
class BehaviourRow:
    behaviour: Behaviour
    results: list[AccountResult] = field(default_factory=list)

    def end_bands(self) -> str:
        return " ".join(r.end_band for r in self.results)

    def rules(self) -> str:
        fired = Counter(
            f"{e.rule}:{e.feature}" if e.feature else e.rule
            for r in self.results
            for e in {(e.rule, e.feature): e for e in r.episodes}.values()
        )
        return ", ".join(f"{k}x{n}" if n > 1 else k for k, n in sorted(fired.items())) or "-"

    def delays(self) -> str:
        if self.behaviour not in _EXPECTING:
            return "n/a"
        return " ".join("miss" if r.delay is None else str(r.delay) for r in self.results)


_EXPECTING = frozenset(b for b in BEHAVIOURS if b not in HEALTHY)


def behaviour_rows(results: Sequence[AccountResult]) -> list[BehaviourRow]:
    rows = {b: BehaviourRow(b) for b in BEHAVIOURS}
    for r in results:
        rows[r.account.behaviour].results.append(r)
    return [row for row in rows.values() if row.results]


def band_differences(outcomes: Sequence[Outcome]) -> tuple[int, int]:
    """(account-days compared, account-days whose band is not the same in every outcome; a day
    scored in one and not in another counts as different)."""
    maps = [o.bands() for o in outcomes]
    keys = set().union(*maps) if maps else set()
    differ = sum(1 for k in keys if len({m.get(k) for m in maps}) > 1)
    return len(keys), differ


def episode_differences(outcomes: Sequence[Outcome]) -> int:
    """Alert episodes not found, identical, in every outcome."""
    sets = [set(o.episodes) for o in outcomes]
    if not sets:
        return 0
    common = sets[0].intersection(*sets[1:])
    return len(set().union(*sets) - common)


def format_table(portfolio: Portfolio, outcome: Outcome, rules: RulesConfig) -> str:
    results = account_results(portfolio, outcome)
    header = (
        f"{'behaviour':<18} {'seats':<9} {'end band':<14} {'delay (allowed)':<17} "
        f"{'false':>5} {'reop':>4} {'notif':>5}  rules fired"
    )
    lines = [header, "-" * len(header)]
    for row in behaviour_rows(results):
        rule = row.results[0].account.expected_rule
        allowed = f" ({allowed_delay(rule, rules)})" if rule else ""
        lines.append(
            f"{row.behaviour.value:<18} "
            f"{' '.join(str(r.account.seats) for r in row.results):<9} "
            f"{row.end_bands():<14} "
            f"{row.delays() + allowed:<17} "
            f"{sum(len(r.false_alarms) for r in row.results):>5} "
            f"{sum(r.reopenings for r in row.results):>4} "
            f"{sum(r.notices for r in row.results):>5}  "
            f"{row.rules()}"
        )
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Totals:
    false_alarms: int
    reopenings: int
    notifications: int
    flagged_in_time: int
    expected: int
    worst_quarter: int
    """The most reopenings of one account in one calendar quarter."""


def totals(portfolio: Portfolio, outcome: Outcome, rules: RulesConfig) -> Totals:
    results = account_results(portfolio, outcome)
    expected = [r for r in results if r.account.expected_rule is not None]
    in_time = [
        r
        for r in expected
        if r.delay is not None and r.delay <= allowed_delay(r.account.expected_rule or "", rules)
    ]
    quarters = [max(r.reopenings_by_quarter().values(), default=0) for r in results]
    return Totals(
        false_alarms=sum(len(r.false_alarms) for r in results),
        reopenings=sum(r.reopenings for r in results),
        notifications=len(outcome.notices),
        flagged_in_time=len(in_time),
        expected=len(expected),
        worst_quarter=max(quarters, default=0),
    )


def format_summary(
    portfolio: Portfolio, outcomes: Mapping[str, Outcome], rules: RulesConfig
) -> str:
    lines = []
    for mode, outcome in outcomes.items():
        t = totals(portfolio, outcome, rules)
        lines.append(
            f"{mode:<9} calls {outcome.calls:>7}  {outcome.seconds:6.1f}s  "
            f"false alarms {t.false_alarms:>3}  reopenings {t.reopenings:>3} "
            f"(worst account-quarter {t.worst_quarter})  notifications {t.notifications:>4}  "
            f"flagged in time {t.flagged_in_time}/{t.expected}"
        )
    compared, differ = band_differences(list(outcomes.values()))
    lines.append(
        f"account-days whose band differs between {', '.join(outcomes)}: {differ} of {compared}"
    )
    names = list(outcomes)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    if len(pairs) > 1:
        lines.append(
            "  by pair: "
            + ", ".join(
                f"{a}/{b} {band_differences([outcomes[a], outcomes[b]])[1]}" for a, b in pairs
            )
        )
    lines.append(
        f"alert episodes not identical in every order: "
        f"{episode_differences(list(outcomes.values()))}"
    )
    return "\n".join(lines)


def format_episodes(portfolio: Portfolio, outcome: Outcome) -> str:
    """Every account's alert episodes and outbox rows, days counted from its behaviour change
    (``+3``)."""
    lines = []
    for r in account_results(portfolio, outcome):
        a = r.account
        lines.append(f"{a.account_id} (change {a.change}, expects {a.expected_rule or '-'}):")
        for e in r.episodes:
            name = f"{e.rule}:{e.feature}" if e.feature else e.rule
            resolved = f"{(e.resolved_on - a.change).days:+d}" if e.resolved_on else "open"
            again = f", {e.reopenings} reopenings" if e.reopenings else ""
            lines.append(f"    {name:<30} {(e.opened_on - a.change).days:+4d} .. {resolved}{again}")
        for n in outcome.notices:
            if n.account_id == a.account_id:
                day = f"{(n.as_of - a.change).days:+d}" if n.as_of else "?"
                what = f"{n.rule}:{n.feature}" if n.feature else n.rule
                lines.append(f"    notified {n.kind} {what} as of {day}")
    return "\n".join(lines)

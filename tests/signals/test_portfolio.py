"""Issue 10's "How we know": a simulated portfolio (ten behaviours, 5 to 500 seats, 26 weeks)
through the real pipeline in three arrival orders (oldest first with scoring running, all at
once, shuffled), on SQLite with the in-process bus as ``tend up`` runs it.

- the score history and the alert history are the same whatever the order, and every alert open
  at the end is announced in every order;
- no risk alert ever opens on a steady, growing or seasonal account;
- no account reopens alerts more than once a quarter;
- every account with a changed behaviour is flagged on its expected rule, no later than the
  rule's own definition allows plus 14 days (see tests/signals/report.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.signals.report import account_results, allowed_delay, band_differences
from tests.signals.runner import MODES, Mode, Outcome, product_config, run_portfolio
from tests.signals.simulator import SMALL_SIZES, build_portfolio

pytestmark = pytest.mark.integration

PORTFOLIO = build_portfolio(1, sizes=SMALL_SIZES)
RULES = product_config().rules


@pytest_asyncio.fixture(scope="module")
async def outcomes(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[Mode, Outcome]]:
    out: dict[Mode, Outcome] = {}
    for mode in MODES:
        db = Path(tmp_path_factory.mktemp(f"signals-{mode}")) / "tend.db"
        out[mode] = await run_portfolio(PORTFOLIO, mode, f"sqlite+aiosqlite:///{db}")
    yield out


def describe_band_diffs(outcomes: dict[Mode, Outcome], limit: int = 8) -> str:
    maps = {m: o.bands() for m, o in outcomes.items()}
    keys = sorted(set().union(*maps.values()))
    shown = [
        f"{k[0]} {k[1]}: " + ", ".join(f"{m}={b.get(k)}" for m, b in maps.items())
        for k in keys
        if len({b.get(k) for b in maps.values()}) > 1
    ]
    return "\n".join(shown[:limit])


class TestSameHistoryWhateverTheOrder:
    async def test_every_account_day_has_one_band_in_every_order(
        self, outcomes: dict[Mode, Outcome]
    ) -> None:
        compared, differ = band_differences(list(outcomes.values()))
        assert compared >= len(PORTFOLIO.accounts) * (PORTFOLIO.days - 35)
        assert differ == 0, describe_band_diffs(outcomes)

    async def test_scores_are_identical(self, outcomes: dict[Mode, Outcome]) -> None:
        first, *rest = outcomes.values()
        for other in rest:
            assert other.scores == first.scores, other.mode

    async def test_alert_histories_are_identical(self, outcomes: dict[Mode, Outcome]) -> None:
        first, *rest = outcomes.values()
        for other in rest:
            assert sorted(other.episodes) == sorted(first.episodes), other.mode

    async def test_every_alert_open_at_the_end_was_announced_in_every_order(
        self, outcomes: dict[Mode, Outcome]
    ) -> None:
        """Notifications speak of the present, so what was said along the way depends on what had
        arrived: a shuffled feed may announce an alert whose later days had not come yet, then
        resolve it. What is open once everything has arrived is announced in every order."""
        first, *_ = outcomes.values()
        open_at_end = {
            (e.account_id, e.rule, e.feature) for e in first.episodes if not e.resolved_on
        }
        assert open_at_end, "the portfolio should end with open alerts"
        for o in outcomes.values():
            announced = {(n.account_id, n.rule, n.feature) for n in o.announced if n.kind == "open"}
            assert open_at_end - announced == set(), o.mode


DECLINE_GAP_DAYS = 0
"""login_decline needs no margin beyond the 14 days the issue asks: with weekly series alone it
was flagged 16 to 18 days into the simulated decline (a decline 14 days in looked like a one-week
holiday dip); the rule's daily view (daily actives against the same weekdays, the last days not
recovering) tells them apart sooner. Kept at 0 as a guard against it getting worse."""


def allowed(rule: str) -> int:
    return allowed_delay(rule, RULES) + (DECLINE_GAP_DAYS if rule == "login_decline" else 0)


@pytest.mark.parametrize("mode", MODES)
class TestSignalsACsmCanTrust:
    async def test_no_risk_alert_on_steady_growing_or_seasonal_accounts(
        self, outcomes: dict[Mode, Outcome], mode: Mode
    ) -> None:
        false = [e for r in account_results(PORTFOLIO, outcomes[mode]) for e in r.false_alarms]
        assert false == []

    async def test_at_most_one_reopening_per_account_per_quarter(
        self, outcomes: dict[Mode, Outcome], mode: Mode
    ) -> None:
        worst = {
            r.account.account_id: dict(r.reopenings_by_quarter())
            for r in account_results(PORTFOLIO, outcomes[mode])
            if max(r.reopenings_by_quarter().values(), default=0) > 1
        }
        assert worst == {}

    async def test_an_alert_opens_on_the_outbox_once(
        self, outcomes: dict[Mode, Outcome], mode: Mode
    ) -> None:
        opened = Counter(
            (n.account_id, n.rule, n.feature) for n in outcomes[mode].notices if n.kind == "open"
        )
        assert {k: n for k, n in opened.items() if n > 1} == {}

    async def test_every_changed_account_is_flagged_on_its_rule_in_time(
        self, outcomes: dict[Mode, Outcome], mode: Mode
    ) -> None:
        late = {
            r.account.account_id: (r.account.expected_rule, r.delay)
            for r in account_results(PORTFOLIO, outcomes[mode])
            if r.account.expected_rule is not None
            and (r.delay is None or r.delay > allowed(r.account.expected_rule))
        }
        assert late == {}

"""The backtest on a simulated portfolio with known churn (tests/backtest/portfolio.py), on
PostgreSQL and on a SQLite file (every test runs on both): the figures equal an independent
count, made here, from the alert history and band days the replay produced and the churn dates
the test wrote; a proposed config is reported beside the current one; the in-memory rollups
answer what the scorer's repository answers; and `tend backtest` end to end."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from statistics import median

import pytest
from click.testing import CliRunner, Result

from services.alerts.rules import evaluate
from services.cli import main
from services.cli.backtest import Replayed, Window, replay_portfolio, report_of, warmup_days
from services.scorer.replay import replay_scores
from services.scorer.repository import ScoringRepository
from services.scorer.rollups import load_rollups
from shared.backtest.model import AccountRun
from shared.backtest.report import BacktestReport, Comparison
from shared.config import parse_config
from shared.db.migrate import upgrade_async
from shared.db.session import create_engine, create_sessionmaker
from shared.outcomes.repository import OutcomeRepository
from tests.backtest.portfolio import KEY_FEATURES, SimAccount, create_portfolio, write_portfolio
from tests.backtest.reference import reference_runs
from tests.fixtures.databases import ON_BOTH
from tests.support.postgres import create_database, drop_database

pytestmark = pytest.mark.integration

START, END = date(2025, 1, 1), date(2025, 8, 29)
WINDOW = Window(date(2025, 3, 1), END)
CONFIG_YAML = "key_features: [reports, dashboards, exports]\n"
PROPOSED_YAML = CONFIG_YAML + (
    "scoring:\n  bands: {green: 85, yellow: 50}\nrules:\n  dormant: {enabled: false}\n"
)


class Portfolio:
    def __init__(self, url: str, accounts: list[SimAccount], replayed: Replayed) -> None:
        self.url = url
        self.accounts = {a.account_id: a for a in accounts}
        self.replayed = replayed
        self.result: Comparison = report_of(replayed)


@pytest.fixture(scope="module", params=ON_BOTH)
def backtest_portfolio(request: pytest.FixtureRequest) -> Iterator[Portfolio]:
    """Ten accounts (two per behaviour) over eight months, replayed once under the current
    and a proposed model, in a fresh database of this module: PostgreSQL (dropped after) or a
    SQLite file."""
    accounts = create_portfolio("bt-", 2, START, END)

    async def build(url: str) -> Replayed:
        await upgrade_async(url)
        engine = create_engine(url)
        try:
            sessions = create_sessionmaker(engine)
            await write_portfolio(sessions, accounts, START, END)
            configs = [parse_config(_yaml(CONFIG_YAML)), parse_config(_yaml(PROPOSED_YAML))]
            return await replay_portfolio(sessions, configs, WINDOW, chunk_size=4)
        finally:
            await engine.dispose()

    if request.param == "postgresql":
        url = asyncio.run(create_database("tend_backtest"))
        try:
            yield Portfolio(url, accounts, asyncio.run(build(url)))
        finally:
            asyncio.run(drop_database(url))
        return
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/tend.db"
        yield Portfolio(url, accounts, asyncio.run(build(url)))


def _yaml(text: str) -> object:
    import yaml

    return yaml.safe_load(text)


def churn_on(p: Portfolio, account_id: str) -> date | None:
    return p.accounts[account_id].churn_on


# -- the independent count -----------------------------------------------------------------------


def count_rule(p: Portfolio, runs: list[AccountRun], rule: str) -> dict[str, object]:
    alerts = [
        a
        for run in runs
        for a in run.alerts
        if a.rule == rule and WINDOW.first <= a.opened_on <= WINDOW.last
    ]
    hits = 0
    for a in alerts:
        c = churn_on(p, a.account_id)
        if c is not None and 0 < (c - a.opened_on).days <= 90:
            hits += 1
    churned = {
        a: c
        for a in p.accounts
        if (c := churn_on(p, a)) is not None and WINDOW.first <= c <= WINDOW.last
    }
    leads = []
    for account_id, c in sorted(churned.items()):
        days_ahead = [
            (c - a.opened_on).days
            for a in alerts
            if a.account_id == account_id and 1 <= (c - a.opened_on).days <= 90
        ]
        if days_ahead:
            leads.append(max(days_ahead))
    observed = sum(run.observed_days for run in runs)
    return {
        "alerts": len(alerts),
        "preceded_churn": hits,
        "precision": hits / len(alerts) if alerts else None,
        "churned_flagged": len(leads),
        "recall": len(leads) / len(churned) if churned else None,
        "median_lead_days": float(median(leads)) if leads else None,
        "lead_days": tuple(leads),
        "alerts_per_account_month": len(alerts) / (observed * 12 / 365.25),
    }


def count_bands(p: Portfolio, runs: list[AccountRun]) -> dict[str, tuple[int, int]]:
    """band -> (accounts with a day there, of which churned within 90 days after such a day),
    day by day."""
    seen: dict[str, set[str]] = {}
    churned: dict[str, set[str]] = {}
    for run in runs:
        c = churn_on(p, run.account_id)
        for span in run.spans:
            day = span.first
            while day <= span.last:
                if WINDOW.first <= day <= WINDOW.last:
                    seen.setdefault(span.band, set()).add(run.account_id)
                    if c is not None and day < c <= day + timedelta(days=90):
                        churned.setdefault(span.band, set()).add(run.account_id)
                day += timedelta(days=1)
    return {b: (len(seen[b]), len(churned.get(b, ()))) for b in seen}


def rule_row(report: BacktestReport, rule: str) -> dict[str, object]:
    row = next(r for r in report.rules if r.rule == rule)
    return {
        k: getattr(row, k)
        for k in (
            "alerts",
            "preceded_churn",
            "precision",
            "churned_flagged",
            "recall",
            "median_lead_days",
            "lead_days",
            "alerts_per_account_month",
        )
    }


# -- tests ---------------------------------------------------------------------------------------


class TestFiguresEqualAnIndependentCount:
    @pytest.mark.parametrize("model", [0, 1], ids=["current", "proposed"])
    def test_per_rule_precision_recall_lead_and_noise(
        self, backtest_portfolio: Portfolio, model: int
    ) -> None:
        p = backtest_portfolio
        runs = p.replayed.runs[model]
        report = p.result.current if model == 0 else p.result.proposed
        assert report is not None
        for row in report.rules:
            got, counted = rule_row(report, row.rule), count_rule(p, runs, row.rule)
            noise, counted_noise = (
                got.pop("alerts_per_account_month"),
                counted.pop("alerts_per_account_month"),
            )
            assert got == counted, row.rule
            assert noise == pytest.approx(counted_noise), row.rule
        # The portfolio is not silent: churn was flagged ahead by some rule.
        assert any(r.churned_flagged for r in report.rules)

    def test_calibration_per_band(self, backtest_portfolio: Portfolio) -> None:
        p = backtest_portfolio
        for report, runs in zip(
            (p.result.current, p.result.proposed), p.replayed.runs, strict=True
        ):
            assert report is not None
            counted = count_bands(p, runs)
            assert {b.band: (b.accounts, b.churned) for b in report.bands} == counted
            for b in report.bands:
                assert b.churn_share == pytest.approx(b.churned / b.accounts)
            shares = {b.band: b.churn_share for b in report.bands}
            if all(k in shares for k in ("red", "yellow", "green")):
                ordered = shares["red"] > shares["yellow"] > shares["green"]  # type: ignore[operator]
                assert report.calibration.holds is ordered
                assert report.calibration.statement.startswith(
                    "holds" if ordered else "does not hold"
                )

    def test_churned_mrr_flagged_30_days_ahead(self, backtest_portfolio: Portfolio) -> None:
        p = backtest_portfolio
        runs = {r.account_id: r for r in p.replayed.runs[0]}
        churned = flagged = 0.0
        for a in p.accounts.values():
            c = a.churn_on
            if c is None or not WINDOW.first <= c <= WINDOW.last:
                continue
            churned += a.mrr
            if any(
                not x.opportunity
                and x.opened_on >= WINDOW.first
                and 30 <= (c - x.opened_on).days <= 90
                for x in runs[a.account_id].alerts
            ):
                flagged += a.mrr
        o = p.result.current.overall
        assert (o.churned_mrr, o.flagged_mrr) == (churned, flagged)
        assert o.flagged_mrr_share == pytest.approx(flagged / churned)
        assert o.churned_accounts == sum(
            1 for a in p.accounts.values() if a.churn_on and WINDOW.first <= a.churn_on <= END
        )

    def test_a_cancelled_account_is_never_judged_again(self, backtest_portfolio: Portfolio) -> None:
        for runs in backtest_portfolio.replayed.runs:
            for run in runs:
                c = churn_on(backtest_portfolio, run.account_id)
                if c is None:
                    continue
                assert all(a.opened_on < c for a in run.alerts)
                assert all(span.last < c for span in run.spans)


class TestProposedConfig:
    def test_both_models_side_by_side(self, backtest_portfolio: Portfolio) -> None:
        result = backtest_portfolio.result
        assert result.proposed is not None
        assert (result.current.label, result.proposed.label) == ("current", "proposed")
        dormant = {
            r.label: rule_row(r, "dormant")["alerts"] for r in (result.current, result.proposed)
        }
        assert dormant["current"] > 0 and dormant["proposed"] == 0  # type: ignore[operator]
        # Higher band thresholds: fewer green account-days under the proposed model.
        green = {
            r.label: sum(b.account_days for b in r.bands if b.band == "green")
            for r in (result.current, result.proposed)
        }
        assert green["proposed"] < green["current"]
        data = result.to_dict()
        assert data["current"]["label"] == "current" and data["proposed"]["label"] == "proposed"


class TestFastPathsEqualTheReference:
    def test_a_model_replayed_alone_gives_the_runs_it_gave_beside_another(
        self, backtest_portfolio: Portfolio
    ) -> None:
        """Two models share the day's activity and metrics; alone, each computes its own."""

        async def alone(yaml_text: str) -> Replayed:
            engine = create_engine(backtest_portfolio.url)
            try:
                config = parse_config(_yaml(yaml_text))
                return await replay_portfolio(
                    create_sessionmaker(engine), [config], WINDOW, chunk_size=4
                )
            finally:
                await engine.dispose()

        assert asyncio.run(alone(PROPOSED_YAML)).runs == [backtest_portfolio.replayed.runs[1]]

    def test_verdicts_without_text_equal_the_explained_findings(
        self, backtest_portfolio: Portfolio
    ) -> None:
        """Every day's score of the portfolio through the rules both ways (the replay reads
        verdicts only; the alerts service explains them)."""
        config = parse_config(_yaml(CONFIG_YAML))
        ids = sorted(backtest_portfolio.accounts)

        async def compare() -> int:
            engine = create_engine(backtest_portfolio.url)
            checked = 0
            try:
                async with create_sessionmaker(engine)() as session:
                    async for _, scored in replay_scores(session, ids, START, END, [config]):
                        for message in scored[0]:
                            explained = evaluate(message, None, config.rules)
                            verdicts = evaluate(message, None, config.rules, explain=False)
                            assert [(f.rule, f.feature, f.holds) for f in verdicts] == [
                                (f.rule, f.feature, f.holds) for f in explained
                            ]
                            checked += len(explained)
            finally:
                await engine.dispose()
            return checked

        assert asyncio.run(compare()) > 1000

    def test_the_report_equals_the_reference_replay_byte_for_byte(
        self, backtest_portfolio: Portfolio
    ) -> None:
        """The JSON figures of both models equal those of the replay before its fast paths
        (tests/backtest/reference.py: every finding through the life cycle, every state kept,
        all accounts in one pass)."""
        configs = [parse_config(_yaml(CONFIG_YAML)), parse_config(_yaml(PROPOSED_YAML))]
        replayed = backtest_portfolio.replayed

        async def reference() -> Replayed:
            engine = create_engine(backtest_portfolio.url)
            try:
                async with create_sessionmaker(engine)() as session:
                    histories = {
                        h.account_id: h for h in await OutcomeRepository(session).histories()
                    }
                    start = WINDOW.first - timedelta(days=warmup_days(configs))
                    runs = await reference_runs(session, histories, configs, WINDOW, start)
            finally:
                await engine.dispose()
            return Replayed(WINDOW, replayed.last_data_day, replayed.churns, runs)

        expected = report_of(asyncio.run(reference()))
        assert sum(len(run.alerts) for run in backtest_portfolio.replayed.runs[0]) > 5
        assert json.dumps(backtest_portfolio.result.to_dict(), indent=2) == json.dumps(
            expected.to_dict(), indent=2
        )


class TestRollupsInMemory:
    def test_same_activity_as_the_scorer_repository(self, backtest_portfolio: Portfolio) -> None:
        ids = sorted(backtest_portfolio.accounts)

        async def compare() -> int:
            engine = create_engine(backtest_portfolio.url)
            try:
                async with create_sessionmaker(engine)() as session:
                    memory = await load_rollups(session, ids, END, KEY_FEATURES)
                    checked = 0
                    day = START - timedelta(days=3)
                    while day <= END:
                        stored = await ScoringRepository().load_activity(
                            session, ids, day, KEY_FEATURES
                        )
                        assert memory.activity(ids, day) == stored, day
                        checked += 1
                        day += timedelta(days=11)
                    return checked
            finally:
                await engine.dispose()

        assert asyncio.run(compare()) > 20


class TestWorkers:
    def test_processes_give_the_same_runs(self, backtest_portfolio: Portfolio) -> None:
        async def replay() -> Replayed:
            engine = create_engine(backtest_portfolio.url)
            try:
                configs = [parse_config(_yaml(CONFIG_YAML)), parse_config(_yaml(PROPOSED_YAML))]
                return await replay_portfolio(
                    create_sessionmaker(engine),
                    configs,
                    WINDOW,
                    chunk_size=4,
                    workers=2,
                    database_url=backtest_portfolio.url,
                )
            finally:
                await engine.dispose()

        assert asyncio.run(replay()).runs == backtest_portfolio.replayed.runs


# -- the command ---------------------------------------------------------------------------------


def invoke(url: str, tmp_path: Path, *args: str) -> Result:
    config = tmp_path / "tend.yaml"
    config.write_text(CONFIG_YAML)
    env = {
        "TEND_DATABASE_URL": url,
        "TEND_KAFKA_BOOTSTRAP": None,
        "TEND_API_TOKEN": None,
        "TEND_CONFIG": str(config),
    }
    return CliRunner().invoke(main, ["backtest", *args], env=env)


async def latest_of(url: str) -> dict[str, object] | None:
    from shared.backtest.runs import latest_run

    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            run = await latest_run(session)
    finally:
        await engine.dispose()
    return None if run is None else run.result


class TestCommand:
    def test_json_and_text_with_a_proposed_config(
        self, backtest_portfolio: Portfolio, tmp_path: Path
    ) -> None:
        proposed = tmp_path / "proposed.yaml"
        proposed.write_text(PROPOSED_YAML)
        window = ("--from", str(WINDOW.first), "--to", str(WINDOW.last))
        result = invoke(
            backtest_portfolio.url, tmp_path, *window, "--config", str(proposed), "--json"
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == json.loads(
            json.dumps(backtest_portfolio.result.to_dict())
        )
        stored = asyncio.run(latest_of(backtest_portfolio.url))
        assert stored is not None  # what /console/backtest shows
        assert json.loads(json.dumps(stored)) == json.loads(result.output)
        text = invoke(
            backtest_portfolio.url, tmp_path, *window, "--config", str(proposed), "--no-save"
        )
        assert text.exit_code == 0, text.output
        assert "current model / proposed model" in text.output
        assert "Calibration" in text.output and "Churned MRR flagged" in text.output
        assert "current: red > yellow > green" in text.output
        assert "proposed: red > yellow > green" in text.output

    @pytest.mark.parametrize(
        ("args", "named"),
        [
            (("--from", "2025-13-01", "--to", "2025-06-01"), "--from: '2025-13-01' is not a date"),
            (("--from", "2025-03-01", "--to", "soon"), "--to: 'soon' is not a date"),
            (("--from", "2025-06-01", "--to", "2025-03-01"), "--from: 2025-06-01 is after --to"),
            (("--from", "2025-03-01", "--to", "2025-12-31"), "--to: 2025-12-31 is after the last"),
        ],
    )
    def test_bad_window_is_a_usage_error_naming_the_option(
        self, backtest_portfolio: Portfolio, tmp_path: Path, args: tuple[str, ...], named: str
    ) -> None:
        result = invoke(backtest_portfolio.url, tmp_path, *args)
        assert result.exit_code == 2, result.output
        assert named in result.output

    def test_no_data(self, own_db_url: str, tmp_path: Path) -> None:
        result = invoke(own_db_url, tmp_path, "--from", "2025-03-01", "--to", "2025-04-01")
        assert result.exit_code == 1, result.output
        assert "no accounts to backtest" in result.output

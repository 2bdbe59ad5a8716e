"""The provisioned Grafana dashboards against the real thing: every PromQL expression parses
and returns data in a real Prometheus scraping the running services, every SQL panel runs on
a migrated PostgreSQL database with data, and the JSON is well formed with unique ids."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from tests.support.ops import DEPLOY, Prometheus, Stack, dump

DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "tend.yaml"

# Grafana's variables, as Grafana would fill them for a 1 s scrape interval and a short range.
PROMQL_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}
TIME_FILTER = re.compile(r"\$__timeFilter\([^)]*\)")
METRIC_NAME = re.compile(r"\b((?:tend|process)_[a-z0-9_]+)\b")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def targets(kind: str) -> list[tuple[str, str, str]]:
    """(dashboard title, panel title, query) of every PromQL ("expr") or SQL ("rawSql")
    target."""
    found = []
    for path in DASHBOARDS:
        d = load(path)
        for panel in panels(d):
            for target in panel.get("targets", []):
                if kind in target:
                    found.append((d["title"], panel["title"], target[kind]))
    return found


def promql(expr: str) -> str:
    for name, value in PROMQL_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unsubstituted Grafana variable in {expr}"
    return expr


def sql(query: str) -> str:
    query = TIME_FILTER.sub("TRUE", query)
    assert "$__" not in query, f"unsubstituted Grafana macro in {query}"
    return query


PROMQL = targets("expr")
SQL = targets("rawSql")


class TestDashboardFiles:
    def test_both_dashboards_are_there(self) -> None:
        titles = {load(p)["title"] for p in DASHBOARDS}
        assert titles == {"tend / Pipeline", "tend / Customer health"}

    def test_uids_are_unique(self) -> None:
        uids = [load(p)["uid"] for p in DASHBOARDS]
        assert len(uids) == len(set(uids)) and all(uids)

    @pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
    def test_panel_ids_are_unique_and_placed(self, path: Path) -> None:
        all_panels = panels(load(path))
        ids = [p["id"] for p in all_panels]
        assert len(ids) == len(set(ids)), ids
        for p in all_panels:
            pos = p["gridPos"]
            assert pos["x"] + pos["w"] <= 24, p["title"]

    @pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
    def test_every_panel_uses_a_provisioned_datasource(self, path: Path) -> None:
        provisioned = {
            (d["type"], d["uid"]) for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]
        }
        for panel in panels(load(path)):
            if panel["type"] == "row":
                continue
            sources = [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
            for ds in sources:
                assert (ds["type"], ds["uid"]) in provisioned, (panel["title"], ds)

    def test_customer_health_queries_postgres_and_pipeline_prometheus(self) -> None:
        assert {d for d, _, _ in SQL} >= {"tend / Customer health"}
        assert {d for d, _, _ in PROMQL} == {"tend / Pipeline"}


@pytest.fixture(scope="module")
def exposed(stack: Stack) -> set[str]:
    """Every metric family name (and sample name) the running services expose."""
    names: set[str] = set()
    for service in stack.services.values():
        for line in service.metrics().splitlines():
            if line.startswith(("# HELP ", "# TYPE ")):
                names.add(line.split()[2])
            elif line and not line.startswith("#"):
                names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


@pytest.mark.e2e
class TestPromQL:
    @pytest.mark.parametrize(("dashboard", "panel", "expr"), PROMQL, ids=[t[2] for t in PROMQL])
    def test_parses_and_returns_data(
        self, prometheus: Prometheus, dashboard: str, panel: str, expr: str
    ) -> None:
        answer = prometheus.query(promql(expr))
        assert answer["status"] == "success", f"{panel}: {dump(answer)}"
        assert answer["data"]["result"], f"{panel}: no data for {promql(expr)}"

    @pytest.mark.parametrize(("dashboard", "panel", "expr"), PROMQL, ids=[t[2] for t in PROMQL])
    def test_names_only_exposed_metrics(
        self, exposed: set[str], dashboard: str, panel: str, expr: str
    ) -> None:
        # `or vector(0)` shows 0 instead of "no data" for counters with no series yet; a
        # misspelt metric would hide behind it, so every name must be one a service exposes.
        for name in METRIC_NAME.findall(expr):
            assert name in exposed, f"{panel}: {name} is exposed by no service"

    def test_alerting_rules_load_and_evaluate(self, prometheus: Prometheus) -> None:
        import httpx

        body = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()
        rules = [r for g in body["data"]["groups"] for r in g["rules"]]
        assert len(rules) >= 5
        for rule in rules:
            assert rule["health"] == "ok", dump(rule)


@pytest.mark.e2e
class TestSQL:
    @pytest.mark.parametrize(("dashboard", "panel", "query"), SQL, ids=[t[1] for t in SQL])
    async def test_runs_on_the_migrated_database(
        self, stack: Stack, dashboard: str, panel: str, query: str
    ) -> None:
        conn = await asyncpg.connect(stack.database_url.replace("+asyncpg", "", 1))
        try:
            rows = await conn.fetch(sql(query))
        finally:
            await conn.close()
        # The stack's history (seeded week + today's scores) has one account turning red.
        if panel in (
            "Band distribution over time",
            "Accounts that turned red this week",
            "Accounts turned red in the last 7 days",
        ):
            assert rows, f"{panel}: no rows"
        if panel == "Accounts turned red in the last 7 days":
            assert rows[0]["turned red"] >= 1

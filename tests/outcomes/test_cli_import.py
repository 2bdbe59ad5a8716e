"""`tend accounts import [FILE] --outcomes FILE` on a real SQLite file: profiles and outcomes in
one transaction, a renewal moving the renewal date, an idempotent re-import (CSV or JSON), and
refusals that name the line and field and record nothing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from services.cli import main

pytestmark = pytest.mark.integration

ACCOUNTS = """account_id,name,plan,mrr,renewal_date,created_at
acme,Acme,pro,1200,2026-03-01,2025-03-01
globex,Globex,basic,300,2026-09-30,2025-09-30
"""
OUTCOMES = """account_id,kind,effective_on,reason,mrr_lost,new_mrr,new_term_end,mrr_delta
acme,renewal,2026-03-01,,,1200,2027-03-01,
acme,expansion,2026-04-15,more seats,,,,"1,250.50"
globex,cancellation,2026-05-31,budget cut,300,,,
"""
TABLES = ("outcomes", "mrr_history", "lifecycle_stage_changes", "accounts")


def invoke(sqlite_url: str, *args: str) -> Result:
    env = {
        "TEND_DATABASE_URL": sqlite_url,
        "TEND_KAFKA_BOOTSTRAP": None,
        "TEND_API_TOKEN": None,
        "TEND_CONFIG": None,
    }
    return CliRunner().invoke(main, ["accounts", "import", *args], env=env)


def query(sqlite_url: str, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(sqlite_url.split(":///", 1)[1]) as conn:
        return list(conn.execute(sql))


def snapshot(sqlite_url: str) -> dict[str, list[tuple[Any, ...]]]:
    return {t: query(sqlite_url, f"SELECT * FROM {t} ORDER BY 1, 2, 3") for t in TABLES}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


class TestImportOutcomes:
    def test_profiles_and_outcomes_then_again_changes_nothing(
        self, sqlite_url: str, tmp_path: Path
    ) -> None:
        accounts = write(tmp_path, "accounts.csv", ACCOUNTS)
        outcomes = write(tmp_path, "outcomes.csv", OUTCOMES)
        first = invoke(sqlite_url, str(accounts), "--outcomes", str(outcomes))
        assert first.exit_code == 0, first.output
        assert "Imported 2 account(s)" in first.output
        assert "3 new, 0 changed, 0 unchanged" in first.output
        assert query(sqlite_url, "SELECT account_id, kind, source FROM outcomes ORDER BY 1, 2") == [
            ("acme", "expansion", "import"),
            ("acme", "renewal", "import"),
            ("globex", "cancellation", "import"),
        ]
        # The renewal moved acme's renewal date to its new term end.
        assert query(sqlite_url, "SELECT renewal_date FROM accounts WHERE account_id = 'acme'") == [
            ("2027-03-01",)
        ]
        assert query(
            sqlite_url, "SELECT effective_on, mrr FROM mrr_history WHERE account_id = 'acme'"
        ) == [("2025-03-01", 1200.0), ("2026-03-01", 1200.0), ("2026-04-15", 2450.5)]
        before = snapshot(sqlite_url)

        again = invoke(sqlite_url, "--outcomes", str(outcomes))
        assert again.exit_code == 0, again.output
        assert "0 new, 0 changed, 3 unchanged" in again.output
        assert snapshot(sqlite_url) == before

        # The same outcomes as JSON are the same outcomes.
        items = [
            {"account_id": "acme", "kind": "renewal", "effective_on": "2026-03-01",
             "new_mrr": 1200, "new_term_end": "2027-03-01"},
            {"account_id": "acme", "kind": "expansion", "effective_on": "2026-04-15",
             "reason": "more seats", "mrr_delta": 1250.5},
            {"account_id": "globex", "kind": "cancellation", "effective_on": "2026-05-31",
             "reason": "budget cut", "mrr_lost": 300},
        ]  # fmt: skip
        as_json = write(tmp_path, "outcomes.json", json.dumps({"outcomes": items}))
        third = invoke(sqlite_url, "--outcomes", str(as_json))
        assert third.exit_code == 0, third.output
        assert "3 unchanged" in third.output
        assert snapshot(sqlite_url) == before

    def test_a_bad_file_names_line_and_field_and_records_nothing(
        self, sqlite_url: str, tmp_path: Path
    ) -> None:
        accounts = write(tmp_path, "accounts.csv", ACCOUNTS)
        bad = write(
            tmp_path,
            "outcomes.csv",
            OUTCOMES + "acme,contraction,2026-05-01,,,,,200\n",
        )
        result = invoke(sqlite_url, str(accounts), "--outcomes", str(bad))
        assert result.exit_code == 1
        assert "line 5, field mrr_delta: a contraction lowers MRR" in result.output
        assert query(sqlite_url, "SELECT count(*) FROM outcomes") == [(0,)]
        assert query(sqlite_url, "SELECT count(*) FROM accounts") == [(0,)]

    def test_an_unknown_account_records_nothing(self, sqlite_url: str, tmp_path: Path) -> None:
        outcomes = write(tmp_path, "outcomes.csv", OUTCOMES)
        result = invoke(sqlite_url, "--outcomes", str(outcomes))
        assert result.exit_code == 1
        assert "account_id: no such account: 'acme', 'globex'" in result.output
        assert "import their profiles first" in result.output
        assert query(sqlite_url, "SELECT count(*) FROM outcomes") == [(0,)]

    def test_neither_file_is_a_usage_error(self, sqlite_url: str) -> None:
        result = invoke(sqlite_url)
        assert result.exit_code == 2
        assert "--outcomes" in result.output

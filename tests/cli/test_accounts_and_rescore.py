"""`tend accounts import` and `tend rescore [--as-of] [--dry-run --config]` on a real database
(SQLite file; the same commands run on PostgreSQL through the same code)."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from services.cli import main
from services.scorer.writer import RollupWriter
from shared.db.session import create_engine, create_sessionmaker
from tests.scorer.synthetic import KEY_FEATURES, Archetype, Replay, generate
from tests.support.sqlite import migrated_sqlite

# A real database file and whole scoring runs: seconds per test, not the fast lane.
pytestmark = pytest.mark.integration

EXPECTED_BANDS = {
    Archetype.HEALTHY_GROWING: "green",
    Archetype.HEALTHY_STEADY: "green",
    Archetype.PLATEAUING: "yellow",
    Archetype.DECLINING: "yellow",
    Archetype.DORMANT: "red",
    Archetype.ABANDONS_FEATURE: "green",
    Archetype.NEVER_ADOPTS: "green",
}


@pytest.fixture
def migrated_db(tmp_path: Path) -> Path:
    path = tmp_path / "tend.db"
    migrated_sqlite(path)
    return path


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "tend.yaml"
    path.write_text(f"key_features: [{', '.join(KEY_FEATURES)}]\n")
    return path


def invoke(migrated_db: Path, *args: str, config: Path | None = None) -> Result:
    env = {
        "TEND_DATABASE_URL": f"sqlite+aiosqlite:///{migrated_db}",
        "TEND_KAFKA_BOOTSTRAP": None,
        "TEND_API_TOKEN": None,
        "TEND_CONFIG": str(config) if config else None,
    }
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def query(migrated_db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(migrated_db) as conn:
        return list(conn.execute(sql, params))


def replayed(migrated_db: Path) -> Replay:
    """The synthetic archetypes written into the database's rollups (no scores yet)."""
    replay = generate(uuid.uuid4().hex[:8])

    async def write() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{migrated_db}")
        sessions = create_sessionmaker(engine)
        async with sessions() as session, session.begin():
            await RollupWriter().flush(session, "cli-test", replay.events, {})
        await engine.dispose()

    asyncio.run(write())
    return replay


class TestAccountsImport:
    def test_imports_a_good_file(self, migrated_db: Path, tmp_path: Path) -> None:
        csv_file = tmp_path / "accounts.csv"
        csv_file.write_text(
            "account_id,name,plan,seats,mrr,renewal_date,csm_email\n"
            'acme,Acme Inc,pro,120,"4,500",2027-03-31,ann@vendor.example\n'
            "globex,Globex,team,15,900,,bob@vendor.example\n"
            "\n"
            "initech,Initech,,,,2027-01-15,\n"
        )
        result = invoke(migrated_db, "accounts", "import", str(csv_file))
        assert result.exit_code == 0, result.output
        assert "Imported 3 account(s)" in result.output
        rows = query(
            migrated_db,
            "SELECT account_id, name, plan, seats, mrr, renewal_date, csm_email "
            "FROM accounts ORDER BY account_id",
        )
        assert rows == [
            ("acme", "Acme Inc", "pro", 120, 4500.0, "2027-03-31", "ann@vendor.example"),
            ("globex", "Globex", "team", 15, 900.0, None, "bob@vendor.example"),
            ("initech", "Initech", None, None, None, "2027-01-15", None),
        ]

        # A second file updates only the columns it gives.
        update = tmp_path / "seats.csv"
        update.write_text("account_id,seats\nacme,150\n")
        assert invoke(migrated_db, "accounts", "import", str(update)).exit_code == 0
        assert query(migrated_db, "SELECT seats, plan FROM accounts WHERE account_id='acme'") == [
            (150, "pro")
        ]

    def test_imported_accounts_are_scored_at_once(
        self, migrated_db: Path, config_file: Path, tmp_path: Path
    ) -> None:
        replay = replayed(migrated_db)  # events in the rollups, never scored
        assert query(migrated_db, "SELECT count(*) FROM health_scores") == [(0,)]
        csv_file = tmp_path / "accounts.csv"
        ids = [a.account_id for a in replay.accounts]
        csv_file.write_text("account_id,seats\n" + "".join(f"{a},25\n" for a in ids))
        result = invoke(migrated_db, "accounts", "import", str(csv_file), config=config_file)
        assert result.exit_code == 0, result.output
        assert f"Scored {len(ids)} account(s) now; published " in result.output
        scored = query(
            migrated_db, "SELECT account_id FROM accounts WHERE score IS NOT NULL AND NOT dirty"
        )
        assert sorted(a for (a,) in scored) == sorted(ids)
        # ... and published for the alerts service (the in-process bus of this database).
        published = query(
            migrated_db, "SELECT count(*) FROM bus_records WHERE topic = 'tend.scores.v1'"
        )
        assert published[0][0] >= len(ids)

    def test_a_bad_file_names_line_and_column_and_imports_nothing(
        self, migrated_db: Path, tmp_path: Path
    ) -> None:
        csv_file = tmp_path / "accounts.csv"
        csv_file.write_text(
            "account_id,seats,renewal_date\n"
            "acme,120,2027-03-31\n"
            "globex,many,2027-01-01\n"
            "initech,10,next spring\n"
        )
        result = invoke(migrated_db, "accounts", "import", str(csv_file))
        assert result.exit_code == 1
        # One problem a line, each with its line and column.
        assert result.output.splitlines() == [
            f"tend: 2 problem(s) in {csv_file}; nothing imported:",
            "  line 3, column seats: 'many' is not a number",
            "  line 4, column renewal_date: 'next spring' is not an ISO date (YYYY-MM-DD)",
        ]
        assert query(migrated_db, "SELECT count(*) FROM accounts") == [(0,)]

    def test_unknown_column_is_reported_on_line_1(self, migrated_db: Path, tmp_path: Path) -> None:
        csv_file = tmp_path / "accounts.csv"
        csv_file.write_text("account_id,colour\nacme,red\n")
        result = invoke(migrated_db, "accounts", "import", str(csv_file))
        assert result.exit_code == 1
        assert "line 1, column colour: unknown column" in result.output


class TestRescore:
    def test_as_of_scores_every_account_on_that_day(
        self, migrated_db: Path, config_file: Path
    ) -> None:
        replay = replayed(migrated_db)
        day = replay.end.isoformat()
        result = invoke(migrated_db, "rescore", "--as-of", day, config=config_file)
        assert result.exit_code == 0, result.output
        assert f"Scored 7 account(s) as of {day}" in result.output
        scored = dict(
            query(migrated_db, "SELECT account_id, band FROM health_scores WHERE as_of=?", day)
        )
        assert scored == {a.account_id: EXPECTED_BANDS[a.archetype] for a in replay.accounts}
        current = dict(query(migrated_db, "SELECT account_id, scored_as_of FROM accounts"))
        assert set(current.values()) == {day}
        # Published on the in-process bus (no TEND_KAFKA_BOOTSTRAP): one score per account.
        assert query(
            migrated_db, "SELECT count(*) FROM bus_records WHERE topic='tend.scores.v1'"
        ) == [(7,)]

    def test_bad_as_of_is_a_usage_error(self, migrated_db: Path) -> None:
        result = invoke(migrated_db, "rescore", "--as-of", "15/11/2026")
        assert result.exit_code == 2
        assert "--as-of: '15/11/2026' is not a date" in result.output

    def test_dry_run_lists_band_changes_and_writes_nothing(
        self, migrated_db: Path, config_file: Path, tmp_path: Path
    ) -> None:
        replay = replayed(migrated_db)
        day = replay.end.isoformat()
        assert invoke(migrated_db, "rescore", "--as-of", day, config=config_file).exit_code == 0
        stricter = tmp_path / "stricter.yaml"
        stricter.write_text(
            f"key_features: [{', '.join(KEY_FEATURES)}]\n"
            "scoring:\n  bands:\n    green: 95\n    yellow: 70\n"
        )

        def snapshot() -> tuple[list[tuple[Any, ...]], ...]:
            return (
                query(migrated_db, "SELECT * FROM health_scores ORDER BY account_id, as_of"),
                query(migrated_db, "SELECT * FROM accounts ORDER BY account_id"),
                query(migrated_db, "SELECT count(*) FROM bus_records"),
            )

        before = snapshot()
        result = invoke(
            migrated_db,
            "rescore",
            "--dry-run",
            "--as-of",
            day,
            "--config",
            str(stricter),
            config=config_file,
        )
        assert result.exit_code == 0, result.output
        assert snapshot() == before
        assert "(dry run: nothing was written or published)" in result.output

        # Under green >= 95 and yellow >= 70 the healthy accounts scoring 70-95 turn yellow
        # and the yellow ones red; the dormant one stays red.
        scores = dict(query(migrated_db, "SELECT account_id, score FROM accounts"))
        bands = dict(query(migrated_db, "SELECT account_id, band FROM accounts"))

        def strict_band(score: float) -> str:
            return "green" if score >= 95 else "yellow" if score >= 70 else "red"

        changing = sorted(a for a, s in scores.items() if strict_band(s) != bands[a])
        assert changing  # the stricter model does change something
        assert f"{len(changing)} of 7 accounts would change band" in result.output
        for account in changing:
            assert f"  {account}: {bands[account]} ({scores[account]:.1f}) -> " in result.output
        assert f"Live model: {config_file} (TEND_CONFIG)" in result.output
        assert f"New model:  {stricter} (--config)" in result.output
        assert "None" not in result.output
        dormant = next(a.account_id for a in replay.accounts if a.archetype is Archetype.DORMANT)
        assert dormant not in result.output

    def test_dry_run_judges_both_models_as_of_the_same_past_day(
        self, migrated_db: Path, config_file: Path, tmp_path: Path
    ) -> None:
        replay = replayed(migrated_db)
        past, end = replay.end - timedelta(days=42), replay.end
        for day in (past, end):
            result = invoke(migrated_db, "rescore", "--as-of", day.isoformat(), config=config_file)
            assert result.exit_code == 0, result.output
        then = dict(
            query(
                migrated_db, "SELECT account_id, band FROM health_scores WHERE as_of=?", str(past)
            )
        )
        now = dict(query(migrated_db, "SELECT account_id, band FROM accounts"))
        assert then != now  # bands moved since: the current band is not the past day's

        def dry_run(model: Path) -> Result:
            return invoke(
                migrated_db,
                "rescore",
                "--dry-run",
                "--as-of",
                past.isoformat(),
                "--config",
                str(model),
                config=config_file,
            )

        same = dry_run(config_file)
        assert same.exit_code == 0, same.output
        assert f"as of {past}: 0 of 7 accounts would change band" in same.output
        for band in set(then.values()):
            n = sum(1 for b in then.values() if b == band)
            assert f"  {band:<8} {n:>5} {n:>6}" in same.output

        stricter = tmp_path / "stricter.yaml"
        stricter.write_text(
            f"key_features: [{', '.join(KEY_FEATURES)}]\n"
            "scoring:\n  bands:\n    green: 95\n    yellow: 70\n"
        )
        result = dry_run(stricter)
        assert result.exit_code == 0, result.output
        scores = dict(
            query(
                migrated_db, "SELECT account_id, score FROM health_scores WHERE as_of=?", str(past)
            )
        )
        moves: dict[tuple[str, str], int] = {}
        for account, score in scores.items():
            if score is None:
                continue
            band = "green" if score >= 95 else "yellow" if score >= 70 else "red"
            if band != then[account]:
                moves[(then[account], band)] = moves.get((then[account], band), 0) + 1
        assert moves
        for (was, new), n in moves.items():
            assert f"  {was} -> {new}: {n}" in result.output

    def test_dry_run_names_the_models_and_never_prints_none(
        self, migrated_db: Path, tmp_path: Path
    ) -> None:
        # Accounts with no activity yet have no score: shown as words, not Python's None.
        csv_file = tmp_path / "accounts.csv"
        csv_file.write_text("account_id,name\nquiet,Quiet\n")
        assert invoke(migrated_db, "accounts", "import", str(csv_file)).exit_code == 0
        other = tmp_path / "other.yaml"
        other.write_text("scoring:\n  bands:\n    green: 95\n    yellow: 70\n")
        result = invoke(migrated_db, "rescore", "--dry-run", "--config", str(other))
        assert result.exit_code == 0, result.output
        assert "Live model: the built-in defaults (TEND_CONFIG is not set)" in result.output
        assert f"New model:  {other} (--config)" in result.output
        assert "None" not in result.output
        alone = invoke(migrated_db, "rescore", "--dry-run")
        assert alone.exit_code == 0, alone.output
        assert "New model:  the live model again" in alone.output
        assert "give --config FILE" in alone.output
        assert "None" not in alone.output

    def test_dry_run_with_a_bad_config_names_the_key(
        self, migrated_db: Path, tmp_path: Path
    ) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text("scoring:\n  weights_typo: 1\n")
        result = invoke(migrated_db, "rescore", "--dry-run", "--config", str(bad))
        assert result.exit_code == 2
        assert "scoring.weights_typo" in result.output

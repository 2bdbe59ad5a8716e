"""A failed start changes nothing: `tend up`, `tend scorer`, `tend alerts`, `tend ingest` and
`tend web` on a port that is already taken exit before they write, leaving a database with
scores, alerts and no write key exactly as it was (a second `tend up` used to re-score every
account with its own model, and create a write key, before failing on the port)."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import TansuBroker
from tests.support.commands import run_tend
from tests.web.console_data import seed

REPO = Path(__file__).resolve().parents[2]
TOKEN = "failed-start-test-token-0123456789abcdef"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def scored_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file with accounts, daily scores and alerts, and no write key."""
    path = tmp_path_factory.mktemp("failed-start") / "tend.db"

    async def build() -> None:
        seeded = await seed(str(path), prefix="fs")
        await seeded.close()

    asyncio.run(build())
    return path


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another process is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


def tend(args: list[str], db: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TEND_")}
    environment.update(
        TEND_DATABASE_URL=f"sqlite+aiosqlite:///{db}",
        TEND_API_TOKEN=TOKEN,
        # Another scoring model than the seed's: a re-score would move every score.
        TEND_CONFIG=str(REPO / "deploy" / "tend.yaml"),
        **env,
    )
    return run_tend(args, environment)


class TestBusyPort:
    def test_tend_up_writes_nothing(self, scored_db: Path, busy_port: int) -> None:
        before = dump(scored_db)
        assert any('INSERT INTO "health_scores"' in line for line in before)
        done = tend(["up", "--port", str(busy_port)], scored_db)
        assert done.returncode == 3, done.stdout + done.stderr
        assert f"cannot listen on 127.0.0.1:{busy_port}" in done.stderr
        assert "write key" not in done.stdout
        assert dump(scored_db) == before

    @pytest.mark.parametrize("command", ["scorer", "alerts", "ingest", "web"])
    def test_services_write_nothing(
        self, scored_db: Path, busy_port: int, broker: TansuBroker, command: str
    ) -> None:
        before = dump(scored_db)
        done = tend(
            [command, "--port", str(busy_port)],
            scored_db,
            TEND_KAFKA_BOOTSTRAP=broker.bootstrap,
        )
        assert done.returncode == 3, done.stdout + done.stderr
        assert f"cannot listen on 127.0.0.1:{busy_port}" in done.stderr
        assert dump(scored_db) == before

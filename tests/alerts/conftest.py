"""Fixtures shared by the alerts tests: a loopback SMTP server and a fresh database of the
test's own on PostgreSQL and on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from shared.db.migrate import upgrade_async
from tests.alerts.servers import SmtpServer
from tests.support.postgres import create_database, drop_database


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest_asyncio.fixture(params=["postgresql", "sqlite"])
async def own_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, migrated database for one test (a dispatcher claims every due row of its
    database, so tests that dispatch do not share one)."""
    if request.param == "postgresql":
        url = await create_database("tend_alerts_own")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    await upgrade_async(url)
    yield url
    if request.param == "postgresql":
        await drop_database(url)

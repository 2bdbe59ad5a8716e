"""Fixtures shared by the alerts tests: loopback Slack and SMTP servers, the run's database or
a fresh SQLite file, and a fresh database of the test's own on PostgreSQL and on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.migrate import upgrade_async
from shared.db.session import create_engine, create_sessionmaker
from tests.alerts.servers import SlackWebhookServer, SmtpServer
from tests.support.postgres import create_database, drop_database


@pytest.fixture
def slack() -> Iterator[SlackWebhookServer]:
    server = SlackWebhookServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest_asyncio.fixture(params=["postgresql", "sqlite"])
async def db(
    request: pytest.FixtureRequest,
    pg_sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The run's PostgreSQL database (unique account ids keep tests apart) or a fresh SQLite
    file (what `tend up` uses)."""
    if request.param == "postgresql":
        yield pg_sessions
        return
    url = f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    await upgrade_async(url)
    engine = create_engine(url)
    yield create_sessionmaker(engine)
    await engine.dispose()


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

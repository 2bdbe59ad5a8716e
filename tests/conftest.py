"""Session fixtures with real components: the tansu broker and a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db.migrate import upgrade_async
from shared.db.session import create_engine, create_sessionmaker
from tests.support.broker import TansuBroker
from tests.support.postgres import create_database, drop_database


@pytest.fixture(scope="session")
def broker() -> Iterator[TansuBroker]:
    """The session's Kafka-protocol broker on a free loopback port."""
    b = TansuBroker()
    b.start()
    yield b
    b.stop()


@pytest.fixture
def own_broker() -> Iterator[TansuBroker]:
    """A broker for one test, empty at start: what a consumer reads is this test's records."""
    b = TansuBroker()
    b.start()
    yield b
    b.stop()


@pytest_asyncio.fixture(scope="session")
async def pg_url() -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database for this test run."""
    url = await create_database()
    await upgrade_async(url)
    yield url
    await drop_database(url)


@pytest_asyncio.fixture(scope="session")
async def pg_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def pg_sessions(pg_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(pg_engine)


@pytest_asyncio.fixture
async def sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A fresh, migrated SQLite file for one test."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'tend.db'}"
    await upgrade_async(url)
    return url

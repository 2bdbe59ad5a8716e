"""Database fixtures of the scorer tests: every DB test runs on PostgreSQL and on SQLite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.migrate import upgrade_async
from shared.db.session import create_engine, create_sessionmaker
from shared.events import CanonicalEvent


@pytest_asyncio.fixture(params=["postgresql", "sqlite"])
async def db(
    request: pytest.FixtureRequest,
    pg_sessions: async_sessionmaker[AsyncSession],
    tmp_path: Any,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the run's PostgreSQL database (shared: use :func:`uid` ids) or on a fresh
    SQLite file."""
    if request.param == "postgresql":
        yield pg_sessions
        return
    url = f"sqlite+aiosqlite:///{tmp_path / 'scorer.db'}"
    await upgrade_async(url)
    engine = create_engine(url)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def uid() -> str:
    """A prefix that keeps this test's account, user and event ids apart from other tests'."""
    return uuid.uuid4().hex[:10]


def create_event(
    event_id: str,
    *,
    type: str = "track",
    account_id: str | None = "acme",
    user_id: str | None = "u1",
    at: datetime | str = "2026-11-02T10:00:00+00:00",
    name: str | None = "Clicked",
    feature: str | None = None,
    is_login: bool = False,
    traits: dict[str, Any] | None = None,
    received_at: datetime | None = None,
) -> CanonicalEvent:
    occurred = datetime.fromisoformat(at) if isinstance(at, str) else at
    return CanonicalEvent(
        event_id=event_id,
        type=type,
        account_id=account_id,
        user_id=user_id,
        name=name,
        feature=feature,
        is_login=is_login,
        occurred_at=occurred,
        received_at=received_at or occurred.astimezone(UTC),
        traits=traits or {},
    )

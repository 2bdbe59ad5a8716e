"""The web service's app (services.web.app.create_app) in process, for the outcomes tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time

import httpx
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.web.app import create_app
from shared.clock import FixedClock
from shared.config import TendConfig
from shared.settings import Settings

TOKEN = "outcomes-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=UTC)


@asynccontextmanager
async def web_client(
    sessions: async_sessionmaker[AsyncSession],
    clock: FixedClock,
    config: TendConfig | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the web app on ``sessions``, signed with the API token."""
    app = create_app(
        Settings(api_token=SecretStr(TOKEN)), config=config, sessions=sessions, clock=clock
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://tend.test", headers=AUTH
    ) as client:
        yield client

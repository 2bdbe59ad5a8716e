"""What the web service's routes take from the app: a database session, the clock, the outcomes
policy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.clock import Clock, SystemClock
from shared.config import TendConfig
from shared.outcomes.model import OutcomesPolicy
from shared.webhooks.endpoints import WebhooksConfig


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session of ``app.state.sessions`` for one request (the route commits, if it writes)."""
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(db_session)]


def clock_of(request: Request) -> Clock:
    """``app.state.clock`` when the app was given one (tests, replays), else the system's."""
    clock: Clock | None = getattr(request.app.state, "clock", None)
    return clock or SystemClock()


def policy_of(request: Request) -> OutcomesPolicy:
    """The ``outcomes:`` block of the app's config (stages, lifetime value), else the defaults."""
    config: TendConfig | None = getattr(request.app.state, "config", None)
    return config.outcomes if config is not None else OutcomesPolicy()


def webhooks_of(request: Request) -> WebhooksConfig | None:
    """The ``webhooks:`` block of the app's config: manual alert moves write their events."""
    config: TendConfig | None = getattr(request.app.state, "config", None)
    return config.webhooks if config is not None else None

"""What the web service's routes take from the app: a database session, the clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.clock import Clock, SystemClock


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

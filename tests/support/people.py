"""People for web tests: one added to a database, and a console sign-in."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.people.directory import add_person

ADMIN = "admin@tend.example"
PASSWORD = "a-test-password-of-tend"


async def add_people(
    sessions: async_sessionmaker[AsyncSession], people: dict[str, str], password: str = PASSWORD
) -> None:
    """Add each ``{email: role}`` with ``password``; one already there is kept."""
    from shared.people.directory import find_person

    async with sessions() as session, session.begin():
        for email, role in people.items():
            if await find_person(session, email) is None:
                await add_person(session, email, email.split("@")[0].title(), role, password)


async def sign_in(
    client: httpx.AsyncClient,
    email: str = ADMIN,
    next_url: str = "/console/",
    password: str = PASSWORD,
) -> httpx.Response:
    """Post the console's sign-in form."""
    return await client.post(
        "/console/login", data={"email": email, "password": password, "next": next_url}
    )

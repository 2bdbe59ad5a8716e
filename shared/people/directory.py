"""The people who sign in, and their personal API tokens (stored as SHA-256, shown once).

Repository functions never commit; the caller (CLI command, request) owns the transaction.
Changes that the audit log records are recorded by the caller, who knows the actor.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import ConsoleSignIn, Person, PersonalToken
from shared.db.types import utcnow
from shared.people.caller import ROLES, Caller, Role
from shared.people.passwords import hash_password

TOKEN_PREFIX = "tend_pt_"
MAX_EMAIL = 320


class PeopleError(ValueError):
    """A change that cannot be made; the message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def normal_email(email: str) -> str:
    value = email.strip().lower()
    if not value or "@" not in value or len(value) > MAX_EMAIL or any(c.isspace() for c in value):
        raise PeopleError("email", "must be an email address")
    return value


def check_role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise PeopleError("role", f"{role!r} is not one of {', '.join(ROLES)}")


def generate_password() -> str:
    return secrets.token_urlsafe(15)  # 20 characters


async def add_person(
    session: AsyncSession, email: str, name: str, role: str, password: str | None
) -> Person:
    """A new person (email unique, case-insensitive); ``password`` None: OIDC sign-in only."""
    address = normal_email(email)
    if await find_person(session, address) is not None:
        raise PeopleError("email", f"{address} already exists")
    try:
        hashed = hash_password(password) if password is not None else None
    except ValueError as err:
        raise PeopleError("password", str(err)) from None
    person = Person(
        email=address,
        name=name.strip()[:200] or address,
        role=check_role(role),
        password_hash=hashed,
    )
    session.add(person)
    await session.flush()
    return person


async def find_person(session: AsyncSession, email: str) -> Person | None:
    found: Person | None = await session.scalar(
        select(Person).where(Person.email == email.strip().lower())
    )
    return found


async def list_people(session: AsyncSession) -> Sequence[Person]:
    return (await session.scalars(select(Person).order_by(Person.id))).all()


async def count_people(session: AsyncSession) -> int:
    return len((await session.scalars(select(Person.id).limit(1))).all())


async def set_role(session: AsyncSession, person: Person, role: str) -> None:
    person.role = check_role(role)


async def set_password(session: AsyncSession, person: Person, password: str) -> None:
    try:
        person.password_hash = hash_password(password)
    except ValueError as err:
        raise PeopleError("password", str(err)) from None


async def disable(session: AsyncSession, person: Person, now: datetime | None = None) -> None:
    """Disable a person: their sessions end now (rows deleted; every request also checks
    ``disabled_at``) and their tokens stop working with them."""
    if person.disabled_at is None:
        person.disabled_at = now or utcnow()
    await session.execute(delete(ConsoleSignIn).where(ConsoleSignIn.person_id == person.id))


async def enable(session: AsyncSession, person: Person) -> None:
    person.disabled_at = None


def caller_of(person: Person, read_all: bool = False) -> Caller:
    return Caller(
        role=check_role(person.role),
        email=person.email,
        name=person.name,
        person_id=person.id,
        read_all=read_all,
    )


# -- personal API tokens ----------------------------------------------------------------------


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    session: AsyncSession, person_id: int, name: str
) -> tuple[PersonalToken, str]:
    """A new token of a person; returns the row and the plaintext (shown this once)."""
    label = name.strip()
    if not label or len(label) > 200:
        raise PeopleError("name", "give a name of 1 to 200 characters")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = PersonalToken(
        person_id=person_id, name=label, token_hash=hash_token(plaintext), prefix=plaintext[:12]
    )
    session.add(row)
    await session.flush()
    return row, plaintext


async def list_tokens(session: AsyncSession, person_id: int) -> Sequence[PersonalToken]:
    return (
        await session.scalars(
            select(PersonalToken)
            .where(PersonalToken.person_id == person_id)
            .order_by(PersonalToken.id)
        )
    ).all()


async def revoke_token(
    session: AsyncSession, person_id: int | None, token_id: int
) -> PersonalToken | None:
    """Revoke a token of ``person_id`` (None: of anyone, for an admin); None when there is no
    such token. Idempotent."""
    row = await session.get(PersonalToken, token_id)
    if row is None or (person_id is not None and row.person_id != person_id):
        return None
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


async def person_of_token(session: AsyncSession, token: str) -> Person | None:
    """The enabled person an unrevoked token belongs to, looked up by the token's hash."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    found: Person | None = await session.scalar(
        select(Person)
        .join(PersonalToken, PersonalToken.person_id == Person.id)
        .where(
            PersonalToken.token_hash == hash_token(token),
            PersonalToken.revoked_at.is_(None),
            Person.disabled_at.is_(None),
        )
    )
    return found


async def revoke_all_tokens(session: AsyncSession, person_id: int) -> None:
    await session.execute(
        update(PersonalToken)
        .where(PersonalToken.person_id == person_id, PersonalToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )

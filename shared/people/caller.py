"""Who is calling, and what they may see: the role and the book.

``admin`` manages keys, people and settings and sees everything; ``leader`` sees every account
and the retention and backtest pages; ``csm`` sees their book, the accounts whose profile names
their email as CSM (and, when ``TEND_PEOPLE__CSM_READ_ALL`` is on, reads the others without
acting on them). The admin token (``TEND_API_TOKEN``) calls as an admin without a person.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, func, select

from shared.db.models import Account, Alert

Role = Literal["admin", "leader", "csm"]
ROLES: tuple[Role, ...] = ("admin", "leader", "csm")
ADMIN_TOKEN_ACTOR = "api-token"


@dataclass(frozen=True, slots=True)
class Caller:
    """The person behind a request (``person_id`` None: the admin token or the CLI)."""

    role: Role
    email: str
    name: str
    person_id: int | None = None
    read_all: bool = False
    """A CSM who may read accounts outside their book (``TEND_PEOPLE__CSM_READ_ALL``)."""

    @property
    def sees_all(self) -> bool:
        return self.role != "csm"

    @property
    def reads_all(self) -> bool:
        return self.sees_all or self.read_all

    @property
    def actor(self) -> str:
        """How the audit log names them."""
        return self.email

    def book(self) -> str | None:
        """The CSM email their reads are limited to; None: every account."""
        return None if self.reads_all else self.email

    def write_book(self) -> str | None:
        """The CSM email their alert moves are limited to; None: every account."""
        return None if self.sees_all else self.email


ADMIN_TOKEN = Caller(role="admin", email=ADMIN_TOKEN_ACTOR, name="the admin token")
CLI = Caller(role="admin", email="cli", name="the tend command")


def in_book(book: str) -> ColumnElement[bool]:
    """Accounts whose profile names ``book`` (lower case) as CSM email."""
    return func.lower(func.trim(Account.csm_email)) == book


def book_ids(book: str) -> Select[Any]:
    return select(Account.account_id).where(in_book(book))


def alerts_in_book(book: str) -> ColumnElement[bool]:
    return Alert.account_id.in_(book_ids(book))


def owns(book: str | None, account: Any) -> bool:
    """Whether an account row is inside ``book`` (None: every account is)."""
    if book is None:
        return True
    email = getattr(account, "csm_email", None)
    return email is not None and email.strip().lower() == book

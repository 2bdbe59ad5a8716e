"""Accounts: one, a page of them (read API), a filtered portfolio (console), their CSMs and
the names of their people."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Account, User
from shared.people.caller import in_book

SortKey = Literal["score", "-score", "mrr", "-mrr", "renewal", "-renewal", "name", "-name"]
_SORT_COLUMNS: dict[str, Any] = {
    "score": Account.score,
    "mrr": Account.mrr,
    "renewal": Account.renewal_date,
    "name": Account.name,
}


@dataclass(frozen=True, slots=True)
class AccountFilter:
    """Which accounts: of a CSM (email or Slack handle), in a band, renewing in a window,
    among given ids."""

    csm: str | None = None
    band: str | None = None
    renewal_from: date | None = None
    renewal_to: date | None = None
    account_ids: tuple[str, ...] | None = None
    """Only these accounts (e.g. those in a lifecycle stage); None: no such limit."""
    book: str | None = None
    """Only the book of this CSM email (the caller's scope, ``shared.people``); None: all."""

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        if self.book is not None:
            stmt = stmt.where(in_book(self.book))
        if self.csm:
            stmt = stmt.where((Account.csm_email == self.csm) | (Account.csm_slack == self.csm))
        if self.band:
            stmt = stmt.where(Account.band == self.band)
        if self.renewal_from is not None:
            stmt = stmt.where(Account.renewal_date >= self.renewal_from)
        if self.renewal_to is not None:
            stmt = stmt.where(Account.renewal_date <= self.renewal_to)
        if self.account_ids is not None:
            stmt = stmt.where(Account.account_id.in_(self.account_ids))
        return stmt

    def ids(self) -> Select[tuple[str]]:
        """The matching account ids, as a subquery for ``IN`` (no list of ids in Python)."""
        return self.apply(select(Account.account_id))


async def get_account(session: AsyncSession, account_id: str) -> Account | None:
    return await session.get(Account, account_id)


async def list_accounts(
    session: AsyncSession,
    where: AccountFilter,
    *,
    sort: SortKey = "score",
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[Account]]:
    """The total matching and one page, by ``sort`` (``-`` descending; nulls last), then id."""
    column = _SORT_COLUMNS[sort.lstrip("-")]
    ordering = column.desc() if sort.startswith("-") else column.asc()
    stmt = where.apply(select(Account))
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    stmt = stmt.order_by(ordering.nulls_last(), Account.account_id)
    rows = (await session.scalars(stmt.limit(limit).offset(offset))).all()
    return int(total or 0), list(rows)


async def find_accounts(session: AsyncSession, where: AccountFilter) -> list[Account]:
    """Every matching account, unordered (the caller sorts by what it shows)."""
    return list(await session.scalars(where.apply(select(Account))))


async def csm_names(session: AsyncSession) -> list[str]:
    """The CSMs accounts name (email, else Slack handle), sorted; a webhook URL names no one
    and is a secret, so it is left out."""
    csm = func.coalesce(Account.csm_email, Account.csm_slack)
    found = await session.scalars(select(csm).where(csm.is_not(None)).distinct())
    return sorted(c for c in found if c and "://" not in c)


async def csm_display_names(session: AsyncSession) -> dict[str, str]:
    """The CSM's name (the account trait ``csm_name``, as the reports show it) by the contact
    accounts name the CSM with (email, else Slack handle)."""
    contact = func.coalesce(Account.csm_email, Account.csm_slack)
    name = Account.traits["csm_name"].as_string()
    found = await session.execute(
        select(contact, name).where(contact.is_not(None), name.is_not(None)).distinct()
    )
    return {c: n.strip() for c, n in found if c and n and n.strip() and "://" not in c}


def person_name(traits: dict[str, Any] | None) -> str | None:
    """A user's name from their traits: ``name``, else first and last name, else email."""
    t = traits if isinstance(traits, dict) else {}
    full = " ".join(
        str(t[k]).strip() for k in ("firstName", "lastName") if isinstance(t.get(k), str)
    )
    for candidate in (t.get("name"), full, t.get("email")):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return None


async def user_names(
    session: AsyncSession, people: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """The names of the given ``(account_id, user_id)`` people where their traits name them."""
    if not people:
        return {}
    accounts = sorted({a for a, _ in people})
    users = sorted({u for _, u in people})
    found = await session.execute(
        select(User.account_id, User.user_id, User.traits).where(
            User.account_id.in_(accounts), User.user_id.in_(users)
        )
    )
    wanted = set(people)
    return {
        (a, u): name
        for a, u, traits in found
        if (a, u) in wanted and (name := person_name(traits)) is not None
    }


async def current_health(
    session: AsyncSession, account_ids: Sequence[str]
) -> dict[str, tuple[float | None, str | None]]:
    """Each account's current score and band."""
    if not account_ids:
        return {}
    found = await session.execute(
        select(Account.account_id, Account.score, Account.band).where(
            Account.account_id.in_(sorted(set(account_ids)))
        )
    )
    return {a: (s, b) for a, s, b in found}

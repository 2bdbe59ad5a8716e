"""Accounts from a CSV file (``tend accounts import FILE``): parse strictly, then upsert.

The header names the columns: ``account_id`` (required) and any of ``name, plan, seats, mrr,
renewal_date, lifecycle_stage, created_at, csm_email, csm_slack, customer_emails, champion``
(``customer_emails``: one address or several separated by ``;``). An empty cell
leaves the stored value alone. Values are parsed as the scorer parses ``group`` traits, but a
value that cannot be parsed is an error here, not silently dropped: every error names its line
and column, and nothing is imported until the whole file is clean.

``champion`` (the user id of the account's champion, as the product sends it) and
``customer_emails`` (who receives the monthly report) come from here only, never from ``group``
traits: who the champion is and where the account's usage is mailed are the operator's word.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from shared.account_fields import ACCOUNT_FIELDS, ACCOUNT_PARSERS, parse_emails
from shared.db.models import Account
from shared.db.types import utcnow
from shared.db.upsert import insert_for

ACCOUNTS: Table = Account.__table__  # type: ignore[assignment]
MAX_ID = 200
IMPORT_FIELDS = (*ACCOUNT_FIELDS, "customer_emails", "champion")
COLUMNS = ("account_id", *IMPORT_FIELDS)


def _user_id(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("is blank")
    if len(text) > MAX_ID:
        raise ValueError(f"is longer than {MAX_ID} characters")
    return text


PARSERS: dict[str, Callable[[Any], Any]] = {
    **ACCOUNT_PARSERS,
    "customer_emails": parse_emails,
    "champion": _user_id,
}


@dataclass(frozen=True, slots=True)
class CsvProblem:
    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"


class AccountsCsvError(ValueError):
    """The file has problems; ``problems`` lists every one of them (line, column, why)."""

    def __init__(self, problems: Sequence[CsvProblem]) -> None:
        self.problems = list(problems)
        shown = "\n".join(f"  {p}" for p in self.problems[:50])
        more = len(self.problems) - 50
        suffix = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{len(self.problems)} problem(s) in the accounts CSV:\n{shown}{suffix}")


@dataclass(frozen=True, slots=True)
class AccountRow:
    account_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    """Parsed values of the non-empty cells (typed like the ``accounts`` columns)."""
    line: int = 0


def parse_accounts_csv(lines: Iterable[str]) -> list[AccountRow]:
    """Parse CSV text (an open file or lines); raises :class:`AccountsCsvError`."""
    reader = csv.reader(lines)
    problems: list[CsvProblem] = []
    try:
        header = next(reader)
    except StopIteration:
        raise AccountsCsvError([CsvProblem(1, None, "the file is empty")]) from None
    except csv.Error as err:
        raise AccountsCsvError([CsvProblem(1, None, f"not valid CSV ({err})")]) from None
    names = [h.strip().lstrip("\ufeff").strip().lower() for h in header]
    for name in names:
        if name not in COLUMNS:
            problems.append(
                CsvProblem(1, name or "(blank)", f"unknown column; expected {', '.join(COLUMNS)}")
            )
    dupes = {n for n in names if names.count(n) > 1}
    for name in sorted(dupes):
        problems.append(CsvProblem(1, name, "column appears more than once"))
    if "account_id" not in names:
        problems.append(CsvProblem(1, "account_id", "required column is missing"))
    if problems:
        raise AccountsCsvError(problems)

    rows: list[AccountRow] = []
    seen: dict[str, int] = {}
    try:
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(names):
                problems.append(
                    CsvProblem(line, None, f"has {len(cells)} cells, the header {len(names)}")
                )
                continue
            values = dict(zip(names, cells, strict=True))
            account_id = values.pop("account_id").strip()
            if not account_id:
                problems.append(CsvProblem(line, "account_id", "is required"))
            elif len(account_id) > MAX_ID:
                problems.append(
                    CsvProblem(line, "account_id", f"is longer than {MAX_ID} characters")
                )
            elif account_id in seen:
                problems.append(
                    CsvProblem(
                        line, "account_id", f"{account_id!r} already on line {seen[account_id]}"
                    )
                )
            else:
                seen[account_id] = line
            fields: dict[str, Any] = {}
            for column, raw in values.items():
                if not raw.strip():
                    continue
                try:
                    fields[column] = PARSERS[column](raw.strip())
                except ValueError as err:
                    problems.append(CsvProblem(line, column, str(err)))
            rows.append(AccountRow(account_id, fields, line))
    except csv.Error as err:
        problems.append(CsvProblem(reader.line_num, None, f"not valid CSV ({err})"))
    if problems:
        raise AccountsCsvError(problems)
    return rows


def read_accounts_csv(path: Path | str) -> list[AccountRow]:
    """Parse the file at ``path`` (UTF-8, with or without a byte-order mark)."""
    with Path(path).open(encoding="utf-8-sig", newline="") as f:
        return parse_accounts_csv(f)


async def import_accounts(session: AsyncSession, rows: Sequence[AccountRow]) -> int:
    """Upsert ``rows`` into ``accounts`` (only the columns each row gives) and mark them
    dirty, so the re-scorer picks up new seats or renewal dates. Never commits; returns the
    number of rows written."""
    now = utcnow()
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in rows:
        cols = tuple(c for c in IMPORT_FIELDS if c in r.fields)
        by_columns.setdefault(cols, []).append(
            {"account_id": r.account_id, **r.fields, "updated_at": now, "dirty": True}
        )
    for cols, values in by_columns.items():
        for start in range(0, len(values), 1000):
            stmt = insert_for(session, ACCOUNTS).values(values[start : start + 1000])
            set_ = {c: stmt.excluded[c] for c in (*cols, "updated_at", "dirty")}
            stmt = stmt.on_conflict_do_update(index_elements=["account_id"], set_=set_)
            await session.execute(stmt)
    return len(rows)

"""Outcomes from an operator's CSV or JSON file (what ``tend accounts import`` and the API call).

Columns (CSV header, or the keys of each JSON object); docs/retention.md has the full table:

=============  ==========================================================================
account_id     required; the account's id as the product sends it
kind           required; ``cancellation``, ``renewal``, ``expansion`` or ``contraction``
effective_on   required; the day the outcome takes effect, ``YYYY-MM-DD``
reason         cancellation: required (why they left); the other kinds: an optional note
mrr_lost       cancellation, optional: the MRR that ended (else the MRR history's figure)
new_mrr        renewal, required: the MRR from the renewal on
new_term_end   renewal, required: the new contract end, ``YYYY-MM-DD``, after effective_on
mrr_delta      expansion (> 0) or contraction (< 0), required: the change of MRR
=============  ==========================================================================

An empty cell (or a JSON ``null``) is an absent value; a value a kind does not use is an error,
not ignored. Nothing is returned until the whole file is clean: every problem names its row (the
CSV line, or the JSON item counted from 1) and its field. ``(account_id, kind, effective_on)``
may appear once per file; recording it again later replaces its values (idempotent re-import).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from shared.outcomes.model import (
    KINDS,
    CustomerOutcome,
    OutcomeKind,
    Source,
    outcome_problems,
)

COLUMNS = (
    "account_id",
    "kind",
    "effective_on",
    "reason",
    "mrr_lost",
    "new_mrr",
    "new_term_end",
    "mrr_delta",
)
REQUIRED_COLUMNS = ("account_id", "kind", "effective_on")
_MONEY = ("mrr_lost", "new_mrr", "mrr_delta")
_DATES = ("effective_on", "new_term_end")
_MAX_SHOWN = 50
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_GROUPED = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")


@dataclass(frozen=True, slots=True)
class ImportProblem:
    row: int
    """The CSV line (the header is line 1) or the JSON item (the first is 1); 0: the file."""
    field: str | None
    message: str
    unit: Literal["line", "item"] = "line"

    def __str__(self) -> str:
        where = f"{self.unit} {self.row}" if self.row else "the file"
        return (
            f"{where}, field {self.field}: {self.message}"
            if self.field
            else f"{where}: {self.message}"
        )


class OutcomeImportError(ValueError):
    """The file has problems; ``problems`` lists every one (row, field, why)."""

    def __init__(self, problems: Sequence[ImportProblem]) -> None:
        self.problems = list(problems)
        shown = "\n".join(f"  {p}" for p in self.problems[:_MAX_SHOWN])
        more = len(self.problems) - _MAX_SHOWN
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{len(self.problems)} problem(s) in the outcomes file:\n{shown}{tail}")


@dataclass(frozen=True, slots=True)
class ImportedOutcome:
    outcome: CustomerOutcome
    row: int


def _storable(text: str) -> str:
    # PostgreSQL text cannot hold NUL, and no driver can send a lone surrogate.
    if "\x00" in text:
        raise ValueError("contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains an invalid character (a lone surrogate)") from None
    return text


def _parse_date(value: Any) -> date:
    text = value.strip() if isinstance(value, str) else ""
    if _DATE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date written YYYY-MM-DD")


def _parse_money(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if _GROUPED.fullmatch(text):  # 1,250.50; but "1,5" is refused, not read as 15
            text = text.replace(",", "")
        try:
            number = float(text)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a number (write 1200.50, no currency sign)"
            ) from None
    else:
        raise ValueError(f"{value!r} is not a number")
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _parse_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not text")
    return _storable(value.strip())


def _parse_kind(value: Any) -> OutcomeKind:
    text = _parse_text(value).lower()
    for kind in KINDS:
        if text == kind:
            return kind
    raise ValueError(f"{value!r} is not one of {', '.join(KINDS)}")


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _parse_row(
    values: Mapping[str, Any], row: int, unit: Literal["line", "item"], source: Source
) -> tuple[CustomerOutcome | None, list[ImportProblem]]:
    problems: list[ImportProblem] = []
    parsed: dict[str, Any] = {}
    for name in COLUMNS:
        raw = values.get(name)
        if _is_empty(raw):
            continue
        try:
            if name in _MONEY:
                parsed[name] = _parse_money(raw)
            elif name in _DATES:
                parsed[name] = _parse_date(raw)
            elif name == "kind":
                parsed[name] = _parse_kind(raw)
            else:
                parsed[name] = _parse_text(raw)
        except ValueError as err:
            problems.append(ImportProblem(row, name, str(err), unit))
    bad = {p.field for p in problems}
    for name in REQUIRED_COLUMNS:
        if name not in parsed and name not in bad:
            problems.append(ImportProblem(row, name, "is required", unit))
    if any(name not in parsed for name in REQUIRED_COLUMNS):
        return None, problems
    # Check the kind's rules too, but say nothing more of a field already refused.
    outcome = CustomerOutcome(**parsed, source=source)
    problems.extend(
        ImportProblem(row, f, msg, unit) for f, msg in outcome_problems(outcome) if f not in bad
    )
    return (None if problems else outcome), problems


def _collect(
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    unit: Literal["line", "item"],
    source: Source,
    problems: list[ImportProblem],
) -> list[ImportedOutcome]:
    out: list[ImportedOutcome] = []
    seen: dict[tuple[str, str, date], int] = {}
    for row, values in rows:
        outcome, found = _parse_row(values, row, unit, source)
        problems.extend(found)
        if outcome is None:
            continue
        if outcome.key in seen:
            problems.append(
                ImportProblem(
                    row,
                    "effective_on",
                    f"the {outcome.kind} of {outcome.account_id!r} on this day is already on "
                    f"{unit} {seen[outcome.key]}",
                    unit,
                )
            )
            continue
        seen[outcome.key] = row
        out.append(ImportedOutcome(outcome, row))
    return out


def parse_outcomes_csv(lines: Iterable[str], *, source: Source = "import") -> list[ImportedOutcome]:
    """Parse CSV text (an open file or lines); raises :class:`OutcomeImportError`."""
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise OutcomeImportError([ImportProblem(0, None, "is empty")]) from None
    except csv.Error as err:
        raise OutcomeImportError([ImportProblem(1, None, f"is not valid CSV ({err})")]) from None
    names = [h.strip().lstrip("\ufeff").strip().lower() for h in header]
    problems = [
        ImportProblem(1, n or "(blank)", f"unknown column; the columns are {', '.join(COLUMNS)}")
        for n in names
        if n not in COLUMNS
    ]
    problems += [
        ImportProblem(1, n, "column appears more than once")
        for n in sorted({n for n in names if names.count(n) > 1})
    ]
    problems += [
        ImportProblem(1, n, "required column is missing")
        for n in REQUIRED_COLUMNS
        if n not in names
    ]
    if problems:
        raise OutcomeImportError(problems)

    def rows() -> Iterable[tuple[int, Mapping[str, Any]]]:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(names):
                problems.append(
                    ImportProblem(
                        reader.line_num, None, f"has {len(cells)} cells, the header {len(names)}"
                    )
                )
                continue
            yield reader.line_num, dict(zip(names, cells, strict=True))

    try:
        out = _collect(rows(), "line", source, problems)
    except csv.Error as err:
        problems.append(ImportProblem(reader.line_num, None, f"is not valid CSV ({err})"))
    if problems:
        raise OutcomeImportError(problems)
    return out


def parse_outcomes_json(
    data: str | bytes | Any, *, source: Source = "import"
) -> list[ImportedOutcome]:
    """Parse a JSON list of outcome objects, or ``{"outcomes": [...]}`` (text, or already
    decoded); raises :class:`OutcomeImportError`."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError as err:
            raise OutcomeImportError(
                [ImportProblem(0, None, f"is not valid JSON ({err})", "item")]
            ) from None
    if isinstance(data, dict) and set(data) == {"outcomes"}:
        data = data["outcomes"]
    if not isinstance(data, list):
        raise OutcomeImportError(
            [ImportProblem(0, None, 'must be a list of outcomes or {"outcomes": [...]}', "item")]
        )
    problems: list[ImportProblem] = []

    def rows() -> Iterable[tuple[int, Mapping[str, Any]]]:
        for n, item in enumerate(data, start=1):
            if not isinstance(item, dict):
                problems.append(ImportProblem(n, None, "must be an object", "item"))
                continue
            unknown = [k for k in item if k not in COLUMNS]
            if unknown:
                problems.extend(
                    ImportProblem(
                        n, str(k), f"unknown field; the fields are {', '.join(COLUMNS)}", "item"
                    )
                    for k in unknown
                )
                continue
            yield n, item

    out = _collect(rows(), "item", source, problems)
    if problems:
        raise OutcomeImportError(problems)
    return out


def read_outcomes(path: Path | str, *, source: Source = "import") -> list[ImportedOutcome]:
    """Parse the file at ``path``: JSON when it ends in ``.json``, else CSV (UTF-8, with or
    without a byte-order mark)."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        unit: Literal["line", "item"] = "item" if p.suffix.lower() == ".json" else "line"
        where = f"is not UTF-8 text (byte {err.start})"
        raise OutcomeImportError([ImportProblem(0, None, where, unit)]) from None
    if p.suffix.lower() == ".json":
        return parse_outcomes_json(text, source=source)
    return parse_outcomes_csv(io.StringIO(text, newline=""), source=source)

"""CSV exports: the read API's JSON rows written as CSV, for the API and the console alike.

The API's ``/v1/accounts.csv``, ``/v1/alerts.csv`` and ``/v1/retention.csv`` and the console's
download links build their rows with the very functions that answer the JSON routes (through
:mod:`shared.read`), so a CSV and the JSON of the same query hold the same values.

Cells are quoted by :mod:`csv` (RFC 4180: a comma, quote or line break inside a cell is
quoted). A text cell that a spreadsheet would run as a formula (it starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return) is written with a leading ``'``, so opening an export
never runs what an account name or a trait carried. Numbers are written as numbers (a negative
number is not a formula); ``None`` is an empty cell, dates and times ISO 8601 as in the JSON
(UTC as ``Z``), booleans ``true`` / ``false``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from fastapi.responses import Response

__all__ = ["MAX_ROWS", "csv_response", "csv_text", "safe_cell"]

MAX_ROWS = 100_000
"""The most rows one export holds (the accounts and alerts exports are not paged)."""

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """One value as CSV cell text, defused against formula injection."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, datetime):
        # As the JSON answers write it (pydantic): UTC as Z.
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, date):
        return value.isoformat()
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """A header line of ``columns`` and one line per row (``\\r\\n`` line ends, RFC 4180)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([safe_cell(row.get(c)) for c in columns])
    return out.getvalue()


def csv_response(
    columns: Sequence[str], rows: Iterable[Mapping[str, Any]], filename: str
) -> Response:
    """A download: ``text/csv`` in UTF-8, named ``filename``."""
    return Response(
        csv_text(columns, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )

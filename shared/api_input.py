"""Checks on client input shared by the read API, the alerts API and the console, so that no
query string or path can reach the database in a form it refuses (a 500).

PostgreSQL text cannot hold NUL, and neither driver can send a lone surrogate; ids and counts
must fit a signed 64-bit integer; ``str.isdigit`` accepts digits ``int`` refuses (``²``).
"""

from __future__ import annotations

from fastapi import HTTPException, Request

MAX_BIGINT = 2**63 - 1
"""The largest offset or id the databases take (PostgreSQL BIGINT, SQLite INTEGER)."""
MAX_ID_DIGITS = 18
"""Every number of this many decimal digits fits :data:`MAX_BIGINT`."""


def is_id(text: str) -> bool:
    """``text`` is a database id: ASCII digits only, short enough to fit a BIGINT."""
    return 0 < len(text) <= MAX_ID_DIGITS and text.isascii() and text.isdigit()


def storable(text: str) -> bool:
    """``text`` can be sent to PostgreSQL and SQLite as a string."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


async def storable_params(request: Request) -> None:
    """Router dependency: 422 naming the parameter when a path or query value is not
    :func:`storable`."""
    for where, params in (("path", request.path_params), ("query", request.query_params)):
        for name, value in params.items():
            if isinstance(value, str) and not storable(value):
                # An HTTPException, so that every app answers it (the console's too); the
                # message starts with the field, which shared.api_errors reports as `field`.
                raise HTTPException(
                    422, f"{name}: the {where} parameter contains NUL or a lone surrogate"
                )

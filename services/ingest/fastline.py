"""Pure: one line of an archive (``tend import-events``), every check passed, read straight into
a msgspec struct, as :mod:`services.ingest.fastpath` reads a request's body.

:func:`read_line` returns what the import's general path
(:func:`services.cli.import_events.parse_line`: ``json.loads``, then
:func:`~services.ingest.normalize.parse_event` with the archive's rules) makes of a line when
that path accepts it, or None whenever it cannot vouch for that; the import then runs the
general path, whose answer stands. The archive's rules, as the general path applies them: the
time reference is the line's ``receivedAt``, else now; a line with ``timestamp`` has its
``sentAt`` ignored; a line without ``messageId`` gets one derived from its bytes.
tests/ingest/test_fastline.py holds the two paths together.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Final

import msgspec

from services.ingest.fastpath import (
    _EXTRA_FRAMES,
    _Call,
    _deeper,
    _Doubt,
    _parse,
    _plain,
)
from services.ingest.normalize import EventError, ParsedEvent, parse_timestamp


class _ArchiveCall(_Call):
    """A call as an archive stores it: with the collector's ``receivedAt``."""

    receivedAt: str | None = None


_LINE: Final = msgspec.json.Decoder(_ArchiveCall)


def derived_message_id(line: bytes) -> str:
    """The messageId of a line without one: importing the file twice counts it once."""
    return "import-" + hashlib.sha256(line.strip()).hexdigest()[:40]


def read_line(
    line: bytes,
    number: int,
    *,
    now: datetime,
    future_tolerance: timedelta,
    max_event_bytes: int,
    max_depth: int,
) -> ParsedEvent | None:
    """The line's call, checked (its index is ``number``), when the general path accepts it
    with these values; None when it might not (then ask it)."""
    # A long line is measured as re-written JSON by the general path.
    if len(line) > max_event_bytes or max_depth < 1 or not _plain(line):
        return None
    try:
        call: _ArchiveCall = _deeper(_EXTRA_FRAMES, _LINE.decode, line)
        if call.messageId is None or call.messageId == "":
            call.messageId = derived_message_id(line)
        reference = parse_timestamp(call.receivedAt, "receivedAt") or now
        if call.timestamp is not None and call.timestamp != "":
            call.sentAt = None  # the archive's timestamp is already corrected
        return _parse(call, number, call.type, reference, future_tolerance, None, None, max_depth)
    except (msgspec.MsgspecError, RecursionError, _Doubt, EventError):
        return None

"""Giving the C allocator's free memory back to the system, at most every so often.

The scorer's live memory is flat under a steady load (docs/performance.md, Memory), yet its RSS
climbed in steps: glibc's ``malloc`` keeps what a batch in hand freed (12-20 MB of free heap in
the soak) and hands it back only when the free space sits at the top of its heap. ``malloc_trim``
gives back every whole free page, wherever it is. :func:`trim_when_due` calls it between two
batches (the consumer runner, :mod:`shared.consumer`), at most every :data:`TRIM_EVERY_S`, so
RSS follows what the process holds rather than its highest batch so far. Elsewhere than glibc
(musl, macOS) there is no ``malloc_trim`` and this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from typing import Any

__all__ = ["TRIM_EVERY_S", "malloc_trim", "trim_when_due"]

TRIM_EVERY_S = 30.0
"""Seconds between two trims: a trim walks glibc's free lists (about a millisecond for the
scorer's heap), so twice a minute costs nothing measurable."""


def _libc_trim() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None


_TRIM = _libc_trim()
_last: float | None = None


def malloc_trim() -> bool:
    """Give glibc's whole free pages back now; True when some memory was given back (False
    too where there is no ``malloc_trim``)."""
    return _TRIM is not None and bool(_TRIM(0))


def trim_when_due(now: float | None = None, every_s: float = TRIM_EVERY_S) -> bool:
    """At a safe point (no batch in hand): :func:`malloc_trim` when none ran for ``every_s``
    seconds (the first call only starts the clock); True when it ran and gave memory back."""
    global _last
    now = time.monotonic() if now is None else now
    if _last is None:
        _last = now
        return False
    if now - _last < every_s:
        return False
    _last = now
    return malloc_trim()

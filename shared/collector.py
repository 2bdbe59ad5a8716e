"""The cyclic garbage collector paused around work that allocates many short-lived objects.

A re-scoring pass over chunks of accounts (the re-scorer) or replaying a chunk's days (``tend
backtest``) allocates tens of thousands of small objects a chunk (activities, metrics, scores,
messages) that live until the chunk is done and almost never form reference cycles (about 80
objects of cyclic garbage a chunk of 500 accounts). The collector still walked
them every 700 allocations, and the whole process in its full passes: a quarter of the
re-scorer's CPU and a fifth of the backtest's (docs/performance.md). Reference counting frees
everything as it goes; the few cycles made meanwhile are collected once the collector is back.

Pauses may overlap, in the same event loop too (a re-scoring chunk awaits the database while
other tasks run): the collector comes back when the last one ends, and only if it was on when
the first began.

In a busy scorer the consumer's pauses (around each batch and its wait for records) and the
re-scorer's (a whole pass) overlap almost all the time: the collector's own passes stopped,
only the re-scorer's young collections ran, and garbage in cycles that had reached the oldest
generation was never freed (the memory soak of ``bench/scorer.py``: no full pass in 300 s, about
6,000 such objects found at its end). :func:`collect_when_due`, called by the consumer between two
batches, runs a full pass at most every :data:`FULL_EVERY_S` when the collector ran none itself.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator

__all__ = ["FULL_EVERY_S", "collect_when_due", "collect_young", "collector_paused"]

FULL_EVERY_S = 60.0
"""Seconds between two full passes of :func:`collect_when_due`: one walks every object the
collector tracks (about 200,000 in a busy scorer, tens of milliseconds of CPU)."""

_depth = 0
_was_enabled = False
_last_full: tuple[float, int] | None = None
"""When the latest full pass was seen, and the collector's count of full passes then."""


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The collector off inside, back as it was once every overlapping pause has ended,
    after an error too."""
    global _depth, _was_enabled
    if _depth == 0:
        _was_enabled = gc.isenabled()
        gc.disable()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _was_enabled:
            gc.enable()


def collect_young() -> int:
    """Collect the two young generations now, paused or not (a long pause frees its cyclic
    garbage every so often without a full pass); returns the unreachable objects found."""
    return gc.collect(1)


def collect_when_due(now: float | None = None, every_s: float = FULL_EVERY_S) -> int:
    """At a safe point (no batch in hand): a full collection if none ran, ours or the
    collector's own, for ``every_s`` seconds (the first call only starts the clock), paused or
    not; returns the unreachable objects found, 0 when none was due."""
    global _last_full
    now = time.monotonic() if now is None else now
    full = gc.get_stats()[2]["collections"]
    if _last_full is None or _last_full[1] != full:
        _last_full = (now, full)
        return 0
    if now - _last_full[0] < every_s:
        return 0
    found = gc.collect()
    _last_full = (now, gc.get_stats()[2]["collections"])
    return found

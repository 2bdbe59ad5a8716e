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
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["collect_young", "collector_paused"]

_depth = 0
_was_enabled = False


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

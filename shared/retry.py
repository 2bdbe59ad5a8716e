"""Waiting between attempts: exponential backoff with jitter, and sleeps that wake on shutdown.

Every retry loop in tend waits through :func:`sleep_or_stop`, so a SIGTERM is never stuck
behind a backoff, and draws its delays from :class:`Backoff`, so replicas that failed together
(the database restarted under all of them) do not come back in lockstep.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class Backoff:
    """Delays growing by ``factor`` from ``initial_s`` up to ``max_s``, each drawn uniformly
    from its upper half ("equal jitter"): never less than half the nominal delay, so a broken
    dependency is not hammered, and spread enough that replicas drift apart."""

    initial_s: float = 0.2
    max_s: float = 10.0
    factor: float = 2.0
    rng: random.Random | None = None

    def delays(self) -> Callable[[], float]:
        """A fresh sequence of delays, one per call."""
        current = self.initial_s
        rng = self.rng or random.Random()

        def nxt() -> float:
            nonlocal current
            nominal = current
            current = min(self.max_s, current * self.factor)
            return nominal / 2 + rng.uniform(0, nominal / 2)

        return nxt


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` or until ``stop`` is set, whichever comes first; True when stopped."""
    if stop.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(seconds, 0.0))
    return stop.is_set()

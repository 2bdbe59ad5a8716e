"""shared.collector: the cyclic collector paused around chunk work, back as it was after."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from shared.collector import collect_young, collector_paused

pytestmark = pytest.mark.unit


def test_off_inside_and_back_after() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_left_off_when_it_was_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


class _Node:
    def __init__(self) -> None:
        self.me = self


def test_collect_young_frees_a_cycle_made_in_a_pause_and_leaves_it_paused() -> None:
    with collector_paused():
        node = _Node()
        ref = weakref.ref(node)
        del node
        assert ref() is not None  # a cycle: reference counting alone keeps it
        assert collect_young() >= 1
        assert ref() is None
        assert not gc.isenabled()
    assert gc.isenabled()


def test_back_after_an_error() -> None:
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("the database is down")
    assert gc.isenabled()


async def test_overlapping_pauses_in_one_event_loop() -> None:
    """Two tasks whose pauses interleave (the first ends while the second still runs): the
    collector stays off until the second ends, then is back."""
    first_in, first_may_end, first_out = asyncio.Event(), asyncio.Event(), asyncio.Event()
    seen: list[bool] = []

    async def first() -> None:
        with collector_paused():
            first_in.set()
            await first_may_end.wait()
        first_out.set()

    async def second() -> None:
        await first_in.wait()
        with collector_paused():
            first_may_end.set()
            await first_out.wait()
            seen.append(gc.isenabled())  # the first has ended; this one has not
        seen.append(gc.isenabled())

    await asyncio.gather(first(), second())
    assert seen == [False, True]
    assert gc.isenabled()

"""shared.memory: glibc's free pages given back between batches, at most every so often."""

from __future__ import annotations

import os

import pytest

from shared import memory

pytestmark = pytest.mark.unit

glibc_only = pytest.mark.skipif(memory._TRIM is None, reason="no malloc_trim (not glibc)")


@pytest.fixture(autouse=True)
def fresh_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_last", None)


def test_trims_only_once_the_interval_has_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(memory, "_TRIM", lambda pad: calls.append(pad) or 1)
    assert memory.trim_when_due(now=100.0, every_s=30) is False  # starts the clock
    assert memory.trim_when_due(now=129.9, every_s=30) is False
    assert calls == []
    assert memory.trim_when_due(now=130.0, every_s=30) is True
    assert calls == [0]
    assert memory.trim_when_due(now=159.0, every_s=30) is False
    assert memory.trim_when_due(now=160.0, every_s=30) is True
    assert calls == [0, 0]


def test_nothing_happens_without_malloc_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_TRIM", None)
    assert memory.malloc_trim() is False
    memory.trim_when_due(now=0.0)
    assert memory.trim_when_due(now=1_000.0) is False


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@glibc_only
def test_freed_heap_memory_is_given_back() -> None:
    # 2,000-byte objects come from glibc's heap (pymalloc serves 512 bytes and less, mmap
    # 128 KB and more). Freeing a run in the middle of them leaves 40 MB of free pages that
    # blocks still in use sit above, so free() cannot shrink the heap: a trim gives them back.
    blocks = [bytes(2000) + bytes([i % 256]) for i in range(60_000)]
    del blocks[10_000:30_000]
    before = rss_bytes()
    assert memory.malloc_trim() is True
    assert before - rss_bytes() > 20_000_000
    assert len(blocks) == 40_000

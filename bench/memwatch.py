"""What a long-running bench process's memory is made of, sample by sample.

Used by ``bench/scorer.py --soak-seconds N`` (its memory soak). Each sample line gives:

- ``RSS``: the process's resident memory (``/proc/self/statm``);
- ``malloc``: glibc's heap (``mallinfo2``, every arena): bytes taken from the system by
  ``brk``/``sbrk`` and ``mmap``, of which in use and free; free bytes that stay resident are
  fragmentation (``malloc_trim`` gives back what it can);
- ``pymalloc``: Python's small-object allocator (``sys._debugmallocstats``): its arenas of
  1 MiB taken from the system, and of them the bytes in allocated blocks; an arena goes back
  only once every block in it is free, so arenas well above the allocated bytes are
  fragmentation (not shown while tracemalloc runs: it hooks the allocator);
- ``gc``: the objects the cyclic collector tracks (``len(gc.get_objects())``), its
  generation counters (``gc.get_count()``) and the collections run so far per generation
  (``gc.get_stats()``): a generation 2 count that stays put while the tracked objects grow
  means garbage in cycles waits for a full pass that does not come;
- ``gc cpu``: the CPU the collector's passes took since :meth:`MemoryWatch.start`, per
  generation, and how many objects the full passes freed (``gc.callbacks``);
- ``traced``: with ``tracemalloc`` on, the bytes Python allocated that are still alive.

With tracing on, :meth:`MemoryWatch.mark` takes a baseline snapshot (and counts the tracked
objects by type); :meth:`MemoryWatch.report` compares the end with it: the allocation sites
that grew most, with their tracebacks, and the types whose objects grew most. Tracing costs
CPU (every allocation records its traceback): the rates of a traced run are not the bench's.
:meth:`MemoryWatch.probe` ends a run by measuring what a full collection (and the types of
the objects it finds unreachable: what makes reference cycles), then ``malloc_trim``, give back.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import gc
import os
import re
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable

MB = 2**20


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # not glibc, or older than 2.33
        return None
    return libc


_LIBC = _libc()


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / MB


def malloc_mb() -> tuple[float, float, float] | None:
    """glibc's heap: (taken from the system, in use, free) in MB; None when not glibc."""
    if _LIBC is None:
        return None
    m = _LIBC.mallinfo2()
    return (m.arena + m.hblkhd) / MB, (m.uordblks + m.hblkhd) / MB, m.fordblks / MB


def malloc_trim() -> bool:
    return _LIBC is not None and bool(_LIBC.malloc_trim(0))


def pymalloc_mb() -> tuple[float, float] | None:
    """pymalloc's (arenas, bytes in allocated blocks) in MB, read from what
    ``sys._debugmallocstats`` writes to the C stderr; None when it says neither."""
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    arenas = re.search(r"(\d+) arenas \* (\d+) bytes/arena", text)
    used = re.search(r"# bytes in allocated blocks\s*=\s*([\d,]+)", text)
    if arenas is None or used is None:
        return None
    return (
        int(arenas.group(1)) * int(arenas.group(2)) / MB,
        int(used.group(1).replace(",", "")) / MB,
    )


def gc_collections() -> tuple[int, ...]:
    return tuple(s["collections"] for s in gc.get_stats())


def _site(frame: tracemalloc.Frame) -> str:
    path = frame.filename
    for marker in ("/site-packages/", "/lib/python3"):
        if marker in path:
            path = "~" + path.split(marker, 1)[1]
            break
    else:
        for top in ("/services/", "/shared/", "/bench/", "/tests/"):
            if top in path:
                path = top[1:] + path.split(top, 1)[1]
                break
    return f"{path}:{frame.lineno}"


class MemoryWatch:
    """Samples of the process's memory; ``trace`` turns on tracemalloc (``frames`` deep) and
    the snapshot comparison, ``top`` lines of it."""

    def __init__(self, trace: bool = False, frames: int = 8, top: int = 15) -> None:
        self.trace = trace
        self.frames = frames
        self.top = top
        self._baseline: str | None = None
        """The baseline snapshot's file: kept out of the process, whose objects it would
        count among the growth."""
        self._types: collections.Counter[str] = collections.Counter()
        self._baseline_at = ""
        self._began = 0.0
        self.gc_cpu = [0.0, 0.0, 0.0]
        self.full_freed = 0

    def start(self) -> None:
        if self.trace and not tracemalloc.is_tracing():
            tracemalloc.start(self.frames)
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def stop(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.process_time()
            return
        generation = info["generation"]
        self.gc_cpu[generation] += time.process_time() - self._began
        if generation == 2:
            self.full_freed += info["collected"]

    def sample(self) -> str:
        objects = len(gc.get_objects())
        heap = malloc_mb()
        parts = [f"RSS {rss_mb():7.1f} MB"]
        if heap is not None:
            parts.append(f"malloc {heap[0]:6.1f} (used {heap[1]:6.1f} free {heap[2]:5.1f}) MB")
        small = pymalloc_mb()
        if small is not None:
            parts.append(f"pymalloc {small[0]:6.1f} (used {small[1]:6.1f}) MB")
        parts.append(
            f"gc objects {objects:>9,} count {gc.get_count()} "
            f"collections {'/'.join(map(str, gc_collections()))}"
        )
        parts.append(
            "gc cpu "
            + "/".join(f"{t * 1000:.0f}" for t in self.gc_cpu)
            + f" ms, full passes freed {self.full_freed:,}"
        )
        if tracemalloc.is_tracing():
            parts.append(f"traced {tracemalloc.get_traced_memory()[0] / MB:6.1f} MB")
        return "  ".join(parts)

    @property
    def marked(self) -> bool:
        return bool(self._baseline_at)

    def mark(self, label: str) -> None:
        """The baseline the report compares with (tracing only)."""
        if not tracemalloc.is_tracing():
            return
        self._types = self._count_types()
        with tempfile.NamedTemporaryFile(prefix="memwatch-", suffix=".snapshot", delete=False) as f:
            self._baseline = f.name
        self._snapshot().dump(self._baseline)
        self._baseline_at = label

    def report(self, out: Callable[[str], None] = print) -> None:
        if self._baseline is None:
            return
        started = time.perf_counter()
        types = self._count_types()
        types.subtract(self._types)
        end = self._snapshot()
        baseline = tracemalloc.Snapshot.load(self._baseline)
        os.unlink(self._baseline)
        self._baseline = None
        diffs = [d for d in end.compare_to(baseline, "traceback") if d.size_diff]
        del end, baseline
        diffs.sort(key=lambda d: d.size_diff, reverse=True)
        grew = sum(d.size_diff for d in diffs)
        out(
            f"  tracemalloc, from {self._baseline_at} to the end: {grew / MB:+.2f} MB over "
            f"{len(diffs)} allocation tracebacks; the {self.top} that grew most:"
        )
        for d in diffs[: self.top]:
            frames = [_site(f) for f in reversed(d.traceback)]  # most recent first
            out(
                f"    {d.size_diff / 1024:+9.1f} KiB {d.count_diff:+8,} blocks "
                f"(now {d.size / 1024:9.1f} KiB)  {frames[0]}"
            )
            for f in frames[1:]:
                out(f"{'':44}< {f}")
        shrank = sorted(diffs, key=lambda d: d.size_diff)[:3]
        out(
            "  and the 3 that shrank most: "
            + "; ".join(
                f"{d.size_diff / 1024:+.1f} KiB {_site(d.traceback[-1])}"
                for d in shrank
                if d.size_diff < 0
            )
        )
        out(
            "  gc-tracked objects by type, growth: "
            + ", ".join(f"{t} {n:+,}" for t, n in types.most_common(12) if n > 0)
        )
        out(f"  (report took {time.perf_counter() - started:.1f} s)")

    def probe(self, out: Callable[[str], None] = print) -> None:
        """What a full collection, then malloc_trim, give back now."""
        before = rss_mb()
        young = gc.collect(1)  # what the young passes would free
        gc.set_debug(gc.DEBUG_SAVEALL)  # keep what it finds, to count it by type
        try:
            found = gc.collect()  # what only a full pass frees: cycles in the oldest generation
            kinds = collections.Counter(type(o).__name__ for o in gc.garbage)
            gc.garbage.clear()
        finally:
            gc.set_debug(0)
        started = time.process_time()
        gc.collect()  # frees them for good (and times a full pass)
        took = time.process_time() - started
        after_gc = rss_mb()
        trimmed = malloc_trim()
        out(
            f"  unreachable now: {young:,} objects in the young generations, {found:,} in the "
            "oldest ("
            + ", ".join(f"{t} {n:,}" for t, n in kinds.most_common(8))
            + f"); a full pass then took {took * 1000:.0f} ms CPU; RSS {before:.1f} -> "
            f"{after_gc:.1f} MB; malloc_trim "
            f"{'gave back memory' if trimmed else 'gave back nothing'}: RSS {rss_mb():.1f} MB"
        )
        out(f"  after them: {self.sample()}")

    def _snapshot(self) -> tracemalloc.Snapshot:
        return tracemalloc.take_snapshot().filter_traces(
            [
                tracemalloc.Filter(False, tracemalloc.__file__),
                tracemalloc.Filter(False, __file__, all_frames=True),
                tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
                tracemalloc.Filter(False, "<unknown>"),
            ]
        )

    @staticmethod
    def _count_types() -> collections.Counter[str]:
        return collections.Counter(type(o).__name__ for o in gc.get_objects())

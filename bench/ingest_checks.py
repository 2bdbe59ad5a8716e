"""Ingest's pure path per event: checks, resolving, writing the topic's bytes, no I/O.

Run by hand (not in CI), from the repository root:

    .venv/bin/python bench/ingest_checks.py [--events 100] [--repeat 30]

Builds one ``/v1/batch`` body of ``--events`` Segment ``track`` calls (the ones
``bench/ingest.py`` posts), then times, best of ``--repeat`` runs of 10 passes each, in
microseconds of this process's CPU per event (CPU, not wall time: the machine is shared):
decoding the body with ``json.loads`` (the raw baseline, what the route does before the
checks), ``normalize.parse_batch``, ``normalize.resolve``, ``AcceptedEvent.to_bytes``, and the
whole pure path (all three). Prints each with its ratio to the baseline, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ingest import segment_call  # noqa: E402
from services.ingest import fastpath, normalize  # noqa: E402
from shared.config import TendConfig  # noqa: E402

PASSES = 10


def per_event_us(work: Callable[[], object], events: int, repeat: int) -> float:
    """Best of ``repeat`` runs of :data:`PASSES` calls of ``work``: CPU µs per event."""
    best = min(timeit.repeat(work, timer=time.process_time, number=PASSES, repeat=repeat))
    return best / PASSES / events * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100, help="calls in the batch")
    parser.add_argument("--repeat", type=int, default=30, help="runs; the best is kept")
    args = parser.parse_args()

    body = json.dumps({"batch": [segment_call(i) for i in range(args.events)]}).encode()
    items = json.loads(body)["batch"]
    received_at = datetime.now(UTC)
    config = TendConfig()

    def checks() -> list[normalize.ParsedEvent]:
        parsed, rejected = normalize.parse_batch(
            items,
            received_at=received_at,
            future_tolerance=timedelta(hours=1),
            max_event_bytes=32_768,
            body_bytes=len(body),
        )
        assert not rejected, rejected
        return parsed

    def resolving(parsed: list[normalize.ParsedEvent]) -> list[normalize.AcceptedEvent]:
        events, rejected = normalize.resolve(parsed, {}, config, received_at=received_at)
        assert not rejected, rejected
        return events

    parsed = checks()
    events = resolving(parsed)

    def writing(accepted: list[normalize.AcceptedEvent]) -> list[bytes]:
        return [event.to_bytes() for event in accepted]

    def whole() -> list[bytes]:
        return writing(resolving(checks()))

    def general_read() -> list[normalize.ParsedEvent]:
        nonlocal items
        items = json.loads(body)["batch"]
        return checks()

    def fast_read() -> list[normalize.ParsedEvent]:
        got = fastpath.read(
            body,
            None,
            received_at=received_at,
            future_tolerance=timedelta(hours=1),
            max_batch_events=2_500,
            max_event_bytes=32_768,
            max_depth=normalize.DEFAULT_MAX_DEPTH,
        )
        assert got is not None
        return got.parsed

    def fast_whole() -> list[bytes]:
        return writing(resolving(fast_read()))

    stages: list[tuple[str, Callable[[], object]]] = [
        ("json.loads of the body (baseline)", lambda: json.loads(body)),
        ("parse_batch (checks)", checks),
        ("resolve (account, login, feature)", lambda: resolving(parsed)),
        ("to_bytes (topic JSON)", lambda: writing(events)),
        ("pure path (all three)", whole),
        ("json.loads + parse_batch (general)", general_read),
        ("fastpath.read (decode + checks)", fast_read),
        ("pure path, body bytes in (general)", lambda: writing(resolving(general_read()))),
        ("pure path, body bytes in (fast)", fast_whole),
    ]
    baseline = 0.0
    for label, work in stages:
        micros = per_event_us(work, args.events, args.repeat)
        baseline = baseline or micros
        print(f"{label:<36} {micros:7.2f} µs/event  {micros / baseline:5.2f}x baseline")
    print("load average (1, 5, 15 min):", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

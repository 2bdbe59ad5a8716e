"""A lean HTTP/1.1 load generator for the ingest bench.

httpx spent about as much CPU per event as the ingest server itself (21.6 against 24.6 µs on
an idle machine), on the same 2 cores as the server and the broker, so the HTTP phase measured
the client as much as the server. This one sends pre-encoded requests on keep-alive
connections (one per request in flight) and reads each answer's status line, its
``Content-Length`` and its body, nothing more; every answer's status is counted and a 200's
``accepted`` is read from its JSON body, as before.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r]*chunked", re.IGNORECASE)


def encode_post(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The whole request, head and body, ready to write."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    accepted: int = 0
    ok: list[int] = field(default_factory=list)
    """Indexes of the requests answered 200, in the order answered."""
    refusals: list[bytes] = field(default_factory=list)
    """The first few bodies of answers other than 200."""


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        raise RuntimeError(f"not an HTTP/1.1 answer: {head[:40]!r}")
    status = int(head[9:12])
    length = _CONTENT_LENGTH.search(head)
    if length is None or _CHUNKED.search(head):
        raise RuntimeError(f"an answer without Content-Length: {head!r}")
    return status, await reader.readexactly(int(length.group(1)))


async def post_all(
    host: str,
    port: int,
    requests: list[bytes],
    *,
    concurrency: int,
    deadline: float,
    repeat: bool = False,
) -> Tally:
    """Sends ``requests`` (from :func:`encode_post`) with ``concurrency`` in flight, each on
    its own keep-alive connection, until all are answered or ``time.perf_counter()`` passes
    ``deadline`` (``repeat``: round and round until the deadline)."""
    tally = Tally()
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                if next_index >= len(requests) and not repeat:
                    return
                i = next_index % len(requests)
                next_index += 1
                writer.write(requests[i])
                status, body = await _read_answer(reader)
                tally.statuses[status] += 1
                if status == 200:
                    tally.accepted += json.loads(body)["accepted"]
                    tally.ok.append(i)
                elif len(tally.refusals) < 5:
                    tally.refusals.append(body)
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally

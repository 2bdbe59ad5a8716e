"""``tend import-events FILE``: backfill history from a Segment or RudderStack archive.

An archive is JSON lines, one Segment-spec call a line, gzip-compressed or not (told by the
file's first bytes, not its name). Each line is checked exactly as the ingest API checks a call
(:mod:`services.ingest.normalize`: the same parsing, limits, account resolution and canonical
event), then published to ``tend.events`` on the bus the settings name, a chunk at a time with a
few chunks in flight, so the import runs at the producer's speed. A line every check passes is
read the fast way (:mod:`services.ingest.fastline`, msgspec), with the same result.
Differences from HTTP, all because the line is history rather than a live call:

- the time reference is the line's ``receivedAt`` (when the archive's collector received it),
  else now; a line with ``timestamp`` (already clock-corrected by Segment and RudderStack) is
  taken as is, without a second correction by ``sentAt``;
- a line without ``messageId`` gets one derived from its bytes, so importing a file twice counts
  it once (the scorer drops repeated messageIds within ``TEND_SCORER__DEDUP_WINDOW_DAYS``);
- a track call's account comes, as on ingest, from the call, else from the user's last group
  call: earlier in the file, else on record (``user_accounts``); without one it is refused.

A refused line is reported (line number, field, reason) and the import goes on; the exit code is
1 when more lines were refused than ``--max-errors`` allows (default 0), or when the bus failed
(every line before the reported one was acknowledged; importing the file again is safe).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import click

from services.cli.common import Failure, load_settings, load_tend_config, run_db
from shared.api_errors import field_of

if TYPE_CHECKING:
    from services.ingest.accounts import AccountDirectory
    from services.ingest.normalize import ParsedEvent
    from shared.bus.base import Producer
    from shared.config import TendConfig
    from shared.settings import IngestSettings

CHUNK_LINES = 2_000
"""Lines checked and published together (one publish call)."""
IN_FLIGHT = 4
"""Publishes awaiting acknowledgement at once: the producer's pipeline stays full."""
SHOWN_ERRORS = 1_000
"""Refused lines printed one by one; past this only counted."""


@dataclass(frozen=True, slots=True)
class Refused:
    line: int
    error: str

    @property
    def field(self) -> str | None:
        return field_of(self.error)

    def describe(self) -> str:
        at = self.field
        return f"line {self.line}: {self.error}" + (f" (field {at})" if at else "")


@dataclass(slots=True)
class Tally:
    imported: int = 0
    refused: list[Refused] = field(default_factory=list)
    refused_count: int = 0


def open_archive(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """(line source, underlying file): gzip when the file starts with gzip's magic bytes."""
    raw = path.open("rb")
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw)), raw
    raw.seek(0)
    return raw, raw


def numbered_lines(source: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line) for every line that is not blank."""
    for number, line in enumerate(source, start=1):
        if line.strip():
            yield number, line


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_line(line: bytes) -> dict[str, Any]:
    """The line as a JSON object, or :class:`~services.ingest.normalize.EventError`."""
    from services.ingest.fastline import derived_message_id
    from services.ingest.normalize import EventError

    try:
        data = json.loads(line, parse_constant=_no_constants)
    except json.JSONDecodeError as err:
        raise EventError(f"event: malformed JSON: {err.msg} (column {err.colno})") from None
    except UnicodeDecodeError:
        raise EventError("event: malformed JSON: not UTF-8 text") from None
    except (ValueError, RecursionError) as err:
        raise EventError(f"event: malformed JSON: {str(err)[:100] or 'too deep'}") from None
    if not isinstance(data, dict):
        raise EventError(f"event: must be a JSON object, not {type(data).__name__}")
    if data.get("messageId") in (None, ""):
        data["messageId"] = derived_message_id(line)
    return data


def parse_line(
    line: bytes,
    number: int,
    *,
    now: datetime,
    future_tolerance: timedelta,
    max_event_bytes: int,
    max_depth: int,
) -> ParsedEvent:
    """The line's call, checked like an ingest call with the archive's rules (the module's
    docstring), or :class:`~services.ingest.normalize.EventError`. The general path:
    :func:`services.ingest.fastline.read_line` gives the same for a line it vouches for."""
    from services.ingest import normalize

    raw = decode_line(line)
    if len(line) > max_event_bytes:
        size = normalize.event_size(raw)
        if size > max_event_bytes:
            raise normalize.EventError(
                f"event: {size} bytes as JSON, more than the limit of {max_event_bytes}"
            )
    reference = normalize.parse_timestamp(raw.get("receivedAt"), "receivedAt") or now
    if raw.get("timestamp") not in (None, ""):
        raw.pop("sentAt", None)  # the archive's timestamp is already corrected
    return normalize.parse_event(
        raw, number, received_at=reference, future_tolerance=future_tolerance, max_depth=max_depth
    )


class EventImport:
    """Checks chunks of archive lines like ingest and publishes the accepted events.

    Guarantees: a chunk's events are published in one call; at most ``IN_FLIGHT`` publishes
    are unacknowledged at a time; :meth:`finish` returns only when every publish has been
    acknowledged, and raises the first bus failure (``acknowledged_through`` says how far the
    import is known to have got).
    """

    def __init__(
        self,
        settings: IngestSettings,
        config: TendConfig,
        directory: AccountDirectory,
        producer: Producer,
    ) -> None:
        self.settings = settings
        self.config = config
        self.directory = directory
        self.producer = producer
        self.tally = Tally()
        self._memberships: dict[str, str] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._failure: Exception | None = None
        self._pending: set[int] = set()
        """First line of each chunk not yet acknowledged (a failed one stays)."""
        self._last_line = 0
        self.acknowledged_through = 0
        """Every line up to this one was published and acknowledged (or refused)."""

    async def add_chunk(self, lines: list[tuple[int, bytes]]) -> None:
        from services.ingest import normalize
        from services.ingest.fastline import read_line

        now = datetime.now(UTC)
        s = self.settings
        # The archive's rules, the same for both paths.
        rules: dict[str, Any] = {
            "now": now,
            "future_tolerance": timedelta(seconds=s.future_tolerance_s),
            "max_event_bytes": s.max_event_bytes,
            "max_depth": s.max_depth,
        }
        parsed: list[normalize.ParsedEvent] = []
        refused: list[Refused] = []
        for number, line in lines:
            # The fast path for a line it vouches for, else the general one (same answer).
            fast = read_line(line, number, **rules)
            if fast is not None:
                parsed.append(fast)
                continue
            try:
                parsed.append(parse_line(line, number, **rules))
            except normalize.EventError as err:
                refused.append(Refused(number, str(err)))
        wanted = normalize.users_to_look_up(parsed) - self._memberships.keys()
        known = dict(await self.directory.lookup(wanted)) if wanted else {}
        known.update(self._memberships)
        events, unresolved = normalize.resolve(parsed, known, self.config, received_at=now)
        refused.extend(Refused(r.index, r.error) for r in unresolved)
        memberships = normalize.group_memberships(events)
        self._memberships.update({user: account for user, (account, _) in memberships.items()})
        self._count_refused(sorted(refused, key=lambda r: r.line))
        messages = [normalize.to_message(e) for e in events]
        await self._wait_for_room()
        if not lines:
            return
        first_line, self._last_line = lines[0][0], lines[-1][0]
        self._pending.add(first_line)
        task = asyncio.create_task(self._publish(messages, memberships, first_line))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    def _count_refused(self, refused: list[Refused]) -> None:
        for r in refused:
            self.tally.refused_count += 1
            if len(self.tally.refused) < SHOWN_ERRORS:
                self.tally.refused.append(r)
                click.echo(r.describe(), err=True)

    async def _wait_for_room(self) -> None:
        while len(self._in_flight) >= IN_FLIGHT and self._failure is None:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
        if self._failure is not None:
            raise self._failure

    async def _publish(self, messages: list[Any], memberships: Any, first_line: int) -> None:
        from shared import topics

        try:
            if messages:
                await self.producer.publish(
                    topics.EVENTS, messages, timeout_s=self.settings.produce_timeout_s
                )
        except Exception as exc:
            # Kept for add_chunk and finish to raise; the chunk stays pending (not acknowledged).
            if self._failure is None:
                self._failure = exc
            return
        self._pending.discard(first_line)
        self.tally.imported += len(messages)
        self.acknowledged_through = (
            min(self._pending) - 1 if self._pending else max(self._last_line, first_line)
        )
        if memberships:
            await self.directory.remember(memberships)

    async def finish(self) -> None:
        if self._in_flight:
            await asyncio.wait(self._in_flight)
        if self._failure is not None:
            raise self._failure


async def run_import(path: Path, size: int) -> Tally:
    from services.ingest.accounts import AccountDirectory
    from shared.bus import BusUnavailable, create_bus, default_topic_specs
    from shared.db.session import create_engine, create_sessionmaker

    settings = load_settings()
    config = load_tend_config(settings)
    engine = create_engine(settings.database_url)
    try:
        sessions = create_sessionmaker(engine)
        bus = create_bus(settings, sessions)
        producer = bus.producer()
        directory = AccountDirectory(sessions, ttl_s=settings.ingest.account_cache_ttl_s)
        job = EventImport(settings.ingest, config, directory, producer)
        try:
            await producer.start()
            await producer.ensure_topics(default_topic_specs(settings))
            started = time.perf_counter()
            source, raw = open_archive(path)
            with (
                source,
                click.progressbar(length=size, label=f"Importing {path.name}") as bar,
            ):
                seen = 0
                chunk: list[tuple[int, bytes]] = []
                for item in numbered_lines(source):
                    chunk.append(item)
                    if len(chunk) >= CHUNK_LINES:
                        await job.add_chunk(chunk)
                        chunk = []
                        bar.update(raw.tell() - seen)
                        seen = raw.tell()
                if chunk:
                    await job.add_chunk(chunk)
                await job.finish()
                bar.update(size - seen)
            elapsed = time.perf_counter() - started
        except BusUnavailable as err:
            raise Failure(
                f"the bus failed: {err}; lines 1 to {job.acknowledged_through} were "
                "acknowledged (importing the file again is safe: repeated messageIds count "
                "once)"
            ) from None
        finally:
            await producer.stop()
            await bus.close()
    finally:
        await engine.dispose()
    tally = job.tally
    rate = tally.imported / elapsed if elapsed > 0 else 0.0
    click.echo(
        f"Imported {tally.imported} event(s) from {path} in {elapsed:.1f} s "
        f"({rate:,.0f} events/s); refused {tally.refused_count} line(s)."
    )
    if tally.refused_count > len(tally.refused):
        click.echo(f"(only the first {len(tally.refused)} refused lines were listed)", err=True)
    return tally


@click.command("import-events")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--max-errors",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Refused lines allowed before the exit code says the import failed (every good "
    "line is imported either way).",
)
def import_events(file: Path, max_errors: int) -> None:
    """Backfill events from FILE: Segment-spec calls as JSON lines (a Segment or RudderStack
    archive), gzip-compressed or not. Lines are checked like the ingest API's calls; refused
    ones are listed by line number and field."""
    settings = load_settings()
    tally = run_db(settings.database_url, run_import(file, file.stat().st_size))
    if tally.refused_count > max_errors:
        raise Failure(
            f"{tally.refused_count} line(s) refused (--max-errors {max_errors}); the others "
            "were imported"
        )

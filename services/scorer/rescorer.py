"""Re-scoring: accounts touched by new events soon after their batch commits, every account
on a periodic sweep (a dormant account sends nothing), and on demand (``tend rescore``).

Scores are kept in event time (see docs/scoring.md): the score of day D is a function of the
events dated on or before D (UTC days) and the account's current profile, whatever the order
and batching in which the events arrived. Days before today are final; today's score is
provisional. The rollup writer records per account the earliest day new events touched
(``accounts.rescore_from``) in the batch's transaction; the re-scorer scores every account from
that day (at most ``horizon_days`` back), or from its last scored day, through today, one day
at a time in ascending order, and publishes only the days whose score changed.

Several replicas share the work by partition (see :mod:`shared.ownership`): each scores, sweeps
and re-scores only the accounts of the ``tend.events.v1`` partitions its consumer owns, holds
the ownership lock while it scores a chunk (a revoke waits for it), and sweeps the accounts of
partitions it gains at once. While the consumer is more than a batch behind, re-scoring holds
(at most ``max_hold_s``), so a draining backlog is not slowed by scoring the same accounts after
every batch: each dirty account is scored once when the drain ends.

On PostgreSQL a pass reads the next chunk-day (its marks first, then its activity and scores,
in its own transaction) and writes the one before (publish and save at once, then commit)
while it scores the current one, so the server and the broker work on the other core
meanwhile; only when they concern different accounts (the next day of the same accounts needs
this day's marks and scores committed). Scoring needs no lock: a chunk-day is written under the
ownership lock only if the partitions owned did not change since its reads began (else it is
read and scored again under the lock).

One module of about 790 lines on purpose: the three triggers (after a batch, the sweep, on
demand) share one day-by-day loop, its pipeline (read ahead, score, write behind), its re-score
marks and its metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.activity import AccountActivity
from services.scorer.repository import ScoringRepository, StaleMark
from services.scorer.score_rows import EncodedScore, encode
from services.scorer.scoring import Score, score
from services.scorer.usage import compute_metrics
from shared import topics
from shared.bus.base import Message, Producer
from shared.clock import Clock
from shared.collector import collect_young, collector_paused
from shared.config import TendConfig
from shared.db.models import Account
from shared.ownership import Ownership
from shared.retry import Backoff, sleep_or_stop
from shared.scores import Band, PreviousScore, ScoreMessage

log = logging.getLogger(__name__)

RETRY = Backoff(initial_s=1.0, max_s=60.0)
"""Waits between failed re-scoring rounds (the database is down): the accounts stay dirty."""

RESCORE_SECONDS = Histogram(
    "tend_scorer_rescore_duration_seconds",
    "Time to score one chunk of accounts (load, compute, save, publish).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ACCOUNTS_SCORED = Counter(
    "tend_scorer_accounts_scored_total", "Accounts scored, by trigger.", ["trigger"]
)
SCORES_PUBLISHED = Counter(
    "tend_scorer_scores_published_total",
    "Account-day scores published because they were new or changed (re-scored days whose "
    "score did not change are not published again).",
)
ACCOUNTS_BY_BAND = Gauge("tend_scorer_accounts", "Accounts by their current health band.", ["band"])
RESCORE_HELD = Counter(
    "tend_scorer_rescore_held_seconds_total",
    "Seconds re-scoring waited for the consumer to catch up with a backlog.",
)
YIELD_EVERY = 100
"""Accounts scored between two yields to the event loop (the consumer shares it)."""
COLLECT_EVERY = 50
"""Chunk-days of a pass between two collections of the young generations (the collector is
paused for the whole pass, and a backfill of many days may be long)."""
PAGE_CHUNKS = 10
"""Chunks of account ids a pass reads per page (see :meth:`Rescorer._page_size`)."""
BANDS = ("green", "yellow", "red", "new", "unknown")


@dataclass(frozen=True, slots=True)
class _Job:
    """One chunk-day of a pass: score ``ids`` as of ``day`` and move the marks of the accounts
    in ``floors`` past it."""

    ids: Sequence[str]
    day: date
    floors: Mapping[str, date]
    trigger: str
    counted: int | None = None
    """What the job adds to the pass's count of accounts: None for the accounts it scored (a
    multi-day pass counts a chunk's accounts once, on its first day)."""


@dataclass(frozen=True, slots=True)
class _Reads:
    """What a chunk-day's transaction reads before it scores (see :meth:`Rescorer._read`)."""

    marks: dict[str, StaleMark]
    activities: list[AccountActivity]
    previous: dict[str, PreviousScore]
    stored: dict[str, EncodedScore]


@dataclass(frozen=True, slots=True)
class _Scored:
    """A chunk-day's scores as stored rows, and those that changed with their messages."""

    rows: list[EncodedScore]
    changed: list[tuple[bytes, EncodedScore]]


class _Ahead:
    """A chunk-day's transaction from its beginning: its session, the accounts it scores (owned
    when it began, with the partitions owned then) and the task doing its reads
    (:meth:`Rescorer._read`), which may run while the chunk-day before it is scored."""

    def __init__(self, rescorer: Rescorer, job: _Job, ids: list[str]) -> None:
        self.job = job
        self.ids = ids
        self.floors = {a: job.floors[a] for a in ids if a in job.floors}
        self.owned = rescorer._owned_now()
        self.session = rescorer.sessions()
        self.begun = time.perf_counter()
        self.task = asyncio.ensure_future(rescorer._read(self.session, ids, job.day, self.floors))

    async def discard(self) -> None:
        """Wait for the reads, then close the session (rolling back what was not committed)."""
        try:
            with contextlib.suppress(Exception):
                await self.task
        finally:
            await self.session.close()


@dataclass(frozen=True, slots=True)
class _Span:
    """The days one account needs in this pass: from ``start`` through today; its re-score
    mark counts from ``floor`` at the earliest (older days are beyond the horizon)."""

    start: date
    floor: date


@dataclass(slots=True)
class BandChange:
    account_id: str
    before: Band | None
    after: Band
    score_before: float | None
    score_after: float | None


@dataclass(slots=True)
class DryRunReport:
    """What a model would change as of one day, computed without writing or publishing
    anything: the live model's score of that day (stored, else computed) against the new
    model's score of the same day."""

    as_of: date
    accounts: int = 0
    changes: list[BandChange] = field(default_factory=list)
    bands_before: dict[str, int] = field(default_factory=dict)
    bands_after: dict[str, int] = field(default_factory=dict)


class Rescorer:
    """Keeps every account's daily health scores current, in event time.

    Contract:

    - One account-day at a time per transaction, days in ascending order: a chunk of accounts
      is scored as of one day from one read, the scores that changed (or are new) are
      published to ``tend.scores.v1`` (key = account id) and saved, and the accounts' re-score
      marks are moved past that day, in one database transaction. If publishing or saving
      fails the transaction rolls back and the marks stay: the days are scored again later.
    - A mark is moved only if the writer has not touched the account since the mark was read
      in that transaction (``accounts.updated_at``), so events committed while a day was being
      scored are never lost: at worst the days are scored again.
    - A crash after publishing and before the commit re-publishes the same (account, as_of)
      score; a later message for an (account, as_of) replaces any earlier one.
    - Scores of days before today (UTC, from ``clock``) are final; today's is provisional.
    - Only accounts ``ownership`` says this replica owns are scored (all of them without one),
      each chunk under ``ownership.lock``.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        producer: Producer | None,
        config: TendConfig,
        clock: Clock,
        *,
        chunk_size: int = 500,
        sweep_interval_s: float = 3600.0,
        debounce_s: float = 0.5,
        backfill_days: int = 90,
        horizon_days: int = 35,
        ownership: Ownership | None = None,
        busy: Callable[[], bool] | None = None,
        max_hold_s: float = 300.0,
        overlap: bool | None = None,
    ) -> None:
        self.sessions = sessions
        self.ownership = ownership or Ownership(topics.EVENTS, everything=True)
        self.ownership.listen(self.wake)
        self.busy = busy
        """True while the consumer drains a backlog: re-scoring holds."""
        self.max_hold_s = max_hold_s
        self.producer = producer
        self.config = config
        self.clock = clock
        self.chunk_size = chunk_size
        self.sweep_interval_s = sweep_interval_s
        self.debounce_s = debounce_s
        self.backfill_days = backfill_days
        self.horizon_days = horizon_days
        self.repo = ScoringRepository()
        self.overlap = overlap
        """Read the next chunk while scoring one (see :meth:`overlaps`); None: on PostgreSQL."""
        self.published = 0
        """Account-day scores published by this instance (new or changed ones)."""
        self.read_ahead = 0
        """Chunk-days whose reads ran while the chunk-day before them was scored."""
        self._wake = asyncio.Event()
        self._sweep_now = False
        self._stop: asyncio.Event | None = None
        """:meth:`run`'s stop: a sweep or a pass over dirty accounts ends between chunks and
        between days once it is set (each chunk-day is its own transaction, and what is left
        stays dirty for the next start)."""

    def wake(self) -> None:
        """New events were committed: score the dirty accounts soon."""
        self._wake.set()

    def sweep_soon(self) -> None:
        """Start the next sweep now instead of at the end of the interval."""
        self._sweep_now = True
        self._wake.set()

    def today(self) -> date:
        return self.clock.now().date()

    def stopping(self) -> bool:
        """Whether :meth:`run` was asked to stop: long passes end at their next chunk or day."""
        return self._stop is not None and self._stop.is_set()

    async def compute(
        self,
        session: AsyncSession,
        account_ids: Sequence[str],
        as_of: date,
        config: TendConfig | None = None,
    ) -> list[ScoreMessage]:
        """Scores of ``account_ids`` as of ``as_of`` under ``config`` (default: the live one).
        Reads only. "What moved" is measured against the stored score of the latest earlier
        day (the day before, once the history is complete), never against the last computed
        row, so it does not depend on when the day was scored."""
        cfg = config or self.config
        activities = await self.repo.load_activity(session, account_ids, as_of, cfg.key_features)
        previous = await self.repo.load_previous_scores(session, account_ids, as_of)
        return await self._scores(activities, previous, as_of, cfg)

    async def _scores(
        self,
        activities: Sequence[AccountActivity],
        previous: Mapping[str, PreviousScore],
        as_of: date,
        cfg: TendConfig,
    ) -> list[ScoreMessage]:
        """:meth:`compute` of activities and previous scores read already."""
        now = self.clock.now()
        provisional = as_of >= now.date()
        out = []
        for n, activity in enumerate(activities, 1):
            metrics = compute_metrics(activity, cfg.key_features, cfg.scoring.trend)
            result: Score = score(
                metrics,
                activity.profile,
                cfg.scoring,
                cfg.key_features,
                previous.get(activity.profile.account_id),
            )
            out.append(result.to_message(metrics, activity.profile, now, provisional=provisional))
            if n % YIELD_EVERY == 0:
                # Also lets the next chunk's reads (see _Ahead) move on to their next statement.
                await asyncio.sleep(0)
        return out

    def overlaps(self) -> bool:
        """Whether a pass reads the next chunk while it scores this one: on PostgreSQL (the
        server works on the reads meanwhile; SQLite would make the two transactions wait on
        each other's locks), unless the constructor said otherwise."""
        if self.overlap is not None:
            return self.overlap
        bind = self.sessions.kw.get("bind")
        return bind is not None and bind.dialect.name == "postgresql"

    async def _run_pass(self, jobs: AsyncIterator[_Job]) -> int:
        """Score ``jobs`` in order, one transaction each, ending between two once
        :meth:`stopping`; returns the accounts counted (see :attr:`_Job.counted`).

        Each chunk-day is read (marks first), scored, then published, saved and committed
        under the ownership lock (:meth:`_write`), one commit after the other in order. With
        ``overlap``, while one chunk-day is scored the next one's transaction begins and does
        its reads (:class:`_Ahead`), and the one before is written meanwhile, when they
        concern other accounts (the next day of the same accounts needs this day's marks and
        scores committed first)."""
        # The collector paused for the whole pass, not chunk by chunk: resumed after each
        # chunk, it walked the objects still alive then (the next chunk's, read ahead, among
        # them), 5% of a sweep's CPU; a pass leaves about 80 objects of cyclic garbage a chunk.
        with collector_paused():
            return await self._run_jobs(jobs, self.overlaps())

    async def _run_jobs(self, jobs: AsyncIterator[_Job], overlap: bool) -> int:
        total = turns = 0
        ahead: _Ahead | None = None
        """The next chunk-day's transaction, begun while this one is scored."""
        writing: asyncio.Future[int] | None = None
        """The chunk-day before's writes and commit, while this one is scored."""
        try:
            job = await anext(jobs, None)
            while job is not None and not self.stopping():
                nxt = await anext(jobs, None) if overlap else None
                if ahead is not None and ahead.job is job:
                    current: _Ahead | None = ahead
                    self.read_ahead += 1
                else:
                    if writing is not None:
                        # The same accounts' day before: its marks and scores first.
                        total += await writing
                        writing = None
                        if self.stopping():
                            break
                    owned = self.ownership.select(job.ids)
                    current = _Ahead(self, job, owned) if owned else None
                ahead = None
                if current is None:  # none of them owned any more
                    total += 0 if job.counted is None else job.counted
                else:
                    try:
                        reads = await current.task
                        if nxt is not None and set(nxt.ids).isdisjoint(current.ids):
                            upcoming = self.ownership.select(nxt.ids)
                            if upcoming:
                                ahead = _Ahead(self, nxt, upcoming)
                        scored = await self._score(current, reads)
                        if writing is not None:
                            total += await writing  # in order: one chunk-day's commit after another
                            writing = None
                    except BaseException:
                        await current.discard()
                        raise
                    if self.stopping():
                        await current.discard()
                        break
                    writing = asyncio.ensure_future(self._write(current, reads, scored))
                    if not overlap:
                        total += await writing
                        writing = None
                turns += 1
                if turns % COLLECT_EVERY == 0:
                    collect_young()
                job = nxt if overlap else await anext(jobs, None)
                await asyncio.sleep(0)
            if writing is not None:
                total += await writing
                writing = None
        finally:
            if ahead is not None:
                await ahead.discard()
            if writing is not None:  # the pass failed or was cancelled meanwhile
                writing.cancel()
                with contextlib.suppress(BaseException):
                    await writing
        return total

    def _owned_now(self) -> tuple[frozenset[int], int]:
        return self.ownership.owned, self.ownership.partitions

    async def _score(self, current: _Ahead, reads: _Reads) -> _Scored:
        """A chunk-day's scores from its reads, and which of them changed (no lock held: only
        :meth:`_write` writes)."""
        messages = await self._scores(
            reads.activities, reads.previous, current.job.day, self.config
        )
        encoded = [encode(m) for m in messages]
        changed = [
            (raw, r)
            for raw, r in encoded
            if (old := reads.stored.get(r.account_id)) is None or not old.same_score(r)
        ]
        return _Scored([r for _, r in encoded], changed)

    async def _write(self, current: _Ahead, reads: _Reads, scored: _Scored) -> int:
        """Publish, save and commit a chunk-day under the ownership lock; if the partitions
        owned changed since its reads began, roll it back and score it again, reads included,
        under the lock. Returns what it adds to the pass's count (see :attr:`_Job.counted`)."""
        job = current.job
        async with self.ownership.lock:
            try:
                was, now = current.owned, self._owned_now()
                if was[0] is not now[0] or was[1] != now[1]:
                    await current.discard()
                    # Accounts of partitions revoked meanwhile are another replica's now.
                    owned = self.ownership.select(job.ids)
                    if not owned:
                        return 0 if job.counted is None else job.counted
                    current = _Ahead(self, job, owned)
                    reads = await current.task
                    scored = await self._score(current, reads)
                published = await self._commit(current, reads, scored)
            finally:
                await current.discard()
        n = len(scored.rows)
        RESCORE_SECONDS.observe(time.perf_counter() - current.begun)
        ACCOUNTS_SCORED.labels(job.trigger).inc(n)
        SCORES_PUBLISHED.inc(published)
        self.published += published
        return n if job.counted is None else job.counted

    async def _read(
        self, session: AsyncSession, ids: Sequence[str], day: date, floors: Mapping[str, date]
    ) -> _Reads:
        """A chunk-day's reads, in its transaction: the marks first (events committed after
        this read move updated_at, so the marks stay, see advance_marks, even if the reads
        below missed those events), then the activity, the previous and the stored scores
        (read ahead only when the chunk-day before concerns other accounts: the same
        accounts' day before must have committed its marks and scores first)."""
        marks = await self.repo.load_marks(session, list(floors)) if floors else {}
        activities = await self.repo.load_activity(session, ids, day, self.config.key_features)
        previous = await self.repo.load_previous_scores(session, ids, day)
        stored = await self.repo.load_encoded_scores(session, ids, day)
        return _Reads(marks, activities, previous, stored)

    async def _commit(self, current: _Ahead, reads: _Reads, scored: _Scored) -> int:
        """A chunk-day's writes, then its commit; returns the scores published."""
        session, day, floors = current.session, current.job.day, current.floors
        out = [(raw, r.account_id) for raw, r in scored.changed]
        saved = [r for _, r in scored.changed]
        if self.overlaps():
            # The broker and the database work at once; the commit waits for both, so a
            # failure of either rolls the chunk-day back, as when they ran one after the other
            # (a publish that succeeded before a failed save is published again later).
            done = await asyncio.gather(
                self._publish(out),
                self._save(session, saved, scored.rows, reads.marks, floors, day),
                return_exceptions=True,
            )
            for outcome in done:
                if isinstance(outcome, BaseException):
                    raise outcome
        else:
            # SQLite: the in-process bus writes in its own transaction, which would wait for
            # this one's write lock.
            await self._publish(out)
            await self._save(session, saved, scored.rows, reads.marks, floors, day)
        await session.commit()
        return len(scored.changed)

    async def _publish(self, messages: Sequence[tuple[bytes, str]]) -> None:
        if self.producer is not None and messages:
            await self.producer.publish(
                topics.SCORES, [Message(value=raw, key=key.encode()) for raw, key in messages]
            )

    async def _save(
        self,
        session: AsyncSession,
        changed: Sequence[EncodedScore],
        rows: Sequence[EncodedScore],
        marks: Mapping[str, StaleMark],
        floors: Mapping[str, date],
        day: date,
    ) -> None:
        await self.repo.save_encoded(session, changed)
        await self.repo.set_current(session, rows)
        await self.repo.advance_marks(session, _advances(marks, floors, day, self.today()))

    def _page_size(self) -> int:
        """Account ids read per page of a pass: several chunks' worth, as each page is a
        session (a connection checked out) and a statement of its own."""
        return self.chunk_size * PAGE_CHUNKS

    async def rescore_dirty(self, as_of: date | None = None) -> int:
        """Score every account marked dirty; returns how many were scored.

        Without ``as_of``, each account is scored for every day from its re-score mark (new
        events on earlier days, at most ``horizon_days`` back) or its last scored day
        (whichever is earlier) through today (see :meth:`_day_jobs`), so late events,
        a backfilled history or a scorer that was down for days still leave one correct
        score per account-day."""
        return await self._run_pass(self._dirty_jobs(as_of))

    async def _dirty_jobs(self, as_of: date | None) -> AsyncIterator[_Job]:
        after: str | None = None
        while True:
            async with self.sessions() as session:
                page = await self.repo.dirty_accounts(session, self._page_size(), after)
            if not page:
                return
            after = page[-1]
            for ids in _chunked(self.ownership.select(page), self.chunk_size):
                async for job in self._day_jobs(ids, as_of, "events"):
                    yield job

    async def sweep(
        self,
        as_of: date | None = None,
        trigger: str = "sweep",
        partitions: Iterable[int] | None = None,
    ) -> int:
        """Score every account this replica owns (only those of ``partitions`` when given), in
        keyset-paginated chunks; returns how many."""
        total = await self._run_pass(self._sweep_jobs(as_of, trigger, partitions))
        if not self.stopping():
            await self.refresh_band_gauge()
        return total

    async def _sweep_jobs(
        self, as_of: date | None, trigger: str, partitions: Iterable[int] | None
    ) -> AsyncIterator[_Job]:
        after: str | None = None
        only = None if partitions is None else set(partitions)
        while True:
            async with self.sessions() as session:
                page = await self.repo.all_account_ids(session, after, self._page_size())
            if not page:
                return
            after = page[-1]
            for ids in _chunked(self.ownership.select(page, only), self.chunk_size):
                async for job in self._day_jobs(ids, as_of, trigger):
                    yield job

    async def hold(self, stop: asyncio.Event) -> None:
        """Wait while the consumer is behind (``busy``), at most ``max_hold_s``, waking on
        ``stop``: scoring after every batch of a backlog would score the same accounts again
        and again and halve the drain's throughput."""
        if self.busy is None or not self.busy():
            return
        started = time.monotonic()
        log.info("re-scoring holds while the consumer catches up")
        while self.busy() and not stop.is_set():
            if time.monotonic() - started >= self.max_hold_s:
                log.warning(
                    "the consumer is still behind after %.0fs; re-scoring anyway", self.max_hold_s
                )
                break
            await _wait(stop, 0.25)
        held = time.monotonic() - started
        RESCORE_HELD.inc(held)
        log.info("re-scoring held %.1fs", held, extra={"seconds": round(held, 1)})

    async def _day_jobs(
        self, ids: Sequence[str], as_of: date | None, trigger: str
    ) -> AsyncIterator[_Job]:
        """The chunk-days of ``ids``: ``as_of`` only (marks untouched); when that is None,
        every day each account needs (see :meth:`_spans`) through today, oldest first."""
        if as_of is not None:
            yield _Job(ids, as_of, {}, trigger)
            return
        today = self.today()
        async with self.sessions() as session:
            spans = await self._spans(session, ids, today)
        if not spans:
            return
        floors = {a: s.floor for a, s in spans.items()}
        day = min(s.start for s in spans.values())
        counted: int | None = len(spans)
        while day <= today:
            due = [i for i in ids if i in spans and spans[i].start <= day]
            yield _Job(
                due,
                day,
                {a: floors[a] for a in due},
                trigger if day == today else "backfill",
                counted,
            )
            counted = 0
            day += timedelta(days=1)

    async def _spans(
        self, session: AsyncSession, ids: Sequence[str], today: date
    ) -> dict[str, _Span]:
        """The days each account needs.

        - Never scored: from its start (first event or contract start), at most
          ``backfill_days`` back.
        - Scored: from its last scored day (scored while it was today, so maybe provisional),
          at most ``backfill_days`` back; and from its re-score mark when that is earlier, at
          most ``horizon_days`` back (late events older than that change no stored day).
        """
        backfill_floor = today - timedelta(days=self.backfill_days)
        horizon_floor = today - timedelta(days=self.horizon_days)
        rows = await session.execute(
            select(
                Account.account_id,
                Account.scored_as_of,
                Account.rescore_from,
                Account.first_seen,
                Account.created_at,
            ).where(Account.account_id.in_(list(ids)))
        )
        spans: dict[str, _Span] = {}
        for account_id, scored_as_of, rescore_from, first_seen, created_at in rows:
            if scored_as_of is None:
                known = [d for d in (first_seen, created_at, rescore_from) if d is not None]
                start = _clamp(min(known, default=today), backfill_floor, today)
                spans[account_id] = _Span(start, backfill_floor)
                continue
            start = _clamp(scored_as_of, backfill_floor, today)
            if rescore_from is not None:
                start = min(start, _clamp(rescore_from, horizon_floor, today))
            spans[account_id] = _Span(start, horizon_floor)
        return spans

    async def dry_run(self, config: TendConfig, as_of: date | None = None) -> DryRunReport:
        """How many accounts would change band under ``config`` as of ``as_of`` (default: the
        last final day, yesterday), and which; writes nothing. Both models are judged as of
        the same day: the live model by its stored score of that day (recomputed when there
        is none), the new one computed."""
        day = as_of or self.today() - timedelta(days=1)
        report = DryRunReport(as_of=day)
        after: str | None = None
        while True:
            async with self.sessions() as session:
                ids = await self.repo.all_account_ids(session, after, self.chunk_size)
                if not ids:
                    break
                live = {
                    a: (r.band, r.score)
                    for a, r in (await self.repo.load_scores(session, ids, day)).items()
                }
                missing = [i for i in ids if i not in live]
                for msg in await self.compute(session, missing, day):
                    live[msg.account_id] = (msg.band, msg.score)
                for msg in await self.compute(session, ids, day, config):
                    report.accounts += 1
                    band_before, score_before = live[msg.account_id]
                    report.bands_before[band_before] = report.bands_before.get(band_before, 0) + 1
                    report.bands_after[msg.band] = report.bands_after.get(msg.band, 0) + 1
                    if band_before != msg.band:
                        report.changes.append(
                            BandChange(
                                account_id=msg.account_id,
                                before=band_before,  # type: ignore[arg-type]
                                after=msg.band,
                                score_before=score_before,
                                score_after=msg.score,
                            )
                        )
            after = ids[-1]
        return report

    async def refresh_band_gauge(self) -> None:
        async with self.sessions() as session:
            rows = await session.execute(select(Account.band, func.count()).group_by(Account.band))
            counts = {str(band or "unscored"): int(n) for band, n in rows}
        for band in (*BANDS, "unscored"):
            ACCOUNTS_BY_BAND.labels(band).set(counts.get(band, 0))

    async def run(self, stop: asyncio.Event) -> None:
        """Score dirty accounts after each wake-up (debounced) and sweep every interval.

        Failures are logged and retried on the next round; the accounts stay dirty.
        """
        self._stop = stop
        next_sweep = time.monotonic()
        failed = RETRY.delays()
        gained: set[int] = set()
        while not stop.is_set():
            try:
                await self.hold(stop)
                if stop.is_set():
                    break
                gained |= self.ownership.take_gained()
                if self._sweep_now or time.monotonic() >= next_sweep:
                    self._sweep_now = False
                    gained = set()  # the full sweep covers them
                    n = await self.sweep()
                    log.info("sweep scored %d accounts", n, extra={"count": n})
                    next_sweep = time.monotonic() + self.sweep_interval_s
                else:
                    if gained:
                        # Their previous owner may have died before its sweep: sweep them now.
                        n = await self.sweep(trigger="handover", partitions=gained)
                        log.info(
                            "swept %d accounts of gained partitions %s",
                            n,
                            sorted(gained),
                            extra={"count": n},
                        )
                        gained = set()
                    # Also after a hand-over: a revoke may have cut a pass short on the
                    # partitions kept, whose accounts are still dirty.
                    await self.rescore_dirty()
            except asyncio.CancelledError:
                raise
            except Exception:
                wait = failed()
                log.exception("re-scoring failed; retrying in %.1fs", wait)
                await sleep_or_stop(stop, wait)
                continue
            failed = RETRY.delays()
            timeout = max(0.0, min(self.sweep_interval_s, next_sweep - time.monotonic()))
            woke = await _wait_either(self._wake, stop, timeout)
            if woke:
                self._wake.clear()
                await _wait(stop, self.debounce_s)


def _chunked(ids: Sequence[str], size: int) -> list[Sequence[str]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _clamp(day: date, low: date, high: date) -> date:
    return min(max(day, low), high)


def _advances(
    marks: Mapping[str, StaleMark], floors: Mapping[str, date], day: date, today: date
) -> dict[str, tuple[StaleMark, date | None]]:
    """Where each account's mark moves once ``day`` is scored: past ``day`` when the mark is
    that day (counted from its floor; future days count as today), cleared with the dirty flag
    once today is scored. A mark before ``day`` (new late events since the pass began) stays
    for the next pass."""
    out: dict[str, tuple[StaleMark, date | None]] = {}
    for account_id, mark in marks.items():
        nxt = None if day >= today else day + timedelta(days=1)
        if mark.rescore_from is None:
            # Nothing to move: only a dirty flag to clear, once today is scored.
            if nxt is None and mark.dirty:
                out[account_id] = (mark, None)
        elif _clamp(mark.rescore_from, floors[account_id], today) == day:
            out[account_id] = (mark, nxt)
    return out


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _wait_either(wake: asyncio.Event, stop: asyncio.Event, wait_s: float) -> bool:
    """Wait for ``wake`` or ``stop`` up to ``wait_s``; True when ``wake`` fired."""
    tasks = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(tasks, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
    return wake.is_set()


def _score_text(score: float | None) -> str:
    return "no score" if score is None else f"{score:.1f}"


def describe(report: DryRunReport, live: str = "the live model", new: str = "the new model") -> str:
    """The dry run in lines for people: which models were compared (``live``, ``new``: where
    each came from), the bands under each, the moves, and each account that moves."""
    lines = [
        f"Live model: {live}",
        f"New model:  {new}",
        f"Both judged as of {report.as_of}: {len(report.changes)} of {report.accounts} "
        "accounts would change band",
    ]
    before_n = {(b or "unscored"): n for b, n in report.bands_before.items()}
    after_n = {(b or "unscored"): n for b, n in report.bands_after.items()}
    lines.append("  band      live    new")
    for band in dict.fromkeys((*BANDS, *sorted(before_n | after_n))):
        live_n, new_n = before_n.get(band, 0), after_n.get(band, 0)
        if live_n or new_n:
            lines.append(f"  {band:<8} {live_n:>5} {new_n:>6}")
    moves: dict[tuple[str, str], int] = {}
    for c in report.changes:
        key = (c.before or "unscored", c.after)
        moves[key] = moves.get(key, 0) + 1
    for (was, now), n in sorted(moves.items()):
        lines.append(f"  {was} -> {now}: {n}")
    for c in sorted(report.changes, key=lambda c: c.account_id):
        before = f"{c.before} ({_score_text(c.score_before)})" if c.before else "unscored"
        lines.append(f"  {c.account_id}: {before} -> {c.after} ({_score_text(c.score_after)})")
    return "\n".join(lines)

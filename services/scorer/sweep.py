"""Re-scoring: accounts touched by new events soon after their batch commits, every account
on a periodic sweep (a dormant account sends nothing), and on demand (``tend rescore``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.metrics import compute_metrics
from services.scorer.repository import ScoreRow, ScoringRepository
from services.scorer.scoring import Score, score
from shared import topics
from shared.bus.base import Message, Producer
from shared.clock import Clock
from shared.config import TendConfig
from shared.db.models import Account
from shared.db.types import utcnow
from shared.scores import Band, PreviousScore, ScoreMessage

log = logging.getLogger(__name__)

RESCORE_SECONDS = Histogram(
    "tend_scorer_rescore_duration_seconds",
    "Time to score one chunk of accounts (load, compute, save, publish).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ACCOUNTS_SCORED = Counter(
    "tend_scorer_accounts_scored_total", "Accounts scored, by trigger.", ["trigger"]
)
ACCOUNTS_BY_BAND = Gauge("tend_scorer_accounts", "Accounts by their current health band.", ["band"])
ONBOARDING_COMPONENTS = frozenset({"seats_activated", "time_to_first_value", "first_week_logins"})


def previous_from_row(row: ScoreRow) -> PreviousScore:
    components = {
        name: float(c["score"]) for name, c in row.components.items() if isinstance(c, dict)
    }
    onboarding = row.band == "new" or bool(ONBOARDING_COMPONENTS & components.keys())
    return PreviousScore(
        score=row.score,
        band=row.band,
        scorecard="onboarding" if onboarding else "health",
        components=components,
        as_of=row.as_of,
    )


_ROW_PARTS = {"components", "left_out", "metrics", "moved"}


def row_from_message(msg: ScoreMessage) -> ScoreRow:
    # One serialiser call for all the JSON parts (one per part is several times slower).
    parts = msg.model_dump(mode="json", include=_ROW_PARTS)
    return ScoreRow(
        account_id=msg.account_id,
        as_of=msg.as_of,
        score=msg.score,
        band=msg.band,
        components={c["name"]: c for c in parts["components"]},
        left_out=list(parts["left_out"]),
        metrics=parts["metrics"],
        moved=parts["moved"],
        previous_score=msg.previous_score,
        previous_band=msg.previous_band,
        computed_at=msg.computed_at,
    )


@dataclass(slots=True)
class BandChange:
    account_id: str
    before: Band | None
    after: Band
    score_before: float | None
    score_after: float | None


@dataclass(slots=True)
class DryRunReport:
    """What a model would change, computed without writing or publishing anything."""

    as_of: date
    accounts: int = 0
    changes: list[BandChange] = field(default_factory=list)


class Rescorer:
    """Keeps every account's health score current.

    Contract: a chunk of accounts is scored from one consistent read, published to
    ``tend.scores.v1`` (key = account id) and then saved with the dirty flags cleared, in one
    database transaction; if publishing or saving fails the transaction rolls back, the
    accounts stay dirty and the chunk is retried later. A crash after publishing and before
    the commit re-publishes the same (account, as_of) score: consumers must treat a score
    message as idempotent per (account, as_of). The wall clock comes from ``clock``.
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
    ) -> None:
        self.sessions = sessions
        self.producer = producer
        self.config = config
        self.clock = clock
        self.chunk_size = chunk_size
        self.sweep_interval_s = sweep_interval_s
        self.debounce_s = debounce_s
        self.backfill_days = backfill_days
        self.repo = ScoringRepository()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New events were committed: score the dirty accounts soon."""
        self._wake.set()

    def today(self) -> date:
        return self.clock.now().date()

    async def compute(
        self,
        session: AsyncSession,
        account_ids: Sequence[str],
        as_of: date,
        config: TendConfig | None = None,
    ) -> list[ScoreMessage]:
        """Scores of ``account_ids`` as of ``as_of`` under ``config`` (default: the live one).
        Reads only."""
        cfg = config or self.config
        activities = await self.repo.load_activity(session, account_ids, as_of, cfg.key_features)
        previous = await self.repo.load_previous(session, account_ids, as_of)
        now = self.clock.now()
        out = []
        for activity in activities:
            metrics = compute_metrics(activity, cfg.key_features, cfg.scoring.trend)
            prev_row = previous.get(activity.profile.account_id)
            result: Score = score(
                metrics,
                activity.profile,
                cfg.scoring,
                cfg.key_features,
                previous_from_row(prev_row) if prev_row else None,
            )
            out.append(result.to_message(metrics, activity.profile, now))
        return out

    async def _score_chunk(self, account_ids: Sequence[str], as_of: date, trigger: str) -> int:
        started = time.perf_counter()
        async with self.sessions() as session, session.begin():
            # Wall time, not the injectable clock: it is compared with accounts.updated_at,
            # which the writer stamps with the real time.
            loaded_at = utcnow()
            messages = await self.compute(session, account_ids, as_of)
            if self.producer is not None and messages:
                await self.producer.publish(
                    topics.SCORES,
                    [Message(value=m.to_bytes(), key=m.account_id.encode()) for m in messages],
                )
            await self.repo.save_scores(
                session, [row_from_message(m) for m in messages], loaded_at=loaded_at
            )
        RESCORE_SECONDS.observe(time.perf_counter() - started)
        ACCOUNTS_SCORED.labels(trigger).inc(len(messages))
        return len(messages)

    async def rescore_dirty(self, as_of: date | None = None) -> int:
        """Score every account marked dirty; returns how many were scored.

        Without ``as_of``, each account's missing days are filled in first (see
        :meth:`_score_until`), so a backfilled history or a scorer that was down for days still
        leaves one score per account-day."""
        total = 0
        seen: set[str] = set()
        while True:
            async with self.sessions() as session:
                ids = [
                    i
                    for i in await self.repo.dirty_accounts(session, self.chunk_size)
                    if i not in seen
                ]
            if not ids:
                return total
            seen.update(ids)
            total += await self._score_until(ids, as_of, "events")

    async def sweep(self, as_of: date | None = None, trigger: str = "sweep") -> int:
        """Score every account, in keyset-paginated chunks; returns how many."""
        total = 0
        after: str | None = None
        while True:
            async with self.sessions() as session:
                ids = await self.repo.all_account_ids(session, after, self.chunk_size)
            if not ids:
                break
            total += await self._score_until(ids, as_of, trigger)
            after = ids[-1]
        await self.refresh_band_gauge()
        return total

    async def _score_until(self, ids: Sequence[str], as_of: date | None, trigger: str) -> int:
        """Score ``ids`` as of ``as_of``; when that is None, as of every day from the day after
        each account's last score (or its first activity) through today, oldest first, at most
        ``backfill_days`` back. Returns the number of accounts scored."""
        if as_of is not None:
            return await self._score_chunk(ids, as_of, trigger)
        today = self.today()
        async with self.sessions() as session:
            starts = await self._first_unscored_days(session, ids, today)
        day = min(starts.values(), default=today)
        while day <= today:
            due = [i for i in ids if starts[i] <= day]
            if day == today:
                return await self._score_chunk(due, day, trigger)
            await self._score_chunk(due, day, "backfill")
            day += timedelta(days=1)
        return 0

    async def _first_unscored_days(
        self, session: AsyncSession, ids: Sequence[str], today: date
    ) -> dict[str, date]:
        earliest = today - timedelta(days=self.backfill_days)
        rows = await session.execute(
            select(
                Account.account_id, Account.scored_as_of, Account.first_seen, Account.created_at
            ).where(Account.account_id.in_(list(ids)))
        )
        starts = dict.fromkeys(ids, today)
        for account_id, scored_as_of, first_seen, created_at in rows:
            if scored_as_of is not None:
                start = scored_as_of + timedelta(days=1)
            else:
                known = [d for d in (first_seen, created_at) if d is not None]
                start = min(known) if known else today
            starts[account_id] = min(today, max(start, earliest))
        return starts

    async def dry_run(self, config: TendConfig, as_of: date | None = None) -> DryRunReport:
        """How many accounts would change band under ``config``, and which; writes nothing."""
        day = as_of or self.today()
        report = DryRunReport(as_of=day)
        after: str | None = None
        while True:
            async with self.sessions() as session:
                ids = await self.repo.all_account_ids(session, after, self.chunk_size)
                if not ids:
                    break
                current = {
                    a.account_id: a
                    for a in await session.scalars(
                        select(Account).where(Account.account_id.in_(ids))
                    )
                }
                for msg in await self.compute(session, ids, day, config):
                    report.accounts += 1
                    before = current.get(msg.account_id)
                    band_before = before.band if before else None
                    if band_before != msg.band:
                        report.changes.append(
                            BandChange(
                                account_id=msg.account_id,
                                before=band_before,  # type: ignore[arg-type]
                                after=msg.band,
                                score_before=before.score if before else None,
                                score_after=msg.score,
                            )
                        )
            after = ids[-1]
        return report

    async def refresh_band_gauge(self) -> None:
        async with self.sessions() as session:
            rows = await session.execute(select(Account.band, func.count()).group_by(Account.band))
            counts = {str(band or "unscored"): int(n) for band, n in rows}
        for band in ("green", "yellow", "red", "new", "unknown", "unscored"):
            ACCOUNTS_BY_BAND.labels(band).set(counts.get(band, 0))

    async def run(self, stop: asyncio.Event) -> None:
        """Score dirty accounts after each wake-up (debounced) and sweep every interval.

        Failures are logged and retried on the next round; the accounts stay dirty.
        """
        next_sweep = time.monotonic()
        while not stop.is_set():
            try:
                if time.monotonic() >= next_sweep:
                    n = await self.sweep()
                    log.info("sweep scored %d accounts", n)
                    next_sweep = time.monotonic() + self.sweep_interval_s
                else:
                    await self.rescore_dirty()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("re-scoring failed; will retry")
                await _wait(stop, 5.0)
                continue
            timeout = max(0.0, min(self.sweep_interval_s, next_sweep - time.monotonic()))
            woke = await _wait_either(self._wake, stop, timeout)
            if woke:
                self._wake.clear()
                await _wait(stop, self.debounce_s)


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


def describe(report: DryRunReport) -> str:
    lines = [
        f"as of {report.as_of}: {len(report.changes)} of {report.accounts} accounts would "
        f"change band"
    ]
    for c in sorted(report.changes, key=lambda c: c.account_id):
        before = f"{c.before} ({c.score_before})" if c.before else "unscored"
        lines.append(f"  {c.account_id}: {before} -> {c.after} ({c.score_after})")
    return "\n".join(lines)

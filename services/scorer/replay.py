"""Scores of past days replayed in event time from the stored daily rollups (``tend backtest``).

The re-scorer's scoring code (:func:`~services.scorer.usage.compute_metrics` and
:func:`~services.scorer.scoring.score`) over the activity of each day, which
:mod:`services.scorer.rollups` answers from the chunk's rollups read once (the same
:class:`~services.scorer.activity.AccountActivity` as ``ScoringRepository.load_activity``, a
test checks). What makes it a replay rather than a re-score: nothing is written or published,
and a score carries no "what moved" (no previous score, ``moved`` empty): what reads the replay
(the alert rules' verdicts, the bands) never reads them, and measuring them was a twentieth of
the replay (tests/backtest compares the report with the replay that measured them). No clock:
a score of day D reads only the rollups dated on or before D.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.scorer.activity import AccountActivity
from services.scorer.rollups import RollupMemory, load_rollups
from services.scorer.scoring import score
from services.scorer.usage import compute_metrics
from shared.config import TendConfig
from shared.scores import ScoreMessage, UsageMetrics
from shared.scoring_model import TrendWindows

__all__ = ["replay_scores"]


async def replay_scores(
    session: AsyncSession,
    account_ids: Sequence[str],
    first: date,
    last: date,
    configs: Sequence[TendConfig],
    *,
    wanted: Callable[[str, date], bool] | None = None,
) -> AsyncIterator[tuple[date, list[list[ScoreMessage]]]]:
    """Each day from ``first`` through ``last`` (ascending) with the scores of ``account_ids``
    as of that day, one list per model of ``configs`` (models with the same key features share
    one read of the rollups). ``wanted(account, day)`` leaves account-days out (a day before
    the account began, or while it is cancelled). Keep ``account_ids`` to a few hundred: their
    rollups are held in memory. The scores are those the scorer computes without a previous
    score.
    """
    memories: dict[tuple[str, ...], RollupMemory] = {}
    for config in configs:
        keys = tuple(config.key_features)
        if keys not in memories:
            memories[keys] = await load_rollups(session, account_ids, last, keys)
    day = first
    while day <= last:
        ids = [a for a in account_ids if wanted is None or wanted(a, day)]
        out: list[list[ScoreMessage]] = [[] for _ in configs]
        # The end of the day scored is the messages' computed_at: never the wall clock.
        stamp = datetime.combine(day, time.max, tzinfo=UTC)
        loaded: dict[tuple[str, ...], list[AccountActivity]] = {}
        # Models with the same key features and trend windows (a proposed config that changes
        # weights, bands or rules) share the day's metrics too.
        measured: dict[tuple[tuple[str, ...], TrendWindows], list[UsageMetrics]] = {}
        for n, config in enumerate(configs):
            if not ids:
                break
            keys = tuple(config.key_features)
            if keys not in loaded:
                loaded[keys] = memories[keys].activity(ids, day)
            trend = config.scoring.trend
            if (keys, trend) not in measured:
                measured[(keys, trend)] = [compute_metrics(a, keys, trend) for a in loaded[keys]]
            for activity, metrics in zip(loaded[keys], measured[(keys, trend)], strict=True):
                result = score(metrics, activity.profile, config.scoring, keys)
                out[n].append(result.to_message(metrics, activity.profile, stamp))
        yield day, out
        day += timedelta(days=1)

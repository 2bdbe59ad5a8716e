"""The backtest's replay as it was before its fast paths, kept as the reference the tests compare
with: every score with "what moved" since the replay's previous day, every finding of every day
(explained) through :func:`~shared.alerting.lifecycle.step_day`, every key's state kept (no idle
keys forgotten), the score history rebuilt as models each day."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.rules import ScoreHistory, ScorePoint, evaluate
from services.cli.backtest import Window
from services.scorer.rollups import RollupMemory, load_rollups
from services.scorer.scoring import score
from services.scorer.usage import compute_metrics
from shared.alert_rules import RULE_NAMES, RulesConfig
from shared.alerting.lifecycle import DayState, step_day
from shared.backtest.model import AccountRun, RaisedAlert
from shared.config import TendConfig
from shared.outcomes.lifecycle import is_cancelled
from shared.outcomes.model import AccountHistory
from shared.scores import PreviousScore, ScoreMessage


async def reference_scores(
    session: AsyncSession,
    account_ids: Sequence[str],
    first: date,
    last: date,
    configs: Sequence[TendConfig],
    *,
    wanted: Callable[[str, date], bool] | None = None,
) -> AsyncIterator[tuple[date, list[list[ScoreMessage]]]]:
    """Each day's scores as the replay computed them before its fast paths: each model on its
    own, each score measuring "what moved" since the account's previous replayed day."""
    memories: dict[tuple[str, ...], RollupMemory] = {}
    for config in configs:
        keys = tuple(config.key_features)
        if keys not in memories:
            memories[keys] = await load_rollups(session, account_ids, last, keys)
    previous: list[dict[str, PreviousScore]] = [{} for _ in configs]
    day = first
    while day <= last:
        ids = [a for a in account_ids if wanted is None or wanted(a, day)]
        out: list[list[ScoreMessage]] = [[] for _ in configs]
        stamp = datetime.combine(day, time.max, tzinfo=UTC)
        for n, config in enumerate(configs):
            keys = tuple(config.key_features)
            for activity in memories[keys].activity(ids, day) if ids else []:
                metrics = compute_metrics(activity, keys, config.scoring.trend)
                account_id = activity.profile.account_id
                result = score(
                    metrics, activity.profile, config.scoring, keys, previous[n].get(account_id)
                )
                previous[n][account_id] = result.as_previous()
                out[n].append(result.to_message(metrics, activity.profile, stamp))
        yield day, out
        day += timedelta(days=1)


class ReferenceAlertReplay:
    def __init__(self, rules: RulesConfig) -> None:
        self.rules = rules
        self.history_days = max(rules.health_drop.within_days, 1)
        self.raised: list[RaisedAlert] = []
        self.points: dict[str, deque[ScorePoint]] = {}
        self.states: dict[str, dict[tuple[str, str], DayState]] = {}

    def feed(self, message: ScoreMessage) -> None:
        day = message.as_of
        points = self.points.setdefault(message.account_id, deque())
        states = self.states.setdefault(message.account_id, {})
        while points and points[0].as_of < day - timedelta(self.history_days):
            points.popleft()
        history = ScoreHistory(points=tuple(points))
        findings = evaluate(message, history, self.rules)
        points.append(ScorePoint.of(message))
        for f in findings:
            key = (f.rule, f.feature)
            before = states.get(key, DayState())
            after = step_day(before, day, f.holds, self.rules.policy(f.rule))
            states[key] = after
            if after.status == "open" and after.opened_on == day and before.opened_on != day:
                assert after.started_on is not None
                self.raised.append(
                    RaisedAlert(
                        account_id=message.account_id,
                        rule=f.rule,
                        feature=f.feature,
                        started_on=after.started_on,
                        opened_on=day,
                        opportunity=self.rules.rule(f.rule).severity == "opportunity",
                    )
                )


async def reference_runs(
    session: AsyncSession,
    histories: dict[str, AccountHistory],
    configs: Sequence[TendConfig],
    window: Window,
    start: date,
) -> list[list[AccountRun]]:
    """Every account's run under each model, all accounts in one pass."""
    ids = sorted(histories)

    def wanted(account_id: str, day: date) -> bool:
        h = histories[account_id]
        return h.start is not None and h.start <= day and not is_cancelled(h.outcomes, day)

    replays = [ReferenceAlertReplay(c.rules) for c in configs]
    runs = [{a: AccountRun(a) for a in ids} for _ in configs]
    async for day, scored in reference_scores(
        session, ids, start, window.last, configs, wanted=wanted
    ):
        for n, messages in enumerate(scored):
            for m in messages:
                replays[n].feed(m)
                if day >= window.first:
                    runs[n][m.account_id].add_day(day, m.band)
    for n, replay in enumerate(replays):
        for alert in replay.raised:
            runs[n][alert.account_id].alerts.append(alert)
    assert set(RULE_NAMES) >= {a.rule for r in runs for run in r.values() for a in run.alerts}
    return [list(r.values()) for r in runs]

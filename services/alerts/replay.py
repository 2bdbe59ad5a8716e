"""The alert rules replayed over a sequence of scores, with in-memory state (``tend backtest``).

The same rules (:func:`~services.alerts.rules.evaluate`) and the same event-time life cycle
(:func:`~shared.alerting.lifecycle.step_day`) as the alerts consumer, but no database, no alert
rows and no notifications: a replay's state lives in this object, so it can judge a proposed
configuration beside the live one. Days are judged in ascending order per account; a day the
caller does not feed (the account did not exist yet, or was cancelled: the consumer judges no
score of a cancelled account) changes nothing, as in the consumer.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta

from services.alerts.rules import ScoreHistory, ScorePoint, evaluate
from shared.alert_rules import RULE_NAMES, RulesConfig
from shared.alerting.lifecycle import DayState, is_idle, moves_only_its_day, step_day
from shared.backtest.model import RaisedAlert
from shared.construct import built
from shared.scores import ScoreMessage

__all__ = ["AlertReplay"]


_NEVER = DayState()
"""The state of a key never evaluated (and of one forgotten once idle)."""


@dataclass(slots=True)
class _Account:
    points: deque[ScorePoint]
    states: dict[tuple[str, str], DayState] = field(default_factory=dict)
    """The keys that are not idle (:func:`~shared.alerting.lifecycle.is_idle`): most days most
    rules do not hold for most accounts, and an idle key's day changes no episode."""


class AlertReplay:
    """Feeds score messages, in ascending days per account, through the rules and the life
    cycle; :attr:`raised` lists every episode opened, in the order they opened."""

    def __init__(self, rules: RulesConfig) -> None:
        self.rules = rules
        self.history_days = max(rules.health_drop.within_days, 1)
        self.raised: list[RaisedAlert] = []
        self._accounts: dict[str, _Account] = {}
        self._policy = {name: rules.policy(name) for name in RULE_NAMES}
        self._opportunity = {
            name: rules.rule(name).severity == "opportunity" for name in RULE_NAMES
        }

    def feed(self, message: ScoreMessage) -> None:
        day = message.as_of
        account = self._accounts.get(message.account_id)
        if account is None:
            account = self._accounts[message.account_id] = _Account(points=deque())
        # health_drop looks back within_days: older points are never read again.
        points = account.points
        if points:
            oldest = day - timedelta(self.history_days)
            while points and points[0].as_of < oldest:
                points.popleft()
        # Both built from a validated message and validated points: constructed, not validated.
        history = built(ScoreHistory, {"points": tuple(account.points)})
        # Only the verdicts are read here: findings without their text.
        findings = evaluate(message, history, self.rules, explain=False)
        account.points.append(
            built(
                ScorePoint,
                {
                    "as_of": day,
                    "score": message.score,
                    "band": message.band,
                    "scorecard": message.scorecard,
                },
            )
        )
        states = account.states
        for f in findings:
            key = (f.rule, f.feature)
            before = states.get(key)
            if before is None:
                if not f.holds:
                    continue
                before = _NEVER
            elif moves_only_its_day(before, f.holds):
                # An open episode that holds on, or a closed key that stays clear: only its
                # last day would move, which nothing here reads (no copy a day).
                continue
            after = step_day(before, day, f.holds, self._policy[f.rule])
            if is_idle(after):
                states.pop(key, None)
            else:
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
                        opportunity=self._opportunity[f.rule],
                    )
                )

    def forget(self, account_id: str) -> None:
        """Drop an account's state once its days are all fed (memory stays bounded)."""
        self._accounts.pop(account_id, None)

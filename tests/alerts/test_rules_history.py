"""Which rules read other days than their own: only ``READS_OTHER_DAYS`` (``health_drop``).

The alerts consumer judges a stored day again when an earlier day's score changes, but only
with these rules (the scorer re-publishes a day whose own message changed, so a rule that reads
only the day's message is judged again whenever its verdict can change). A rule that starts
reading the history must join ``READS_OTHER_DAYS`` and be judged again from what the consumer
stores of a day: this test fails until it does. And ``judge_again``, from a day's point
and its worst move (what is stored), gives the finding ``health_drop`` gives from the message.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.alerts.rules import (
    READS_OTHER_DAYS,
    RULES,
    ScoreHistory,
    ScorePoint,
    evaluate,
    health_drop,
    judge_again,
    worst_move,
)
from shared.alert_rules import RULE_NAMES, RulesConfig
from shared.scores import EXAMPLE_SCORE, ComponentMove, Moved, ScoreMessage
from tests.alerts.usage_sim import SimUsage, habits, simulate, snapshot

pytestmark = pytest.mark.unit

CONFIG = RulesConfig()
EXAMPLES = settings(max_examples=150, deadline=None, derandomize=True)
WEEKS = 16


@cache
def usage(seed: int) -> SimUsage:
    """An account whose users come on 20% to 90% of the weekdays, and half of them stop
    after 10 weeks: trends, dormancy, unused features and a lost champion to judge."""
    h = habits(12, seed)
    return simulate(12, WEEKS, lambda d, u: h[u] if d < 70 or u % 2 else 0.0, seed)


scores = st.floats(0, 100, allow_nan=False).map(lambda x: round(x, 1))
scorecards = st.sampled_from(["health", "onboarding"])


@st.composite
def messages(draw: st.DrawFn) -> ScoreMessage:
    """A simulated day's metrics (or the example score's), with a score, band and what moved."""
    if draw(st.booleans()):
        base = EXAMPLE_SCORE
    else:
        base = snapshot(usage(draw(st.integers(0, 3))), draw(st.integers(28, WEEKS * 7 - 1)))
    moves = draw(
        st.lists(st.tuples(st.sampled_from(["recency", "stickiness"]), scores), max_size=2)
    )
    return base.model_copy(
        update={
            "score": draw(st.none() | scores),
            "band": draw(st.sampled_from(["green", "yellow", "red"])),
            "scorecard": draw(scorecards),
            "seats": draw(st.sampled_from([None, 10, 12, 40])),
            "moved": Moved(
                components=tuple(
                    ComponentMove(name=n, previous=50.0, current=50.0 + d - 50, delta=d - 50)
                    for n, d in moves
                )
            ),
        }
    )


@st.composite
def histories(draw: st.DrawFn, message: ScoreMessage) -> ScoreHistory:
    """Scores of the days around the message's (before, on and after it)."""
    days = draw(st.lists(st.integers(-10, 2), unique=True, max_size=12))
    return ScoreHistory(
        points=tuple(
            ScorePoint(
                as_of=message.as_of + timedelta(days=d),
                score=draw(st.none() | scores),
                band=draw(st.sampled_from(["green", "yellow", "red"])),
                scorecard=draw(scorecards),
            )
            for d in days
        )
    )


class TestOnlyTheseRulesReadOtherDays:
    @EXAMPLES
    @given(data=st.data())
    def test_every_other_rule_judges_a_day_by_its_own_message(self, data: st.DataObject) -> None:
        message = data.draw(messages())
        history = data.draw(histories(message))
        for name in RULE_NAMES:
            if name in READS_OTHER_DAYS:
                continue
            rule, cfg = RULES[name], CONFIG.rule(name)
            alone = rule(message, None, cfg, True)
            assert rule(message, history, cfg, True) == alone, name
            assert rule(message, ScoreHistory(), cfg, True) == alone, name

    def test_health_drop_does_read_them(self) -> None:
        # The guard above can fail: the one rule listed changes with the history.
        earlier = ScorePoint(
            as_of=EXAMPLE_SCORE.as_of - timedelta(days=1), score=90.0, band="green"
        )
        cfg = CONFIG.health_drop
        assert health_drop(EXAMPLE_SCORE, None, cfg) == []
        assert health_drop(EXAMPLE_SCORE, ScoreHistory(points=(earlier,)), cfg)[0].holds


class TestAStoredDayIsJudgedAsItsMessage:
    @EXAMPLES
    @given(data=st.data(), explain=st.booleans())
    def test_from_its_point_and_worst_move(self, data: st.DataObject, explain: bool) -> None:
        message = data.draw(messages())
        history = data.draw(histories(message))
        want = [
            f
            for f in evaluate(message, history, CONFIG, explain=explain)
            if f.rule in READS_OTHER_DAYS
        ]
        point = ScorePoint.of(message)
        assert judge_again(point, worst_move(message), history, CONFIG, explain) == want

    def test_nothing_when_the_rule_is_off(self) -> None:
        off = RulesConfig.model_validate({"health_drop": {"enabled": False}})
        history = ScoreHistory(
            points=(
                ScorePoint(as_of=EXAMPLE_SCORE.as_of - timedelta(days=1), score=90.0, band="green"),
            )
        )
        point = ScorePoint.of(EXAMPLE_SCORE)
        assert judge_again(point, None, history, CONFIG)[0].holds
        assert judge_again(point, None, history, off) == []

    def test_the_worst_move_is_the_largest_fall(self) -> None:
        assert worst_move(EXAMPLE_SCORE) == ("login_trend", -15.2)
        flat = EXAMPLE_SCORE.model_copy(update={"moved": Moved()})
        assert worst_move(flat) is None

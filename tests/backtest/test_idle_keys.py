"""The backtest's replay forgets a key once it is idle (``is_idle``) and skips that key's days
that do not hold, and keeps a state whose day would change only its ``last_day``
(``moves_only_its_day``): on random findings and policies, the episodes opened (the only thing
the replay keeps) are those of stepping every day of every key."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.alert_rules import Policy
from shared.alerting.lifecycle import DayState, is_idle, moves_only_its_day, step_day

pytestmark = pytest.mark.unit

DAY0 = date(2026, 1, 1)

policies = st.builds(
    Policy,
    for_days=st.integers(1, 4),
    keep_firing_for_days=st.integers(1, 4),
    reopen_cooldown_days=st.integers(0, 5),
    repeat_interval=st.none(),
    notify_on_resolve=st.booleans(),
)
# Each day: a gap before it (days without a finding) and whether the finding holds.
days = st.lists(st.tuples(st.integers(1, 3), st.booleans()), max_size=60)


def opened(
    policy: Policy, findings: list[tuple[int, bool]], *, forget: bool, in_place: bool = False
) -> list[object]:
    state: DayState | None = None
    out: list[object] = []
    day = DAY0
    for gap, holds in findings:
        day += timedelta(days=gap)
        before = state
        if before is None:
            if forget and not holds:
                continue
            before = DayState()
        elif in_place and moves_only_its_day(before, holds):
            full = step_day(before, day, holds, policy)
            # Only the day moves: the same state but for last_day.
            assert full.model_copy(update={"last_day": before.last_day}) == before
            continue
        after = step_day(before, day, holds, policy)
        state = None if forget and is_idle(after) else after
        if after.status == "open" and after.opened_on == day and before.opened_on != day:
            out.append((after.started_on, day, after.reopenings))
    return out


@settings(max_examples=200, deadline=None)
@given(policies, days)
def test_forgetting_idle_keys_opens_the_same_episodes(
    policy: Policy, findings: list[tuple[int, bool]]
) -> None:
    assert opened(policy, findings, forget=True) == opened(policy, findings, forget=False)


@settings(max_examples=300, deadline=None)
@given(policies, days)
def test_keeping_states_whose_day_moves_only_opens_the_same_episodes(
    policy: Policy, findings: list[tuple[int, bool]]
) -> None:
    expected = opened(policy, findings, forget=False)
    assert opened(policy, findings, forget=True, in_place=True) == expected
    assert opened(policy, findings, forget=False, in_place=True) == expected


def test_a_key_never_evaluated_is_idle() -> None:
    assert is_idle(DayState())
    policy = Policy(
        for_days=2,
        keep_firing_for_days=1,
        reopen_cooldown_days=0,
        repeat_interval=None,
        notify_on_resolve=True,
    )
    after = step_day(DayState(), DAY0, False, policy)
    assert is_idle(after) and after != DayState()

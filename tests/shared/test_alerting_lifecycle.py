"""The alert life cycle in days of event time (hold N days, clear M days, gaps, cool-down,
replays) and in the present (announce once, repeats, ack / snooze / resolve)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from shared.alert_rules import Policy, RulesConfig
from shared.alerting.lifecycle import (
    Action,
    AlertState,
    DayState,
    LifecycleError,
    Status,
    acknowledge,
    present,
    replay,
    resolve,
    snooze,
    step_day,
)
from shared.config import parse_config

pytestmark = pytest.mark.unit

DAY0 = date(2026, 11, 2)
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
KEY = ("login_decline", "")
H, C = True, False


def policy(
    for_days: int = 2,
    keep: int = 3,
    cooldown: int = 14,
    repeat_days: float | None = 7,
    notify_on_resolve: bool = True,
) -> Policy:
    return Policy(
        for_days=for_days,
        keep_firing_for_days=keep,
        reopen_cooldown_days=cooldown,
        repeat_interval=None if repeat_days is None else timedelta(days=repeat_days),
        notify_on_resolve=notify_on_resolve,
    )


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


def run(
    series: Sequence[bool | None], p: Policy | None = None, state: DayState | None = None
) -> list[DayState]:
    """One finding a day from DAY0 (None: no finding that day, a gap)."""
    p = p or policy()
    s = state or DayState()
    out = []
    for n, holds in enumerate(series):
        if holds is not None:
            s = step_day(s, day(n), holds, p)
        out.append(s)
    return out


def statuses(states: Sequence[DayState]) -> list[str]:
    return [s.status for s in states]


class TestHoldForDays:
    @pytest.mark.parametrize("for_days", [1, 2, 5])
    def test_fires_on_the_day_the_condition_has_held_for_days(self, for_days: int) -> None:
        states = run([H] * 6, policy(for_days=for_days))
        assert statuses(states) == ["pending"] * (for_days - 1) + ["open"] * (7 - for_days)
        fired = states[for_days - 1]
        assert (fired.started_on, fired.opened_on) == (day(0), day(for_days - 1))

    def test_a_clear_day_restarts_the_hold(self) -> None:
        states = run([H, H, C, H, H, H], policy(for_days=3))
        assert statuses(states) == ["pending", "pending", "none", "pending", "pending", "open"]
        assert states[-1].started_on == day(3)

    def test_a_gap_neither_breaks_nor_restarts_the_hold(self) -> None:
        # Days 1 and 2 have no finding (no score, or the rule could not judge): the hold that
        # began on day 0 goes on, and the days in between count.
        states = run([H, None, None, H], policy(for_days=4))
        assert statuses(states) == ["pending", "pending", "pending", "open"]
        assert (states[-1].started_on, states[-1].opened_on) == (day(0), day(3))

    def test_many_evaluations_of_one_day_are_one_day(self) -> None:
        s = step_day(DayState(), day(0), H, policy())
        with pytest.raises(ValueError, match="not after the last evaluated day"):
            step_day(s, day(0), H, policy())


class TestKeepFiringForDays:
    @pytest.mark.parametrize("keep", [1, 3])
    def test_resolves_after_clear_for_days(self, keep: int) -> None:
        states = run([H, H] + [C] * 4, policy(keep=keep))
        expected = ["pending", "open"] + ["open"] * (keep - 1) + ["resolved"] * (5 - keep)
        assert statuses(states) == expected
        assert states[-1].resolved_on == day(1 + keep)
        assert states[-1].resolved_by == "condition"

    def test_a_one_day_dip_back_to_health_does_not_resolve(self) -> None:
        states = run([H, H, C, H, C, C, H], policy(keep=3))
        assert statuses(states) == ["pending"] + ["open"] * 6

    def test_a_flapping_condition_is_one_episode(self) -> None:
        states = run([H, H, C, H, C, H, C, C, C], policy(keep=3))
        assert statuses(states)[-1] == "resolved"
        assert {s.started_on for s in states if s.started_on} == {day(0)}


class TestCoolDown:
    def test_a_return_within_the_cool_down_continues_the_same_alert(self) -> None:
        # open day 1, resolved day 4, holds again from day 6: 2 days after the resolve
        states = run([H, H, C, C, C, C, H, H], policy(keep=3, cooldown=14))
        assert statuses(states)[-3:] == ["resolved", "pending", "open"]
        last = states[-1]
        assert (last.started_on, last.opened_on, last.reopenings) == (day(0), day(1), 1)
        assert last.resolved_on is None

    def test_a_return_after_the_cool_down_is_a_new_episode(self) -> None:
        series = [H, H, C, C, C] + [C] * 5 + [H, H]
        last = run(series, policy(keep=3, cooldown=3))[-1]
        assert (last.status, last.started_on, last.opened_on, last.reopenings) == (
            "open",
            day(10),
            day(11),
            0,
        )


class TestReplay:
    def series(self, seed: int, n: int = 60) -> list[dict[tuple[str, str], bool]]:
        rnd = random.Random(seed)
        rules = [("login_decline", ""), ("dormant", ""), ("feature_unused", "reports")]
        out = []
        for _ in range(n):
            out.append({k: rnd.random() < 0.45 for k in rules if rnd.random() < 0.9})
        return out

    def policy_of(self, rule: str) -> Policy:
        return {"dormant": policy(1, 2, 0)}.get(rule, policy(2, 3, 14))

    @pytest.mark.parametrize("seed", range(8))
    def test_replaying_from_any_day_gives_the_in_order_history(self, seed: int) -> None:
        days = [(day(n), holds) for n, holds in enumerate(self.series(seed))]
        in_order = replay({}, days, self.policy_of)
        cut = random.Random(seed).randrange(1, len(days))
        head = replay({}, days[:cut], self.policy_of)
        checkpoint = head.days[days[cut - 1][0]]
        # the tail replayed from the checkpoint, with an earlier and different version first
        stale = replay(
            checkpoint,
            [(d, {k: not v for k, v in h.items()}) for d, h in days[cut:]],
            self.policy_of,
        )
        assert stale.final != in_order.final or cut == len(days)
        again = replay(checkpoint, days[cut:], self.policy_of)
        assert again.final == in_order.final
        assert again.days == {d: s for d, s in in_order.days.items() if d >= days[cut][0]}
        # the episodes open on a replayed day are the in-order ones that reach that far
        reaching = [
            e for e in in_order.episodes if e.resolved_on is None or e.resolved_on >= days[cut][0]
        ]
        assert again.episodes == reaching

    def test_episodes_in_the_past_are_recorded(self) -> None:
        days = [(day(n), {KEY: h}) for n, h in enumerate([H, H, C, C, C, C, C] + [C] * 20)]
        result = replay({}, days, lambda _: policy(keep=3, cooldown=0))
        [episode] = result.episodes
        assert (episode.started_on, episode.opened_on, episode.resolved_on) == (
            day(0),
            day(1),
            day(4),
        )
        assert result.final[KEY].status == "resolved"

    def test_a_manual_resolve_survives_a_replay(self) -> None:
        days = [(day(n), {KEY: h}) for n, h in enumerate([H] * 8)]
        manual = {KEY: day(3)}  # resolved by hand when day 3 was the latest
        result = replay({}, days, lambda _: policy(for_days=2), manual)
        # resolved on day 3; holds again from day 4: a new episode fires on day 5
        assert [
            (e.started_on, e.opened_on, e.resolved_on, e.resolved_by) for e in result.episodes
        ] == [
            (day(0), day(1), day(3), "manual"),
            (day(4), day(5), None, None),
        ]
        # ...also when day 3 is the last replayed day
        last = replay({}, days[:4], lambda _: policy(for_days=2), manual)
        assert (last.final[KEY].status, last.final[KEY].resolved_by) == ("resolved", "manual")
        # ...and the checkpoint of day 3 does not hold it, so a replay from day 4 re-applies it
        again = replay(last.days[day(3)], days[4:], lambda _: policy(for_days=2), manual)
        assert again.final == result.final


def row_for(state: DayState, **fields: Any) -> AlertState:
    """The row as :func:`present` left it for ``state`` and announced (notifications 1)."""
    t = present(AlertState(), state, T0, policy(), in_present=True)
    return t.state.model_copy(update=fields)


class TestPresent:
    def opened(self, n: int = 2) -> DayState:
        return run([H] * n)[-1]

    def test_an_open_alert_in_the_present_is_announced_once(self) -> None:
        t = present(AlertState(), self.opened(), T0, policy(), in_present=True)
        assert (t.state.status, t.action, t.state.notifications) == ("open", "notify_open", 1)
        assert (t.state.started_on, t.state.opened_on, t.state.opened_at) == (day(0), day(1), T0)
        again = present(t.state, self.opened(3), T0 + timedelta(hours=1), policy(), in_present=True)
        assert again.action == "none" and again.state.notifications == 1

    def test_an_alert_open_only_in_the_past_is_recorded_not_announced(self) -> None:
        t = present(AlertState(), self.opened(), T0, policy(), in_present=False)
        assert (t.state.status, t.action, t.state.notifications) == ("open", "none", 0)
        # ...and announced once its open state reaches the present
        later = present(t.state, self.opened(5), T0, policy(), in_present=True)
        assert later.action == "notify_open"

    def test_an_episode_that_ended_in_the_past_is_never_announced(self) -> None:
        ended = run([H, H, C, C, C])[-1]
        t = present(AlertState(), ended, T0, policy(), in_present=True)
        assert (t.state.status, t.action) == ("resolved", "none")
        assert (t.state.started_on, t.state.resolved_on) == (day(0), day(4))

    def test_repeats_while_open_and_not_acknowledged(self) -> None:
        row = row_for(self.opened())
        later = T0 + timedelta(days=7)
        assert present(row, self.opened(9), later, policy(), in_present=True).action == (
            "notify_repeat"
        )
        acked = acknowledge(row, T0)
        t = present(acked, self.opened(9), later, policy(), in_present=True)
        assert (t.state.status, t.action) == ("acknowledged", "none")

    @pytest.mark.parametrize(
        ("status", "notify_on_resolve", "action"),
        [
            ("open", True, "notify_resolve"),
            ("acknowledged", True, "notify_resolve"),
            ("snoozed", True, "none"),
            ("open", False, "none"),
        ],
    )
    def test_resolve_is_announced_unless_snoozed_or_off(
        self, status: Status, notify_on_resolve: bool, action: Action
    ) -> None:
        row = row_for(self.opened(), status=status, snoozed_until=T0 + timedelta(days=30))
        ended = run([H, H, C, C, C])[-1]
        p = policy(notify_on_resolve=notify_on_resolve)
        t = present(row, ended, T0 + timedelta(days=3), p, in_present=True)
        assert (t.state.status, t.state.resolved_by, t.action) == ("resolved", "condition", action)
        assert t.state.snoozed_until is None

    def test_a_replay_that_moves_the_start_keeps_the_same_episode(self) -> None:
        # the row saw an episode that began on day 2; late events show it began on day 0
        row = row_for(run([C, C, H, H])[-1], status="acknowledged")
        assert row.started_on == day(2)
        t = present(row, run([H, H, H, H])[-1], T0, policy(), in_present=True)
        assert (t.state.status, t.action, t.state.started_on) == ("acknowledged", "none", day(0))

    def test_a_reopening_within_the_cool_down_is_not_a_new_alert(self) -> None:
        states = run([H, H, C, C, C, H, H])
        resolved = present(row_for(states[1]), states[4], T0, policy(), in_present=True)
        assert resolved.action == "notify_resolve"
        t = present(resolved.state, states[-1], T0 + timedelta(hours=1), policy(), in_present=True)
        assert (t.state.status, t.state.reopenings, t.reopened, t.action) == (
            "open",
            1,
            True,
            "none",
        )

    def test_a_snoozed_alert_wakes_with_a_reminder(self) -> None:
        row = snooze(row_for(self.opened()), T0 + timedelta(days=2), "holiday", T0)
        asleep = present(row, self.opened(3), T0 + timedelta(days=1), policy(), in_present=True)
        assert (asleep.state.status, asleep.action) == ("snoozed", "none")
        woke = present(row, self.opened(4), T0 + timedelta(days=2), policy(), in_present=True)
        assert (woke.state.status, woke.action) == ("open", "notify_repeat")
        assert woke.state.snoozed_until is None

    def test_a_manual_resolve_then_a_new_episode_is_announced(self) -> None:
        row = resolve(row_for(self.opened()), T0)
        assert (row.status, row.manual_resolved_on, row.resolved_on) == (
            "resolved",
            day(1),
            day(1),
        )
        days = [(day(n), {KEY: H}) for n in range(5)]
        final = replay({}, days, lambda _: policy(), {KEY: day(1)}).final[KEY]
        t = present(row, final, T0 + timedelta(days=3), policy(), in_present=True)
        assert (t.state.status, t.action, t.state.started_on) == ("open", "notify_open", day(2))


class TestManualMoves:
    @pytest.mark.parametrize("status", ["open", "snoozed"])
    def test_acknowledge(self, status: Status) -> None:
        row = row_for(run([H, H])[-1], status=status, snoozed_until=T0 + timedelta(days=1))
        state = acknowledge(row, T0 + timedelta(hours=2))
        assert state.status == "acknowledged" and state.acknowledged_at == T0 + timedelta(hours=2)
        assert state.snoozed_until is None
        assert acknowledge(state, T0 + timedelta(days=1)) == state

    @pytest.mark.parametrize("status", ["none", "pending", "resolved"])
    def test_inactive_alerts_cannot_be_moved(self, status: Status) -> None:
        state = AlertState(status=status)
        with pytest.raises(LifecycleError, match=f"cannot acknowledge an alert that is {status}"):
            acknowledge(state, T0)
        with pytest.raises(LifecycleError, match=f"cannot snooze an alert that is {status}"):
            snooze(state, T0 + timedelta(days=1), None, T0)
        with pytest.raises(LifecycleError, match=f"cannot resolve an alert that is {status}"):
            resolve(state, T0)

    @pytest.mark.parametrize("until", [T0, T0 - timedelta(seconds=1)])
    def test_snooze_until_must_be_in_the_future(self, until: datetime) -> None:
        with pytest.raises(LifecycleError, match="not in the future"):
            snooze(row_for(run([H, H])[-1]), until, None, T0)

    def test_times_must_be_aware(self) -> None:
        with pytest.raises(ValueError, match="now must be timezone-aware"):
            present(AlertState(), DayState(), datetime(2026, 11, 2), policy(), in_present=True)
        with pytest.raises(ValueError, match="until must be timezone-aware"):
            snooze(row_for(run([H, H])[-1]), datetime(2027, 1, 1), None, T0)


class TestConfigPolicy:
    def test_the_policy_comes_from_the_yaml(self) -> None:
        cfg: RulesConfig = parse_config(
            {"rules": {"for_days": 3, "dormant": {"keep_firing_for_days": 1}}}
        ).rules
        assert cfg.policy("dormant") == Policy(3, 1, 14, timedelta(days=7), True)

    def test_day_state_survives_json(self) -> None:
        s = run([H, H, C])[-1]
        assert DayState.model_validate_json(s.model_dump_json()) == s

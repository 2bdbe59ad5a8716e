"""The alert life cycle: hysteresis, idempotence per as_of, repeats, ack / snooze / resolve."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.alerts.lifecycle import (
    Action,
    AlertState,
    LifecycleError,
    Status,
    Transition,
    acknowledge,
    resolve,
    snooze,
    transition,
)
from services.alerts.rules import Finding
from shared.alert_rules import RuleName, RulesConfig
from shared.config import parse_config

DAY0 = date(2026, 11, 2)
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
DEFAULTS = RulesConfig()


def create_finding(holds: bool, day: int = 0, rule: RuleName = "login_decline") -> Finding:
    return Finding(
        rule=rule,
        as_of=DAY0 + timedelta(days=day),
        holds=holds,
        severity="warning",
        reason="r",
        next_step="n",
    )


def create_state(status: Status = "open", **fields: Any) -> AlertState:
    if status in ("open", "acknowledged", "snoozed"):
        fields = {"opened_at": T0, "last_notified_at": T0, "notifications": 1, **fields}
    if status == "snoozed":
        fields.setdefault("snoozed_until", T0 + timedelta(days=3))
    fields.setdefault("last_evaluated_as_of", DAY0)
    return AlertState(status=status, **fields)


def config(**rules: Any) -> RulesConfig:
    return parse_config({"rules": rules}).rules


def replay(
    series: Iterable[bool],
    cfg: RulesConfig = DEFAULTS,
    state: AlertState | None = None,
) -> tuple[AlertState, list[Action], list[Status]]:
    """One evaluation a day (as_of and clock both advance a day)."""
    state = state or AlertState()
    actions: list[Action] = []
    statuses: list[Status] = []
    for day, holds in enumerate(series, start=1):
        t = transition(state, create_finding(holds, day), T0 + timedelta(days=day), cfg)
        state = t.state
        actions.append(t.action)
        statuses.append(state.status)
    return state, actions, statuses


def notified(actions: list[Action]) -> list[Action]:
    return [a for a in actions if a != "none"]


H, C = True, False


class TestHysteresis:
    def test_fires_after_two_holds(self) -> None:
        _, actions, statuses = replay([H, H])
        assert statuses == ["pending", "open"]
        assert actions == ["none", "notify_open"]

    def test_resolves_after_two_clears(self) -> None:
        state, actions, statuses = replay([H, H, C, C])
        assert statuses == ["pending", "open", "open", "resolved"]
        assert actions == ["none", "notify_open", "none", "notify_resolve"]
        assert state.resolved_by == "condition" and state.resolved_at is not None

    @pytest.mark.parametrize(
        "series",
        [
            [H, C, H, C, H, C, H, C],  # never twice in a row: never fires
            [C, C, C, C],
            [H],
        ],
    )
    def test_no_firing_without_consecutive_holds(self, series: list[bool]) -> None:
        state, actions, _ = replay(series)
        assert notified(actions) == []
        assert not state.active

    def test_flapping_series_gives_one_firing_and_one_resolve(self) -> None:
        series = [H, H, C, H, C, H, H, C, H, C, H, C, C, C, H, C]
        state, actions, _ = replay(series, config(repeat_interval_days=0))
        assert notified(actions) == ["notify_open", "notify_resolve"]
        assert state.status == "resolved"
        # With the default weekly repeat, the open alert is reminded of, but never re-fired.
        _, actions, _ = replay(series)
        assert actions.count("notify_open") == 1 and actions.count("notify_resolve") == 1

    def test_pending_that_clears_goes_back(self) -> None:
        _, _, statuses = replay([H, C])
        assert statuses == ["pending", "none"]
        state, _, statuses = replay([H, H, C, C, H, C])
        assert statuses[-2:] == ["pending", "resolved"]
        assert state.resolved_at is not None

    def test_a_new_episode_after_resolve(self) -> None:
        state, actions, _ = replay([H, H, C, C, H, H])
        assert notified(actions) == ["notify_open", "notify_resolve", "notify_open"]
        assert state.status == "open" and state.resolved_at is None and state.notifications == 1

    @pytest.mark.parametrize(
        ("fire_after", "resolve_after", "opens_on", "resolves_on"),
        [(1, 1, 1, 2), (3, 2, 3, 5), (2, 3, 2, 5), (1, 4, 1, 5)],
    )
    def test_configurable(
        self, fire_after: int, resolve_after: int, opens_on: int, resolves_on: int
    ) -> None:
        cfg = config(fire_after=fire_after, resolve_after=resolve_after)
        series = [H] * fire_after + [C] * resolve_after
        _, actions, _ = replay(series, cfg)
        assert actions.index("notify_open") + 1 == opens_on
        assert actions.index("notify_resolve") + 1 == resolves_on

    def test_per_rule_override(self) -> None:
        cfg = config(login_decline={"fire_after": 1}, fire_after=3)
        _, actions, _ = replay([H], cfg)
        assert actions == ["notify_open"]
        t = transition(AlertState(), create_finding(H, rule="dormant"), T0, cfg)
        assert t.state.status == "pending"

    def test_notify_on_resolve_off(self) -> None:
        _, actions, statuses = replay([H, H, C, C], config(notify_on_resolve=False))
        assert actions[-1] == "none" and statuses[-1] == "resolved"

    def test_counters(self) -> None:
        state, _, _ = replay([H, H, H, C])
        assert (state.consecutive_holds, state.consecutive_clears) == (0, 1)
        assert state.last_holds is False and state.last_evaluated_as_of == DAY0 + timedelta(4)


class TestSameAsOf:
    def test_the_same_as_of_twice_counts_once(self) -> None:
        first = transition(AlertState(), create_finding(H, 1), T0, DEFAULTS)
        again = transition(first.state, create_finding(H, 1), T0 + timedelta(hours=1), DEFAULTS)
        assert first.counted and not again.counted
        assert again.state == first.state and again.action == "none" and not again.changed
        assert again.state.status == "pending" and again.state.consecutive_holds == 1
        nxt = transition(again.state, create_finding(H, 2), T0 + timedelta(days=1), DEFAULTS)
        assert nxt.action == "notify_open"

    @pytest.mark.parametrize("holds", [H, C])
    def test_a_republished_score_never_resolves_or_fires(self, holds: bool) -> None:
        state = create_state("open", consecutive_clears=1)
        t = transition(state, create_finding(holds, 0), T0 + timedelta(days=30), DEFAULTS)
        assert t.state == state and t.action == "none" and not t.counted

    def test_an_older_as_of_is_ignored(self) -> None:
        state = create_state("pending", consecutive_holds=1)
        t = transition(state, create_finding(H, -3), T0, DEFAULTS)
        assert not t.counted and t.state == state

    def test_replaying_a_whole_series_twice_changes_nothing(self) -> None:
        series = [H, H, C, H]
        state, _, _ = replay(series)
        again, actions, _ = replay(series, state=state)
        assert again == state and notified(actions) == []


class TestRepeat:
    @pytest.mark.parametrize(
        ("days_since", "action"),
        [(6, "none"), (7, "notify_repeat"), (30, "notify_repeat")],
    )
    def test_repeat_interval(self, days_since: int, action: Action) -> None:
        state = create_state("open")
        now = T0 + timedelta(days=days_since)
        t = transition(state, create_finding(H, 1), now, DEFAULTS)
        assert t.action == action
        if action == "notify_repeat":
            assert t.state.last_notified_at == now and t.state.notifications == 2

    def test_daily_holds_repeat_weekly(self) -> None:
        _, actions, _ = replay([H] * 16)
        assert [i + 1 for i, a in enumerate(actions) if a != "none"] == [2, 9, 16]
        assert notified(actions) == ["notify_open", "notify_repeat", "notify_repeat"]

    def test_never_repeat(self) -> None:
        _, actions, _ = replay([H] * 30, config(repeat_interval_days=0))
        assert notified(actions) == ["notify_open"]

    def test_no_repeat_while_it_clears(self) -> None:
        state = create_state("open")
        t = transition(state, create_finding(C, 1), T0 + timedelta(days=10), DEFAULTS)
        assert t.action == "none" and t.state.status == "open"

    def test_acknowledged_is_not_renotified(self) -> None:
        state = acknowledge(create_state("open"), T0)
        _, actions, statuses = replay(
            [H] * 20, state=state.model_copy(update={"last_evaluated_as_of": None})
        )
        assert notified(actions) == [] and set(statuses) == {"acknowledged"}

    def test_acknowledged_still_resolves_and_says_so(self) -> None:
        state = acknowledge(create_state("open"), T0).model_copy(
            update={"last_evaluated_as_of": None}
        )
        _, actions, statuses = replay([C, C], state=state)
        assert statuses == ["acknowledged", "resolved"] and actions[-1] == "notify_resolve"


class TestSnooze:
    def test_silent_while_snoozed_then_open_and_notify(self) -> None:
        until = T0 + timedelta(days=3, hours=1)
        state = snooze(create_state("open", last_evaluated_as_of=None), until, "on holiday", T0)
        assert (state.status, state.snoozed_until, state.snooze_reason) == (
            "snoozed",
            until,
            "on holiday",
        )
        _, actions, statuses = replay([H] * 5, state=state)
        assert statuses == ["snoozed", "snoozed", "snoozed", "open", "open"]
        assert actions == ["none", "none", "none", "notify_repeat", "none"]

    def test_woken_while_clearing_opens_without_notifying(self) -> None:
        state = create_state("snoozed", snoozed_until=T0 + timedelta(hours=1))
        t = transition(state, create_finding(C, 1), T0 + timedelta(days=1), DEFAULTS)
        assert t.state.status == "open" and t.action == "none"
        assert t.state.snoozed_until is None

    def test_resolving_while_snoozed_is_silent(self) -> None:
        state = create_state("snoozed", snoozed_until=T0 + timedelta(days=30))
        state = state.model_copy(update={"last_evaluated_as_of": None})
        _, actions, statuses = replay([C, C], state=state)
        assert statuses == ["snoozed", "resolved"] and notified(actions) == []

    def test_snooze_again_moves_the_time(self) -> None:
        state = create_state("snoozed")
        later = T0 + timedelta(days=10)
        assert snooze(state, later, None, T0).snoozed_until == later

    @pytest.mark.parametrize("status", ["open", "acknowledged", "snoozed"])
    def test_any_active_alert_can_be_snoozed(self, status: Status) -> None:
        assert snooze(create_state(status), T0 + timedelta(days=1), "  ", T0).status == "snoozed"

    @pytest.mark.parametrize("status", ["none", "pending", "resolved"])
    def test_inactive_cannot_be_snoozed(self, status: Status) -> None:
        with pytest.raises(LifecycleError, match=f"cannot snooze an alert that is {status}"):
            snooze(create_state(status), T0 + timedelta(days=1), None, T0)

    @pytest.mark.parametrize("until", [T0, T0 - timedelta(seconds=1)])
    def test_until_must_be_in_the_future(self, until: datetime) -> None:
        with pytest.raises(LifecycleError, match="not in the future"):
            snooze(create_state("open"), until, None, T0)

    def test_until_must_be_aware(self) -> None:
        with pytest.raises(ValueError, match="until must be timezone-aware"):
            snooze(create_state("open"), datetime(2027, 1, 1), None, T0)


class TestAcknowledge:
    @pytest.mark.parametrize("status", ["open", "snoozed"])
    def test_acknowledge(self, status: Status) -> None:
        state = acknowledge(create_state(status), T0 + timedelta(hours=2))
        assert state.status == "acknowledged" and state.acknowledged_at == T0 + timedelta(hours=2)
        assert state.snoozed_until is None

    def test_twice_is_a_no_op(self) -> None:
        state = acknowledge(create_state("open"), T0)
        assert acknowledge(state, T0 + timedelta(days=1)) == state

    @pytest.mark.parametrize("status", ["none", "pending", "resolved"])
    def test_inactive_cannot_be_acknowledged(self, status: Status) -> None:
        with pytest.raises(LifecycleError, match=f"cannot acknowledge an alert that is {status}"):
            acknowledge(create_state(status), T0)


class TestManualResolve:
    @pytest.mark.parametrize("status", ["open", "acknowledged", "snoozed"])
    def test_resolve(self, status: Status) -> None:
        state = resolve(create_state(status, consecutive_holds=5), T0)
        assert (state.status, state.resolved_by, state.resolved_at) == ("resolved", "manual", T0)
        assert state.consecutive_holds == 0 and state.snoozed_until is None

    @pytest.mark.parametrize("status", ["none", "pending", "resolved"])
    def test_inactive_cannot_be_resolved(self, status: Status) -> None:
        with pytest.raises(LifecycleError, match=f"cannot resolve an alert that is {status}"):
            resolve(create_state(status), T0)

    def test_still_holding_reopens_after_fire_after(self) -> None:
        state = resolve(create_state("open"), T0)
        _, actions, statuses = replay([H, H], state=state)
        assert statuses == ["pending", "open"] and actions[-1] == "notify_open"


class TestGuards:
    def test_now_must_be_aware(self) -> None:
        with pytest.raises(ValueError, match="now must be timezone-aware"):
            transition(AlertState(), create_finding(H), datetime(2026, 11, 2), DEFAULTS)
        with pytest.raises(ValueError, match="now must be timezone-aware"):
            acknowledge(create_state("open"), datetime(2026, 11, 2))

    def test_state_survives_json(self) -> None:
        state, _, _ = replay([H, H])
        assert AlertState.model_validate_json(state.model_dump_json()) == state
        t = transition(state, create_finding(C, 9), T0 + timedelta(days=9), DEFAULTS)
        assert Transition.model_validate_json(t.model_dump_json()) == t

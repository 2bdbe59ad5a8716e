"""The life cycle of an alert, keyed by (account, rule, feature), in two pure layers.

**Event time** (:class:`DayState`, :func:`step_day`, :func:`replay`): the alert's history is a
function of the sequence of final daily findings, counted in days of event time (the findings'
``as_of``), never in evaluations or wall-clock time. Per day ``d`` and key:

1. A finding that holds starts (or continues) a hold that began on ``held_since``; one that
   clears starts (or continues) a clear that began on ``cleared_since``. A day without a finding
   (no score that day, or the rule could not judge) changes nothing: a gap neither breaks nor
   restarts a hold, and the days in it count, as ``for`` counts time in Prometheus.
2. An inactive alert (``none``, ``pending``, ``resolved``) fires on the day its condition has
   held ``for_days`` days (``d - held_since + 1``): a new episode that ``started_on``
   ``held_since`` and ``opened_on`` ``d``. If the last episode resolved by itself at most
   ``reopen_cooldown_days`` before ``held_since``, it is that episode continuing (a reopening),
   not a new one.
3. A firing alert (``open``) resolves on the day its condition has been clear
   ``keep_firing_for_days`` days (``resolved_on``).
4. A manual resolve is remembered by the event-time day it was made on (the alert's last
   evaluated day), and a replay applies it to the episode that was open on that day, so it
   survives re-scores; the condition then has to hold ``for_days`` again for a new episode.

:func:`replay` folds days from a checkpoint (the states after the day before), so re-scoring
day D and replaying from D gives the same states as evaluating every day once, in order.

**The present** (:class:`AlertState`, :func:`present`): the alert row, which adds what people
did and were told: acknowledged / snoozed, the wall-clock times, the notifications. It follows
the event-time state as of the account's latest final day and asks for a notification only when
that day is in the present (``in_present``): an episode is announced once (``notify_open``),
reminded every ``repeat_interval`` while open and not acknowledged (``notify_repeat``), and its
end announced (``notify_resolve``) when ``notify_on_resolve`` and it had been announced and was
not snoozed. An episode whose whole life lies in the past is recorded, never notified.

Manual moves (:func:`acknowledge`, :func:`snooze`, :func:`resolve`) raise
:class:`LifecycleError` for a move that makes no sense in the current status.

One module of about 510 lines on purpose: the two layers share the statuses and the policy,
and are one contract (tests/shared/test_alerting_lifecycle.py tests them together).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.alert_rules import Policy
from shared.construct import replaced

__all__ = [
    "ACTIVE",
    "Action",
    "AlertState",
    "DayState",
    "DayStatus",
    "Episode",
    "LifecycleError",
    "Replay",
    "Status",
    "Transition",
    "acknowledge",
    "is_idle",
    "present",
    "replay",
    "resolve",
    "snooze",
    "step_day",
]

Status = Literal["none", "pending", "open", "acknowledged", "snoozed", "resolved"]
DayStatus = Literal["none", "pending", "open", "resolved"]
Action = Literal["none", "notify_open", "notify_repeat", "notify_resolve"]
ResolvedBy = Literal["condition", "manual", "account cancelled"]
"""What ended an episode: its condition, a person, or the account's cancellation (an outcome an
operator recorded; :mod:`shared.alerting.cancellation`)."""
Key = tuple[str, str]
"""(rule, feature)"""

ACTIVE: frozenset[Status] = frozenset({"open", "acknowledged", "snoozed"})


class LifecycleError(ValueError):
    """A manual move that the alert's current status does not allow."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- event time ----------------------------------------------------------------------------------


class DayState(_Frozen):
    """One key's state after a day of event time (also the replay checkpoint, as JSON)."""

    status: DayStatus = "none"
    last_day: date | None = None
    last_holds: bool | None = None
    held_since: date | None = None
    cleared_since: date | None = None
    started_on: date | None = Field(None, description="The last episode's first holding day.")
    opened_on: date | None = Field(None, description="The day the last episode fired.")
    resolved_on: date | None = None
    resolved_by: ResolvedBy | None = None
    reopenings: int = Field(0, ge=0, description="Returns within the cool-down, this episode.")

    @property
    def days_held(self) -> int:
        if self.held_since is None or self.last_day is None or not self.last_holds:
            return 0
        return (self.last_day - self.held_since).days + 1

    @property
    def days_cleared(self) -> int:
        if self.cleared_since is None or self.last_day is None or self.last_holds:
            return 0
        return (self.last_day - self.cleared_since).days + 1


def settle_manual(state: DayState, manual_resolved_on: date | None, through: date) -> DayState:
    """Apply a manual resolve made on a day on or before ``through`` to the episode that was
    open then."""
    if (
        state.status != "open"
        or manual_resolved_on is None
        or manual_resolved_on > through
        or state.opened_on is None
        or manual_resolved_on < state.opened_on
    ):
        return state
    return state.model_copy(
        update={
            "status": "resolved",
            "resolved_on": manual_resolved_on,
            "resolved_by": "manual",
            "held_since": None,
            "cleared_since": None,
        }
    )


def step_day(
    state: DayState, day: date, holds: bool, p: Policy, manual_resolved_on: date | None = None
) -> DayState:
    """The state after ``day``'s finding; days must come in ascending order."""
    if state.last_day is not None and day <= state.last_day:
        raise ValueError(f"day {day} is not after the last evaluated day {state.last_day}")
    if manual_resolved_on is not None:
        state = settle_manual(state, manual_resolved_on, date.fromordinal(day.toordinal() - 1))
    # One copy with every change of the day (the replay's inner loop: no intermediate states).
    held_since = (state.held_since or day) if holds else None
    cleared_since = None if holds else (state.cleared_since or day)
    update: dict[str, object] = {
        "last_day": day,
        "last_holds": holds,
        "held_since": held_since,
        "cleared_since": cleared_since,
    }
    if state.status == "open":
        if cleared_since is not None and (day - cleared_since).days + 1 >= p.keep_firing_for_days:
            update.update(status="resolved", resolved_on=day, resolved_by="condition")
    elif held_since is None:
        update["status"] = "resolved" if state.resolved_on else "none"
    elif (day - held_since).days + 1 < p.for_days:
        update["status"] = "pending"
    elif (
        state.status in ("pending", "resolved")
        and state.resolved_by == "condition"
        and state.resolved_on is not None
        and (held_since - state.resolved_on).days <= p.reopen_cooldown_days
    ):
        update.update(
            status="open", resolved_on=None, resolved_by=None, reopenings=state.reopenings + 1
        )
    else:
        update.update(
            status="open",
            started_on=held_since,
            opened_on=day,
            resolved_on=None,
            resolved_by=None,
            reopenings=0,
        )
    return replaced(state, update)


def is_idle(state: DayState) -> bool:
    """Whether ``state`` is as good as a key never evaluated (``DayState()``) for every episode
    to come: nothing holds and no episode ever opened.

    From such a state a day that does not hold leads to another one, and a day that holds steps
    exactly as from ``DayState()``. What differs (``last_day``, ``last_holds``,
    ``cleared_since``) is overwritten before it is read: ``cleared_since`` counts only while an
    episode is open, and opening one takes a day that holds, which resets it. So a caller that
    keeps only the episodes (the backtest's replay) may forget an idle state and skip the days
    that do not hold for a key it does not keep (tests/backtest compares both on random
    findings)."""
    return (
        state.status == "none"
        and state.held_since is None
        and state.resolved_on is None
        and state.opened_on is None
    )


def moves_only_its_day(state: DayState, holds: bool) -> bool:
    """Whether a day whose finding is ``holds`` changes nothing of ``state`` but ``last_day``
    (and that only when no manual resolve is pending): an open episode that held the day
    before and holds again, or a closed key (``resolved`` or ``none``) that was clear and stays
    clear. ``step_day`` reads ``last_day`` only to refuse days out of order, so a caller that
    keeps only the episodes (the backtest's replay) may keep such a state as it is instead of
    copying it (tests/backtest compares both on random findings)."""
    if state.last_holds is None or state.last_holds != holds:
        return False
    return state.status == "open" if holds else state.status in ("resolved", "none")


@dataclass(frozen=True, slots=True)
class Episode:
    """One episode of one key, as a replay left it."""

    rule: str
    feature: str
    started_on: date
    opened_on: date
    resolved_on: date | None
    resolved_by: ResolvedBy | None
    reopenings: int


@dataclass(slots=True)
class Replay:
    """What :func:`replay` produced.

    ``days``: the states after each replayed day (the checkpoints to store, manual resolves of
    later days not applied); ``final``: the states after the last day with every manual resolve
    applied (what the alert rows show); ``episodes``: every episode that was open on a replayed
    day, as it stands at the end.
    """

    days: dict[date, dict[Key, DayState]] = field(default_factory=dict)
    final: dict[Key, DayState] = field(default_factory=dict)
    episodes: list[Episode] = field(default_factory=list)


def replay(
    start: Mapping[Key, DayState],
    days: Iterable[tuple[date, Mapping[Key, bool]]],
    policy: Callable[[str], Policy],
    manual: Mapping[Key, date] | None = None,
) -> Replay:
    """Fold ``days`` (ascending; each day's holds by key) over the checkpoint ``start``."""
    manual = manual or {}
    states = dict(start)
    out = Replay()
    seen: dict[tuple[Key, date], Episode] = {}

    def note(key: Key, s: DayState, was_open: bool) -> None:
        if s.started_on is None or s.opened_on is None or not (was_open or s.status == "open"):
            return
        seen[(key, s.started_on)] = Episode(
            key[0], key[1], s.started_on, s.opened_on, s.resolved_on, s.resolved_by, s.reopenings
        )

    last: date | None = None
    for day, holds_by_key in days:
        for key, holds in holds_by_key.items():
            before = states.get(key, DayState())
            states[key] = step_day(before, day, holds, policy(key[0]), manual.get(key))
            note(key, states[key], before.status == "open")
        out.days[day] = dict(states)
        last = day
    for key, s in states.items():
        through = last or s.last_day
        settled = s if through is None else settle_manual(s, manual.get(key), through)
        note(key, settled, s.status == "open")
        out.final[key] = settled
    out.episodes = sorted(seen.values(), key=lambda e: (e.rule, e.feature, e.started_on))
    return out


# -- the present ---------------------------------------------------------------------------------


class AlertState(_Frozen):
    """The alert row: the event-time state as of the latest day, plus what people did and
    were told (wall-clock times)."""

    status: Status = "none"
    consecutive_holds: int = Field(0, ge=0, description="Days the condition has held.")
    consecutive_clears: int = Field(0, ge=0, description="Days it has been clear.")
    last_evaluated_as_of: date | None = None
    last_holds: bool | None = None
    started_on: date | None = None
    opened_on: date | None = None
    resolved_on: date | None = None
    reopenings: int = Field(0, ge=0)
    manual_resolved_on: date | None = None
    opened_at: AwareDatetime | None = None
    acknowledged_at: AwareDatetime | None = None
    snoozed_until: AwareDatetime | None = None
    snooze_reason: str | None = None
    last_notified_at: AwareDatetime | None = None
    notifications: int = Field(0, ge=0, description="Open and repeat notifications this episode.")
    resolved_at: AwareDatetime | None = None
    resolved_by: ResolvedBy | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


class Transition(_Frozen):
    """The row after following the event-time state, and what the caller must notify."""

    previous: AlertState
    state: AlertState
    action: Action = "none"
    reopened: bool = False

    @property
    def changed(self) -> bool:
        return self.state != self.previous


def _aware(now: datetime, name: str = "now") -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def present(
    row: AlertState, day: DayState, now: datetime, p: Policy, *, in_present: bool
) -> Transition:
    """Bring the row to ``day`` (the key's state as of the account's latest final day)."""
    _aware(now)
    base = row.model_copy(
        update={
            "consecutive_holds": day.days_held,
            "consecutive_clears": day.days_cleared,
            "last_evaluated_as_of": day.last_day,
            "last_holds": day.last_holds,
            "started_on": day.started_on,
            "opened_on": day.opened_on,
            "resolved_on": day.resolved_on,
            "reopenings": day.reopenings,
        }
    )

    def done(new: AlertState, action: Action = "none", *, reopened: bool = False) -> Transition:
        return Transition(previous=row, state=new, action=action, reopened=reopened)

    if day.status != "open":
        resolved = day.status == "resolved"
        if not row.active:
            return done(
                base.model_copy(
                    update={
                        "status": day.status,
                        "resolved_at": (row.resolved_at or now) if resolved else None,
                        "resolved_by": day.resolved_by if resolved else None,
                    }
                )
            )
        # The episode ended (by itself, or by a manual resolve a replay re-applied), or a
        # replay found it never was.
        announced = row.notifications > 0 and row.status != "snoozed"
        ended = base.model_copy(
            update={
                "status": day.status,
                "resolved_at": now,
                "resolved_by": day.resolved_by or "condition",
                "snoozed_until": None,
                "snooze_reason": None,
            }
        )
        notify = in_present and announced and p.notify_on_resolve
        return done(ended, "notify_resolve" if notify else "none")

    if row.active:
        # Still the problem the row was about: it had already begun when the row last looked.
        continuing = (
            day.started_on is not None
            and row.last_evaluated_as_of is not None
            and day.started_on <= row.last_evaluated_as_of
        )
    else:
        # The row's own episode again: a return within the cool-down, or a replay undoing
        # its resolve.
        continuing = row.opened_on is not None and (row.started_on, row.opened_on) == (
            day.started_on,
            day.opened_on,
        )
    if not continuing:
        # A new episode: whatever was acknowledged or snoozed was about an earlier one.
        fresh = base.model_copy(
            update={
                "status": "open",
                "opened_at": now,
                "acknowledged_at": None,
                "snoozed_until": None,
                "snooze_reason": None,
                "last_notified_at": None,
                "notifications": 0,
                "resolved_at": None,
                "resolved_by": None,
            }
        )
        return _announce(row, fresh, now, p, in_present=in_present, reopened=False)
    reopened = not row.active
    status: Status = row.status if row.active else "open"
    woke = False
    if status == "snoozed" and row.snoozed_until is not None and now >= row.snoozed_until:
        status, woke = "open", True
    kept = base.model_copy(
        update={
            "status": status,
            "resolved_at": None,
            "resolved_by": None,
            **({"snoozed_until": None, "snooze_reason": None} if status != "snoozed" else {}),
        }
    )
    if woke and in_present and kept.notifications > 0:
        return done(_notified(kept, now), "notify_repeat", reopened=reopened)
    return _announce(row, kept, now, p, in_present=in_present, reopened=reopened)


def _notified(s: AlertState, now: datetime) -> AlertState:
    return s.model_copy(update={"last_notified_at": now, "notifications": s.notifications + 1})


def _announce(
    row: AlertState, s: AlertState, now: datetime, p: Policy, *, in_present: bool, reopened: bool
) -> Transition:
    """An open alert in the present is announced once, then reminded while not acknowledged."""

    def done(new: AlertState, action: Action = "none") -> Transition:
        return Transition(previous=row, state=new, action=action, reopened=reopened)

    if not in_present or s.status != "open":
        return done(s)
    if s.notifications == 0:
        return done(_notified(s, now), "notify_open")
    last = s.last_notified_at
    if p.repeat_interval is not None and (last is None or now - last >= p.repeat_interval):
        return done(_notified(s, now), "notify_repeat")
    return done(s)


# -- manual moves --------------------------------------------------------------------------------


def acknowledge(state: AlertState, now: datetime) -> AlertState:
    """Open or snoozed -> acknowledged (no more repeats this episode). Twice is a no-op."""
    _aware(now)
    if state.status == "acknowledged":
        return state
    if state.status not in ("open", "snoozed"):
        raise LifecycleError(f"cannot acknowledge an alert that is {state.status}")
    return state.model_copy(
        update={
            "status": "acknowledged",
            "acknowledged_at": now,
            "snoozed_until": None,
            "snooze_reason": None,
        }
    )


def snooze(state: AlertState, until: datetime, reason: str | None, now: datetime) -> AlertState:
    """An active alert -> snoozed until ``until`` (in the future); snoozing again moves it."""
    _aware(now)
    _aware(until, "until")
    if not state.active:
        raise LifecycleError(f"cannot snooze an alert that is {state.status}")
    if until <= now:
        raise LifecycleError(f"snooze until {until.isoformat()} is not in the future")
    text = reason.strip() if reason else None
    return state.model_copy(
        update={"status": "snoozed", "snoozed_until": until, "snooze_reason": text or None}
    )


def resolve(state: AlertState, now: datetime) -> AlertState:
    """An active alert -> resolved by hand, on its last evaluated day of event time.

    Replays keep the resolve (``manual_resolved_on``); if the condition still holds the alert
    opens again after ``for_days`` more days, as a new episode with a new notification.
    """
    _aware(now)
    if not state.active:
        raise LifecycleError(f"cannot resolve an alert that is {state.status}")
    return state.model_copy(
        update={
            "status": "resolved",
            "resolved_at": now,
            "resolved_by": "manual",
            "resolved_on": state.last_evaluated_as_of,
            "manual_resolved_on": state.last_evaluated_as_of,
            "snoozed_until": None,
            "snooze_reason": None,
            "consecutive_holds": 0,
            "consecutive_clears": 0,
        }
    )

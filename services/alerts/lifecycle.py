"""The life cycle of one alert, keyed by (account, rule, feature): a pure state machine.

Statuses: ``none`` -> ``pending`` (the condition held, not yet ``fire_after`` times) ->
``open`` -> (``acknowledged`` | ``snoozed``) -> ``resolved`` -> (``pending`` again ...).

1. Every evaluation of a *new* ``as_of`` counts: a finding that holds adds to
   ``consecutive_holds`` and zeroes ``consecutive_clears``, and the other way round.
2. The same or an older ``as_of`` (a re-published or replayed score) changes nothing and
   asks for nothing, so a retried batch or a re-score of the same day is never counted twice.
3. An inactive alert (``none``, ``pending``, ``resolved``) opens when the condition has held on
   ``fire_after`` consecutive evaluations: ``notify_open``.
4. An active alert (``open``, ``acknowledged``, ``snoozed``) resolves when it has cleared on
   ``resolve_after`` consecutive evaluations: ``notify_resolve`` when ``notify_on_resolve`` (not
   for a snoozed alert: its owner asked for silence). A hold in between zeroes the clears, so a
   flapping condition gives one firing and at most one resolve.
5. An ``open`` alert whose condition holds is re-notified once ``repeat_interval`` has passed
   since the last notification (``notify_repeat``); ``acknowledged`` ones never are.
6. A ``snoozed`` alert whose ``snoozed_until`` has passed goes back to ``open``; if the
   condition still holds, that evaluation notifies (``notify_repeat``) at once.

A rule that was not evaluable produces no finding, so its alert is simply not transitioned.
Manual moves (:func:`acknowledge`, :func:`snooze`, :func:`resolve`) raise
:class:`LifecycleError` for a move that makes no sense in the current status.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.alerts.rules import Finding
from shared.alert_rules import Policy, RulesConfig

__all__ = [
    "ACTIVE",
    "Action",
    "AlertState",
    "LifecycleError",
    "Status",
    "Transition",
    "acknowledge",
    "resolve",
    "snooze",
    "transition",
]

Status = Literal["none", "pending", "open", "acknowledged", "snoozed", "resolved"]
Action = Literal["none", "notify_open", "notify_repeat", "notify_resolve"]
ResolvedBy = Literal["condition", "manual"]

ACTIVE: frozenset[Status] = frozenset({"open", "acknowledged", "snoozed"})


class LifecycleError(ValueError):
    """A manual move that the alert's current status does not allow."""


class AlertState(BaseModel):
    """Everything the life cycle needs to remember about one (account, rule, feature)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Status = "none"
    consecutive_holds: int = Field(0, ge=0)
    consecutive_clears: int = Field(0, ge=0)
    last_evaluated_as_of: date | None = Field(
        None, description="The as_of last counted; a finding for it or earlier is ignored."
    )
    last_holds: bool | None = None
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


class Transition(BaseModel):
    """The state after one evaluation, and what the caller must do (write to the outbox)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    previous: AlertState
    state: AlertState
    action: Action = "none"
    counted: bool = Field(description="False when the finding's as_of was already evaluated.")

    @property
    def changed(self) -> bool:
        return self.state != self.previous


def _aware(now: datetime, name: str = "now") -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def transition(
    state: AlertState, finding: Finding, now: datetime, rules_config: RulesConfig
) -> Transition:
    _aware(now)
    if state.last_evaluated_as_of is not None and finding.as_of <= state.last_evaluated_as_of:
        return Transition(previous=state, state=state, counted=False)
    return _step(state, finding.holds, finding.as_of, now, rules_config.policy(finding.rule))


def _step(state: AlertState, holds: bool, as_of: date, now: datetime, p: Policy) -> Transition:
    counted = state.model_copy(
        update={
            "consecutive_holds": state.consecutive_holds + 1 if holds else 0,
            "consecutive_clears": 0 if holds else state.consecutive_clears + 1,
            "last_evaluated_as_of": as_of,
            "last_holds": holds,
        }
    )

    def done(new: AlertState, action: Action = "none") -> Transition:
        return Transition(previous=state, state=new, action=action, counted=True)

    if not state.active:
        if not holds:
            # A pending condition that clears falls back to where it came from.
            back: Status = "resolved" if state.resolved_at is not None else "none"
            return done(counted.model_copy(update={"status": back}))
        if counted.consecutive_holds >= p.fire_after:
            opened = counted.model_copy(
                update={
                    "status": "open",
                    "opened_at": now,
                    "acknowledged_at": None,
                    "snoozed_until": None,
                    "snooze_reason": None,
                    "last_notified_at": now,
                    "notifications": 1,
                    "resolved_at": None,
                    "resolved_by": None,
                }
            )
            return done(opened, "notify_open")
        return done(counted.model_copy(update={"status": "pending"}))

    woke = False
    if state.status == "snoozed" and state.snoozed_until is not None and now >= state.snoozed_until:
        counted = counted.model_copy(
            update={"status": "open", "snoozed_until": None, "snooze_reason": None}
        )
        woke = True

    if not holds:
        if counted.consecutive_clears >= p.resolve_after:
            silent = counted.status == "snoozed"
            resolved = counted.model_copy(
                update={
                    "status": "resolved",
                    "resolved_at": now,
                    "resolved_by": "condition",
                    "snoozed_until": None,
                    "snooze_reason": None,
                }
            )
            notify = p.notify_on_resolve and not silent
            return done(resolved, "notify_resolve" if notify else "none")
        return done(counted)

    if counted.status != "open":
        return done(counted)
    last = counted.last_notified_at
    due = woke or (
        p.repeat_interval is not None and (last is None or now - last >= p.repeat_interval)
    )
    if not due:
        return done(counted)
    repeated = counted.model_copy(
        update={"last_notified_at": now, "notifications": counted.notifications + 1}
    )
    return done(repeated, "notify_repeat")


# -- manual moves --------------------------------------------------------------------------------


def acknowledge(state: AlertState, now: datetime) -> AlertState:
    """Open or snoozed -> acknowledged (no more repeats). Acknowledging twice is a no-op."""
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
    """An active alert -> resolved by hand.

    The counters restart, so if the condition still holds the alert opens again after
    ``fire_after`` more evaluations, as a new episode with a new notification.
    """
    _aware(now)
    if not state.active:
        raise LifecycleError(f"cannot resolve an alert that is {state.status}")
    return state.model_copy(
        update={
            "status": "resolved",
            "resolved_at": now,
            "resolved_by": "manual",
            "snoozed_until": None,
            "snooze_reason": None,
            "consecutive_holds": 0,
            "consecutive_clears": 0,
        }
    )

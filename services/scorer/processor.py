"""What one canonical event changes, as plain data: the scorer's pure processor.

:func:`process` turns an event into :class:`EventDeltas` (rollup increments, user and account
updates); :func:`merge` folds many of them into one, so the writer issues one statement per
table per batch instead of one per event. Nothing here does I/O or reads a clock.

Rules:

- The day of an event is the UTC date of its (skew-corrected) ``occurred_at``; a late event
  therefore increments the day it belongs to.
- ``track``, ``page`` and ``screen`` events are activity (``events`` counters); only a
  ``track`` event flagged ``is_login`` is a login. ``identify`` and ``group`` events update
  traits, not counters. An ``alias`` event records that its ``previous_id`` and ``user_id``
  are one person from its day on (``user_aliases``; the scorer's user counts merge them, see
  :mod:`services.scorer.aliases`); it counts nothing itself.
- Users are identified users (``user_id``) of an account; anonymous events count towards the
  account's events and logins but not towards distinct users. Events without an account
  change nothing (they only occupy their event id in the dedup window).
- ``group`` traits are parsed leniently into the typed account columns (``seats`` "120" is
  120, ``mrr`` "4,500" is 4500.0, dates in ISO form); a value that cannot be parsed is dropped,
  never fatal. All group traits are also kept as they came.
- Except the routing traits (:data:`shared.account_fields.ROUTING_FIELDS`, in any spelling):
  they decide where alerts go, and anyone holding a write key can send a group call, so they
  are dropped, from the columns and the kept traits, unless ``routing_from_traits`` is on
  (``TEND_SCORER__ROUTING_FROM_TRAITS``). Operators set them (``tend accounts import``,
  ``PATCH /v1/accounts/{id}``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import msgspec

from shared.account_fields import account_fields, without_routing
from shared.events import AnyEvent

# --- deltas ---------------------------------------------------------------------------------


# The per-key deltas are msgspec structs: made in C, about a fifth of a dataclass's
# ``__init__``, and a worst-mix batch makes two or three of them an event.


class Counts(msgspec.Struct, gc=False):
    events: int = 0
    logins: int = 0


class UserDelta(msgspec.Struct):
    first_seen: datetime
    last_seen: datetime
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    """Traits to merge into the stored ones (later events win)."""


class AccountDelta(msgspec.Struct):
    first_seen: date
    fields: dict[str, Any] = msgspec.field(default_factory=dict)
    """Typed columns (:data:`shared.account_fields.ACCOUNT_FIELDS`) to overwrite."""
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    """Raw group traits to merge into the stored ones."""


@dataclass(slots=True)
class EventDeltas:
    """The changes of one event, or of a batch after :func:`merge`. Keys use the UTC day."""

    events: int = 0
    """How many events were folded in."""
    account_days: dict[tuple[str, date], Counts] = field(default_factory=dict)
    user_days: dict[tuple[str, str, date], Counts] = field(default_factory=dict)
    feature_days: dict[tuple[str, str, date], int] = field(default_factory=dict)
    """(account, feature, day) -> uses."""
    feature_user_days: dict[tuple[str, str, str, date], int] = field(default_factory=dict)
    """(account, feature, user, day) -> uses."""
    users: dict[tuple[str, str], UserDelta] = field(default_factory=dict)
    accounts: dict[str, AccountDelta] = field(default_factory=dict)
    user_accounts: dict[str, str] = field(default_factory=dict)
    """user -> account named by the user's latest ``group`` call."""
    aliases: dict[tuple[str, str, str], date] = field(default_factory=dict)
    """(account, previous id, user id) -> the earliest day of an alias call naming them."""


def process(event: AnyEvent, *, routing_from_traits: bool = False) -> EventDeltas:
    """What ``event`` changes. Pure: the same event always gives the same deltas."""
    deltas = EventDeltas()
    _fold(deltas, event, routing_from_traits)
    return deltas


def _count(counts: dict[Any, Counts], key: Any, logins: int) -> None:
    c = counts.get(key)
    if c is None:
        counts[key] = Counts(1, logins)
    else:
        c.events += 1
        c.logins += logins


def _fold(out: EventDeltas, event: AnyEvent, routing_from_traits: bool) -> None:
    """Add ``event``'s changes to ``out`` in place, as :func:`merge` would: the hot path of a
    batch, with no deltas built per event."""
    out.events += 1
    account = event.account_id
    if not account:
        return
    at = event.occurred_at.astimezone(UTC)
    day = at.date()
    user = event.user_id or None

    account_delta = out.accounts.get(account)
    if account_delta is None:
        account_delta = out.accounts[account] = AccountDelta(first_seen=day)
    elif day < account_delta.first_seen:
        account_delta.first_seen = day
    user_delta = None
    if user is not None:
        user_delta = out.users.get((account, user))
        if user_delta is None:
            user_delta = out.users[(account, user)] = UserDelta(first_seen=at, last_seen=at)
        elif at < user_delta.first_seen:
            user_delta.first_seen = at
        elif at > user_delta.last_seen:
            user_delta.last_seen = at

    kind = event.type
    if kind in ("track", "page", "screen"):
        logins = 1 if kind == "track" and event.is_login else 0
        _count(out.account_days, (account, day), logins)
        if user is not None:
            _count(out.user_days, (account, user, day), logins)
        feature = event.feature
        if feature:
            fkey = (account, feature, day)
            out.feature_days[fkey] = out.feature_days.get(fkey, 0) + 1
            if user is not None:
                fukey = (account, feature, user, day)
                out.feature_user_days[fukey] = out.feature_user_days.get(fukey, 0) + 1
    elif kind == "identify":
        if user_delta is not None and event.traits:
            user_delta.traits.update(event.traits)
    elif kind == "group":
        traits = dict(event.traits) if routing_from_traits else without_routing(event.traits)
        account_delta.traits.update(traits)
        account_delta.fields.update(account_fields(traits))
        if user is not None:
            out.user_accounts[user] = account
    elif kind == "alias" and user and event.previous_id and event.previous_id != user:
        akey = (account, event.previous_id, user)
        seen = out.aliases.get(akey)
        out.aliases[akey] = day if seen is None else min(seen, day)


def merge(items: Iterable[EventDeltas]) -> EventDeltas:
    """Fold many deltas into one, in order: counters add, first/last seen take min/max, and
    traits, fields and user->account mappings of later items win. Inputs are not modified."""
    out = EventDeltas()
    for d in items:
        out.events += d.events
        for key2, c in d.account_days.items():
            acc = out.account_days.get(key2)
            if acc is None:
                out.account_days[key2] = Counts(c.events, c.logins)
            else:
                acc.events += c.events
                acc.logins += c.logins
        for key3, c in d.user_days.items():
            acc = out.user_days.get(key3)
            if acc is None:
                out.user_days[key3] = Counts(c.events, c.logins)
            else:
                acc.events += c.events
                acc.logins += c.logins
        for fkey, uses in d.feature_days.items():
            out.feature_days[fkey] = out.feature_days.get(fkey, 0) + uses
        for fukey, uses in d.feature_user_days.items():
            out.feature_user_days[fukey] = out.feature_user_days.get(fukey, 0) + uses
        for ukey, u in d.users.items():
            have = out.users.get(ukey)
            if have is None:
                out.users[ukey] = UserDelta(u.first_seen, u.last_seen, dict(u.traits))
            else:
                have.first_seen = min(have.first_seen, u.first_seen)
                have.last_seen = max(have.last_seen, u.last_seen)
                have.traits.update(u.traits)
        for account, a in d.accounts.items():
            got = out.accounts.get(account)
            if got is None:
                out.accounts[account] = AccountDelta(a.first_seen, dict(a.fields), dict(a.traits))
            else:
                got.first_seen = min(got.first_seen, a.first_seen)
                got.fields.update(a.fields)
                got.traits.update(a.traits)
        out.user_accounts.update(d.user_accounts)
        for akey, day in d.aliases.items():
            seen = out.aliases.get(akey)
            out.aliases[akey] = day if seen is None else min(seen, day)
    return out


_ACTIVITY = frozenset(("track", "page", "screen"))


def process_batch(events: Iterable[AnyEvent], *, routing_from_traits: bool = False) -> EventDeltas:
    """``merge`` of ``process`` over ``events``, in their order (folded in one pass).

    Activity events (nearly all of them) are folded inline, the tables in local variables, so
    an event costs its dict updates and little else; the rest go through :func:`_fold`, which
    does the same for them. Each table gets its keys in the same order either way."""
    out = EventDeltas()
    accounts, users = out.accounts, out.users
    account_days, user_days = out.account_days, out.user_days
    feature_days, feature_user_days = out.feature_days, out.feature_user_days
    for event in events:
        kind = event.type
        account = event.account_id
        if kind not in _ACTIVITY or not account:
            _fold(out, event, routing_from_traits)
            continue
        out.events += 1
        at = event.occurred_at
        if at.tzinfo is not UTC:
            at = at.astimezone(UTC)
        day = at.date()
        user = event.user_id or None
        account_delta = accounts.get(account)
        if account_delta is None:
            accounts[account] = AccountDelta(first_seen=day)
        elif day < account_delta.first_seen:
            account_delta.first_seen = day
        if user is not None:
            user_delta = users.get((account, user))
            if user_delta is None:
                users[(account, user)] = UserDelta(first_seen=at, last_seen=at)
            elif at < user_delta.first_seen:
                user_delta.first_seen = at
            elif at > user_delta.last_seen:
                user_delta.last_seen = at
        logins = 1 if kind == "track" and event.is_login else 0
        counts = account_days.get((account, day))
        if counts is None:
            account_days[(account, day)] = Counts(1, logins)
        else:
            counts.events += 1
            counts.logins += logins
        if user is not None:
            counts = user_days.get((account, user, day))
            if counts is None:
                user_days[(account, user, day)] = Counts(1, logins)
            else:
                counts.events += 1
                counts.logins += logins
        feature = event.feature
        if feature:
            fkey = (account, feature, day)
            feature_days[fkey] = feature_days.get(fkey, 0) + 1
            if user is not None:
                fukey = (account, feature, user, day)
                feature_user_days[fukey] = feature_user_days.get(fukey, 0) + 1
    return out

"""Batch -> one database transaction: the scorer's rollup writer.

One module of about 600 lines on purpose: every statement of a batch's one transaction is a step
of :class:`RollupWriter`, read in the order it runs, with its PostgreSQL set-based form beside its
SQLite one; what is not a rollup lives apart (:mod:`services.scorer.recent`, the processor, the
array helpers of :mod:`services.scorer.bulk`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    String,
    Table,
    TextClause,
    bindparam,
    case,
    delete,
    func,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from services.scorer.bulk import (
    Columns,
    is_postgresql,
    keyed_columns,
    text_form,
    unnest,
)
from services.scorer.driver import DriverStatement
from services.scorer.processor import AccountDelta, EventDeltas, UserDelta, process_batch
from services.scorer.recent import RecentEvents
from shared.account_fields import ACCOUNT_FIELDS
from shared.bus.base import TopicPartition
from shared.db.models import (
    Account,
    AccountDay,
    FeatureDay,
    FeatureUserDay,
    ProcessedEvent,
    User,
    UserAccount,
    UserAlias,
    UserDay,
)
from shared.db.offsets import store_offsets as store_group_offsets
from shared.db.types import utcnow
from shared.db.upsert import insert_for
from shared.events import AnyEvent

ACCOUNTS: Table = Account.__table__  # type: ignore[assignment]
USERS: Table = User.__table__  # type: ignore[assignment]
PROCESSED: Table = ProcessedEvent.__table__  # type: ignore[assignment]
ACCOUNT_DAYS: Table = AccountDay.__table__  # type: ignore[assignment]
USER_DAYS: Table = UserDay.__table__  # type: ignore[assignment]
FEATURE_DAYS: Table = FeatureDay.__table__  # type: ignore[assignment]
FEATURE_USER_DAYS: Table = FeatureUserDay.__table__  # type: ignore[assignment]
USER_ACCOUNTS: Table = UserAccount.__table__  # type: ignore[assignment]
USER_ALIASES: Table = UserAlias.__table__  # type: ignore[assignment]

ACCOUNT_COLUMNS = [ACCOUNTS.c[col] for col in ACCOUNT_FIELDS]
SCORED_FIELDS = [col for col in ACCOUNT_FIELDS if col not in ("name", "csm_email", "csm_slack")]
"""The profile columns a score depends on (a change re-scores the account's history)."""

# Keys per ``IN (...)`` list: well under the bind-parameter limits of asyncpg (32767) and
# SQLite (32766). Inserts are executemany of one cached statement (SQLAlchemy batches them).
CHUNK = 2000


@dataclass(frozen=True, slots=True)
class FlushResult:
    applied: int
    """Events counted for the first time."""
    duplicates: int
    """Events skipped: seen in an earlier batch (replay, client retry) or twice in this one."""
    accounts: tuple[str, ...]
    """Accounts the applied events touched (now marked dirty), sorted."""


def _chunks(rows: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _earlier(new: ColumnElement[Any], old: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((old.is_(None), new), (new < old, new), else_=old)


def _later(new: ColumnElement[Any], old: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((old.is_(None), new), (new > old, new), else_=old)


def _stale_from(
    delta: AccountDelta,
    have: Mapping[str, Any] | None,
    row: Mapping[str, Any],
    activity_from: date | None,
) -> date | None:
    """The earliest day whose score this batch changes for one account (None: none).

    Every day from the earliest day with new activity; for a new account, or one whose start
    moved earlier, from its first event; and when a profile column changed, from the start
    of the account (the score uses the current profile for every day, see docs/scoring.md;
    the re-scorer bounds this by its horizon)."""
    days = [activity_from] if activity_from is not None else []
    old_start: date | None = have["first_seen"] if have is not None else None
    if old_start is None or delta.first_seen < old_start:
        days.append(delta.first_seen)
    if have is not None and delta.fields and any(row[c] != have[c] for c in SCORED_FIELDS):
        days.append(min(delta.first_seen, old_start or delta.first_seen))
    return min(days, default=None)


_CLAIM = text(
    f"WITH claimed AS (INSERT INTO {PROCESSED.name} (event_id, received_at) "
    f"SELECT * FROM {unnest(PROCESSED, ['event_id', 'received_at'])} "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id), "
    "counted AS (SELECT count(*) AS n FROM claimed) "
    "SELECT CAST(NULL AS TEXT) AS event_id, n FROM counted UNION ALL "
    "SELECT event_id, NULL FROM claimed WHERE (SELECT n FROM counted) < :size"
)
"""PostgreSQL: the dedup claim of a whole batch: a row (NULL, how many ids it added), and the
ids it added only when that is fewer than ``size`` (the batch's distinct ids). Usually every
id is new, so one row comes back, not one per event (the ids' rows, their decoding and a set
of them cost both sides about as much as the rest of the claim's client work)."""

_CLAIM_SQLITE = DriverStatement(
    sqlite.insert(PROCESSED)
    .on_conflict_do_nothing(index_elements=["event_id"])
    .returning(PROCESSED.c.event_id),
    ("event_id", "received_at"),
)
"""SQLite: the same claim, :data:`CHUNK` rows per ``VALUES`` list."""

_USERS_SEEN_ROW = ("account_id", "user_id", "first_seen", "last_seen")
_USERS_SEEN = text(
    f"INSERT INTO {USERS.name} (account_id, user_id, first_seen, last_seen, traits) "
    "SELECT batch.*, CAST('{}' AS JSON) "
    f"FROM {unnest(USERS, _USERS_SEEN_ROW, text_form=True)} "
    "ON CONFLICT (account_id, user_id) DO UPDATE SET "
    f"first_seen = least({USERS.name}.first_seen, excluded.first_seen), "
    f"last_seen = greatest({USERS.name}.last_seen, excluded.last_seen)"
)
"""PostgreSQL: first and last seen of the batch's users whose traits it does not change."""


_ACCOUNT_ROW = (
    "account_id",
    "first_seen",
    "updated_at",
    "dirty",
    *ACCOUNT_FIELDS,
    "rescore_from",
    "traits",
)
_ACCOUNTS_UPSERT = text(
    f"INSERT INTO {ACCOUNTS.name} ({', '.join(_ACCOUNT_ROW)}) "
    f"SELECT {', '.join(_ACCOUNT_ROW[:-1])}, CAST(traits AS JSON) "
    f"FROM {unnest(ACCOUNTS, _ACCOUNT_ROW, ordinality=True, text_form=True)} ORDER BY n "
    "ON CONFLICT (account_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (*ACCOUNT_FIELDS, "traits", "updated_at", "dirty"))
    + f", first_seen = least({ACCOUNTS.name}.first_seen, excluded.first_seen), "
    f"rescore_from = least({ACCOUNTS.name}.rescore_from, excluded.rescore_from)"
)
"""PostgreSQL: the batch's account rows (computed by :meth:`RollupWriter._accounts`) in one
statement, in key order (``least`` skips nulls, as :func:`_earlier` does)."""

_ACCOUNT_READ = [ACCOUNTS.c.account_id, ACCOUNTS.c.traits, ACCOUNTS.c.first_seen, *ACCOUNT_COLUMNS]


async def _stored_accounts(session: AsyncSession, ids: list[str]) -> dict[str, Mapping[str, Any]]:
    """The stored profile, traits and first day of the accounts ``ids`` that exist."""
    if is_postgresql(session):
        # A join with the unnested array, not ``account_id = ANY(:ids)``: asyncpg prepares
        # the statement, PostgreSQL turns to a generic plan after five executions, and in a
        # generic plan ``= ANY`` of a parameter is a linear search of the array per row (a
        # 1,000-account batch against 2,000 accounts: 59 ms, against 1.5 ms with the array
        # inlined). The join keeps a hash join, or the primary key's index, in either plan.
        wanted = (
            func.unnest(bindparam("ids", ids, type_=ARRAY(String)))
            .table_valued("account_id")
            .render_derived(name="wanted")
        )
        queries = [
            select(*_ACCOUNT_READ).join_from(
                ACCOUNTS, wanted, ACCOUNTS.c.account_id == wanted.c.account_id
            )
        ]
    else:
        queries = [
            select(*_ACCOUNT_READ).where(ACCOUNTS.c.account_id.in_(list(chunk)))
            for chunk in _chunks(ids)
        ]
    stored: dict[str, Mapping[str, Any]] = {}
    for query in queries:
        stored.update({row.account_id: row._mapping for row in await session.execute(query)})
    return stored


@cache
def _increment_sql(
    table: Table,
    keys: tuple[str, ...],
    counters: tuple[str, ...],
    distinct: tuple[str, Table] | None,
) -> TextClause:
    """PostgreSQL: :meth:`RollupWriter._increment` as one ``INSERT ... SELECT`` of the batch's
    arrays."""
    names = [*keys, *counters]
    values = [f"batch.{c}" for c in names]
    updates = [f"{c} = {table.name}.{c} + excluded.{c}" for c in counters]
    if distinct is not None:
        column, source = distinct
        same_key = " AND ".join(f"s.{k} = batch.{k}" for k in keys)
        values.append(f"(SELECT count(*) FROM {source.name} AS s WHERE {same_key})")
        updates.append(f"{column} = excluded.{column}")
    targets = [*names, distinct[0]] if distinct is not None else names
    return text(
        f"INSERT INTO {table.name} ({', '.join(targets)}) SELECT {', '.join(values)} "
        f"FROM {unnest(table, names, text_form=True)} ON CONFLICT ({', '.join(keys)}) "
        f"DO UPDATE SET {', '.join(updates)}"
    )


@cache
def _increment_sqlite(
    table: Table,
    keys: tuple[str, ...],
    counters: tuple[str, ...],
    distinct: tuple[str, Table] | None,
) -> DriverStatement:
    """SQLite: :meth:`RollupWriter._increment` as one upsert run per row (``executemany``)."""
    stmt = sqlite.insert(table)
    set_: dict[str, Any] = {c: table.c[c] + stmt.excluded[c] for c in counters}
    if distinct is not None:
        column, source = distinct
        count = (
            select(func.count())
            .select_from(source)
            .where(*(source.c[k] == bindparam(f"k_{k}") for k in keys))
            .scalar_subquery()
        )
        stmt = stmt.values({column: count})
        set_[column] = stmt.excluded[column]
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=set_)
    return DriverStatement(stmt, (*keys, *counters), {f"k_{k}": k for k in keys})


Upsert = Callable[[Any], Any]
"""An ``INSERT`` of a dialect (``insert_for``) -> that insert with its ``ON CONFLICT`` clause."""


@cache
def _sqlite_upsert(build: Upsert, table: Table, names: tuple[str, ...]) -> DriverStatement:
    """SQLite: ``build(insert(table))`` for rows given in the order of ``names``."""
    return DriverStatement(build(sqlite.insert(table)), names)


async def _upsert_rows(
    session: AsyncSession,
    table: Table,
    build: Upsert,
    names: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """``build(insert(table))`` run once per row of ``rows`` (values in the order of
    ``names``), in ``session``'s transaction and in the order of ``rows``: on PostgreSQL by
    Core's ``executemany``, on SQLite by the driver's (:class:`DriverStatement`, same SQL and
    stored values)."""
    if not rows:
        return
    if is_postgresql(session):
        dicts = [dict(zip(names, row, strict=True)) for row in rows]
        await session.execute(build(insert_for(session, table)), dicts)
        return
    await _sqlite_upsert(build, table, names).executemany(session, rows)


_USER_ROW = ("account_id", "user_id", "first_seen", "last_seen", "traits")


def _user_upsert(stmt: Any, *, with_traits: bool) -> Any:
    """Users: first and last seen widened; traits replaced only ``with_traits``."""
    set_: dict[str, Any] = {
        "first_seen": _earlier(stmt.excluded.first_seen, USERS.c.first_seen),
        "last_seen": _later(stmt.excluded.last_seen, USERS.c.last_seen),
    }
    if with_traits:
        set_["traits"] = stmt.excluded.traits
    return stmt.on_conflict_do_update(index_elements=["account_id", "user_id"], set_=set_)


def _user_upsert_traits(stmt: Any) -> Any:
    return _user_upsert(stmt, with_traits=True)


def _user_upsert_seen(stmt: Any) -> Any:
    return _user_upsert(stmt, with_traits=False)


def _account_upsert(stmt: Any) -> Any:
    """SQLite accounts: profile, traits, ``updated_at`` and ``dirty`` replaced; first day and
    ``rescore_from`` the earlier one."""
    set_: dict[str, Any] = {col: stmt.excluded[col] for col in ACCOUNT_FIELDS}
    set_.update(
        traits=stmt.excluded.traits,
        first_seen=_earlier(stmt.excluded.first_seen, ACCOUNTS.c.first_seen),
        updated_at=stmt.excluded.updated_at,
        dirty=stmt.excluded.dirty,
        rescore_from=_earlier(stmt.excluded.rescore_from, ACCOUNTS.c.rescore_from),
    )
    return stmt.on_conflict_do_update(index_elements=["account_id"], set_=set_)


_USER_ACCOUNT_ROW = ("user_id", "account_id", "updated_at")


def _user_account_upsert(stmt: Any) -> Any:
    """A user's account mapping: the later one wins."""
    return stmt.on_conflict_do_update(
        index_elements=["user_id"],
        set_={"account_id": stmt.excluded.account_id, "updated_at": stmt.excluded.updated_at},
    )


_ALIAS_ROW = ("account_id", "previous_id", "user_id", "day")


def _alias_upsert(stmt: Any) -> Any:
    """An alias keeps its earliest day."""
    return stmt.on_conflict_do_update(
        index_elements=["account_id", "previous_id", "user_id"],
        set_={"day": _earlier(stmt.excluded.day, USER_ALIASES.c.day)},
    )


def _offset_key(tp: Any) -> tuple[str, int]:
    if isinstance(tp, tuple):
        return str(tp[0]), int(tp[1])
    return str(tp.topic), int(tp.partition)


class RollupWriter:
    """Writes a batch of canonical events into the daily rollups, exactly once.

    Contract of :meth:`flush`:

    - It runs inside the caller's ONE transaction and never commits or rolls back: the caller
      commits, and only then commits the offsets to the broker. Everything a batch changes
      (dedup marks, rollups, users, accounts, user->account mappings, dirty flags and the
      consumer offsets) is therefore committed together or not at all.
    - Exactly-once counting: each event id is recorded in ``processed_events`` (insert, on
      conflict do nothing) and only the ids this insert actually added are counted. A replayed
      batch, a client retry with the same messageId inside the dedup window, or a duplicate
      inside the batch is counted once. Ids are purged after the window
      (:meth:`purge_processed`).
    - Every other write is an upsert: counters add the batch's merged increments via
      ``excluded``; distinct-user counts (``account_days.active_users``,
      ``feature_days.users``) are recounted from ``user_days`` / ``feature_user_days`` in the
      upsert of each key the batch touched, so they stay exact whatever the order of batches.
    - Late events update the day they occurred on. Order inside a batch only matters for
      traits and mappings, where the later event in the batch wins.
    - The newest counted events of each account are kept in
      ``recent_event_pages`` (what arrived, when, from which write key), see
      :mod:`services.scorer.recent`.
    - Cost: a constant number of statements per batch (about a dozen, more only for batches
      over :data:`CHUNK` rows per table on SQLite), whatever the number of events or accounts.
      On PostgreSQL each is one execution of one set-based statement (the rows as column
      arrays, :mod:`services.scorer.bulk`); on SQLite an ``executemany``.
    - Works on PostgreSQL and SQLite, with the same results.
    - Routing traits of group calls (``csm_email``, ``csm_slack``) are ignored unless
      ``routing_from_traits`` (see :mod:`services.scorer.processor`).
    """

    def __init__(
        self, *, routing_from_traits: bool = False, recent: RecentEvents | None = None
    ) -> None:
        self.routing_from_traits = routing_from_traits
        self.recent = recent if recent is not None else RecentEvents()

    async def flush(
        self,
        session: AsyncSession,
        group_id: str,
        events: Sequence[AnyEvent],
        offsets: Mapping[Any, int],
    ) -> FlushResult:
        """Apply ``events`` and store ``offsets`` ({(topic, partition) or TopicPartition:
        next offset}) for ``group_id``, in ``session``'s transaction."""
        fresh = await self._claim(session, events)
        deltas = process_batch(fresh, routing_from_traits=self.routing_from_traits)
        now = utcnow()
        await self._rollups(session, deltas)
        await self._users(session, deltas)
        await self._accounts(session, deltas, now)
        await self._user_accounts(session, deltas, now)
        await self._aliases(session, deltas)
        await self.recent.keep(session, fresh, now)
        await self.store_offsets(session, group_id, offsets, now)
        return FlushResult(
            applied=len(fresh),
            duplicates=len(events) - len(fresh),
            accounts=tuple(sorted(deltas.accounts)),
        )

    async def _claim(self, session: AsyncSession, events: Sequence[AnyEvent]) -> list[AnyEvent]:
        """Record the batch's event ids; the events whose id was not recorded before."""
        first: dict[str, AnyEvent] = {}
        for e in events:
            first.setdefault(e.event_id, e)
        if not first:
            return []
        received = [e.received_at for e in first.values()]
        if is_postgresql(session):
            params = {"event_id": list(first), "received_at": received, "size": len(first)}
            claimed = (await session.execute(_CLAIM, params)).all()
            if next(n for i, n in claimed if i is None) == len(first):
                return list(first.values())
            new = {i for i, _ in claimed if i is not None}
        else:
            rows = list(zip(first, received, strict=True))
            new = set(await _CLAIM_SQLITE.returning(session, rows, CHUNK))
        return [e for i, e in first.items() if i in new]

    async def _increment(
        self,
        session: AsyncSession,
        table: Table,
        keys: tuple[str, ...],
        counters: tuple[str, ...],
        batch: Columns,
        distinct: tuple[str, Table] | None = None,
    ) -> None:
        """Upsert ``batch`` (``keys`` then ``counters``) adding ``counters``; with ``distinct``
        = (column, source), also set ``column`` to the number of ``source`` rows with the row's
        key (its distinct users), counted inside the same statement, so it is exact whatever
        the order of batches."""
        if not batch[keys[0]]:
            return
        if is_postgresql(session):
            await session.execute(_increment_sql(table, keys, counters, distinct), text_form(batch))
            return
        rows = zip(*(batch[c] for c in (*keys, *counters)), strict=True)
        await _increment_sqlite(table, keys, counters, distinct).executemany(session, rows)

    async def _rollups(self, session: AsyncSession, d: EventDeltas) -> None:
        # The per-user tables first: the account-day and feature-day upserts count their
        # distinct users from them. Every user-day key has its account-day key in the batch
        # (and every feature-user-day its feature-day), so every count the batch can change
        # is recomputed.
        counts = ("events", "logins")
        user_days = keyed_columns(("account_id", "user_id", "day"), d.user_days)
        user_days["events"] = [c.events for c in d.user_days.values()]
        user_days["logins"] = [c.logins for c in d.user_days.values()]
        await self._increment(
            session, USER_DAYS, ("account_id", "user_id", "day"), counts, user_days
        )
        feature_user_days = keyed_columns(
            ("account_id", "feature", "user_id", "day"), d.feature_user_days
        )
        feature_user_days["uses"] = list(d.feature_user_days.values())
        await self._increment(
            session,
            FEATURE_USER_DAYS,
            ("account_id", "feature", "user_id", "day"),
            ("uses",),
            feature_user_days,
        )
        account_days = keyed_columns(("account_id", "day"), d.account_days)
        account_days["events"] = [c.events for c in d.account_days.values()]
        account_days["logins"] = [c.logins for c in d.account_days.values()]
        await self._increment(
            session,
            ACCOUNT_DAYS,
            ("account_id", "day"),
            counts,
            account_days,
            distinct=("active_users", USER_DAYS),
        )
        feature_days = keyed_columns(("account_id", "feature", "day"), d.feature_days)
        feature_days["uses"] = list(d.feature_days.values())
        await self._increment(
            session,
            FEATURE_DAYS,
            ("account_id", "feature", "day"),
            ("uses",),
            feature_days,
            distinct=("users", FEATURE_USER_DAYS),
        )

    async def _users(self, session: AsyncSession, d: EventDeltas) -> None:
        # Users with and without trait changes go in separate statements, so a user's stored
        # traits are only rewritten when the batch changed them.
        seen = {k: u for k, u in d.users.items() if not u.traits}
        if seen and is_postgresql(session):
            batch = keyed_columns(("account_id", "user_id"), seen)
            batch["first_seen"] = [v.first_seen for v in seen.values()]
            batch["last_seen"] = [v.last_seen for v in seen.values()]
            await session.execute(_USERS_SEEN, text_form(batch))
            seen = {}
        changed = {k: u for k, u in d.users.items() if u.traits}
        stored: dict[tuple[str, str], dict[str, Any]] = {}
        for chunk in _chunks(list(changed)):
            result = await session.execute(
                select(USERS.c.account_id, USERS.c.user_id, USERS.c.traits).where(
                    tuple_(USERS.c.account_id, USERS.c.user_id).in_(list(chunk))
                )
            )
            stored.update({(a, u): dict(t or {}) for a, u, t in result})
        for part, with_traits in ((changed, True), (seen, False)):
            if part:
                await self._upsert_users(session, part, stored, with_traits=with_traits)

    @staticmethod
    async def _upsert_users(
        session: AsyncSession,
        users: Mapping[tuple[str, str], UserDelta],
        stored: Mapping[tuple[str, str], dict[str, Any]],
        *,
        with_traits: bool,
    ) -> None:
        if with_traits:
            rows = [
                (a, u, delta.first_seen, delta.last_seen, stored.get((a, u), {}) | delta.traits)
                for (a, u), delta in users.items()
            ]
        else:
            # No trait changes (none stored for them either): one ``{}`` for every row, so
            # SQLite's driver statement encodes it once (it converts each distinct object).
            none: dict[str, Any] = {}
            rows = [(a, u, d.first_seen, d.last_seen, none) for (a, u), d in users.items()]
        build = _user_upsert_traits if with_traits else _user_upsert_seen
        await _upsert_rows(session, USERS, build, _USER_ROW, rows)

    async def _accounts(self, session: AsyncSession, d: EventDeltas, now: datetime) -> None:
        if not d.accounts:
            return
        stored = await _stored_accounts(session, list(d.accounts))
        activity_from: dict[str, date] = {}
        # An alias changes the user counts from its day on, like activity on that day.
        alias_days = [(a, day) for (a, _, _), day in d.aliases.items()]
        for account_id, day in [*d.account_days, *alias_days]:
            if account_id not in activity_from or day < activity_from[account_id]:
                activity_from[account_id] = day
        rows = []
        # Rows in key order, like every other writer of accounts, so concurrent
        # transactions lock them in the same order and cannot deadlock.
        for account_id, delta in sorted(d.accounts.items()):
            have = stored.get(account_id)
            row: dict[str, Any] = {
                "account_id": account_id,
                "first_seen": delta.first_seen,
                "updated_at": now,
                "dirty": True,
            }
            for col in ACCOUNT_FIELDS:
                row[col] = delta.fields.get(col, have[col] if have is not None else None)
            row["rescore_from"] = _stale_from(delta, have, row, activity_from.get(account_id))
            traits = dict(have["traits"] or {}) if have is not None else {}
            traits.update(delta.traits)
            row["traits"] = traits
            rows.append(row)
        if is_postgresql(session):
            for row in rows:
                row["traits"] = json.dumps(row["traits"]) if row["traits"] else "{}"
            batch = {c: [r[c] for r in rows] for c in _ACCOUNT_ROW}
            await session.execute(_ACCOUNTS_UPSERT, text_form(batch))
            return
        driver = _sqlite_upsert(_account_upsert, ACCOUNTS, _ACCOUNT_ROW)
        await driver.executemany(session, [tuple(r[c] for c in _ACCOUNT_ROW) for r in rows])

    async def _user_accounts(self, session: AsyncSession, d: EventDeltas, now: datetime) -> None:
        rows = [(u, a, now) for u, a in d.user_accounts.items()]
        await _upsert_rows(session, USER_ACCOUNTS, _user_account_upsert, _USER_ACCOUNT_ROW, rows)

    async def _aliases(self, session: AsyncSession, d: EventDeltas) -> None:
        rows = [(a, p, u, day) for (a, p, u), day in sorted(d.aliases.items())]
        await _upsert_rows(session, USER_ALIASES, _alias_upsert, _ALIAS_ROW, rows)

    @staticmethod
    async def store_offsets(
        session: AsyncSession,
        group_id: str,
        offsets: Mapping[Any, int],
        now: datetime | None = None,
    ) -> None:
        """Upsert the group's next offsets; keys are (topic, partition) or TopicPartition.
        One row per partition: :func:`shared.db.offsets.store_offsets` writes them."""
        next_offsets = {TopicPartition(*_offset_key(k)): int(v) for k, v in offsets.items()}
        await store_group_offsets(session, group_id, next_offsets, now=now)

    @staticmethod
    async def purge_processed(session: AsyncSession, older_than: datetime) -> int:
        """Forget event ids received before ``older_than`` (the end of the dedup window);
        returns how many were forgotten. A retry older than the window counts again."""
        result = await session.execute(
            delete(PROCESSED).where(PROCESSED.c.received_at < older_than)
        )
        return int(getattr(result, "rowcount", 0) or 0)

"""Outcomes, MRR history and lifecycle stage changes over one ``AsyncSession``.

Never commits: the caller's boundary (CLI import, API request) commits, so a batch that fails
(an unknown account, contradictory outcomes) leaves nothing behind. Recording is idempotent:
the natural key ``(account_id, kind, effective_on)`` is upserted, and the derived tables of
the accounts touched are rebuilt from scratch, so recording the same outcomes twice leaves the
database as it was after the first time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Account, FeatureDay, LifecycleStageChange, MrrChange, Outcome
from shared.db.types import utcnow
from shared.db.upsert import insert_for
from shared.outcomes.lifecycle import stage_changes
from shared.outcomes.model import (
    VALUE_FIELDS,
    AccountHistory,
    CustomerOutcome,
    MrrPoint,
    OutcomesPolicy,
    StageChange,
    account_start,
    in_day_order,
)
from shared.outcomes.mrr import derive_mrr_history

OUTCOMES = cast(Table, Outcome.__table__)
MRR_HISTORY = cast(Table, MrrChange.__table__)
STAGE_CHANGES = cast(Table, LifecycleStageChange.__table__)
ACCOUNTS = cast(Table, Account.__table__)
_CHUNK = 500
_KEY = ("account_id", "kind", "effective_on")
_STORED = (*VALUE_FIELDS, "source")


class UnknownAccounts(ValueError):
    """Outcomes name accounts tend does not know (import their profiles first)."""

    def __init__(self, account_ids: Sequence[str]) -> None:
        self.account_ids = sorted(account_ids)
        shown = ", ".join(repr(a) for a in self.account_ids[:20])
        more = f" and {len(self.account_ids) - 20} more" if len(self.account_ids) > 20 else ""
        super().__init__(f"account_id: no such account: {shown}{more}")


@dataclass(frozen=True, slots=True)
class RecordResult:
    inserted: int
    updated: int
    unchanged: int


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


async def _rows_of(
    session: AsyncSession, query: Any, column: Any, ids: Sequence[str] | None
) -> list[Any]:
    """``query``'s rows, restricted to ``column IN ids`` (in chunks) unless ``ids`` is None."""
    if ids is None:
        return list(await session.execute(query))
    rows: list[Any] = []
    for chunk in _chunks(ids):
        rows.extend(await session.execute(query.where(column.in_(chunk))))
    return rows


def _outcome(row: Any) -> CustomerOutcome:
    return CustomerOutcome(
        account_id=row.account_id,
        kind=row.kind,
        effective_on=row.effective_on,
        reason=row.reason,
        mrr_delta=row.mrr_delta,
        new_mrr=row.new_mrr,
        mrr_lost=row.mrr_lost,
        new_term_end=row.new_term_end,
        source=row.source,
    )


class OutcomeRepository:
    """Reads and writes outcomes and what is derived from them; never commits."""

    def __init__(self, session: AsyncSession, policy: OutcomesPolicy | None = None) -> None:
        self.session = session
        self.policy = policy or OutcomesPolicy()

    async def record(self, outcomes: Sequence[CustomerOutcome], *, as_of: date) -> RecordResult:
        """Upsert ``outcomes`` (validated by the caller: see ``outcome_problems``) and rebuild
        the MRR history and stage changes of their accounts up to ``as_of``.

        Raises :class:`UnknownAccounts`, or :class:`~shared.outcomes.mrr.InconsistentOutcomes`
        when the account's outcomes, old and new together, contradict each other."""
        keys: set[tuple[str, str, date]] = set()
        for o in outcomes:
            if o.key in keys:
                raise ValueError(
                    f"effective_on: the {o.kind} of {o.account_id!r} on "
                    f"{o.effective_on.isoformat()} is given twice"
                )
            keys.add(o.key)
        ids = sorted({o.account_id for o in outcomes})
        query = select(ACCOUNTS.c.account_id)
        known = {
            r.account_id for r in await _rows_of(self.session, query, ACCOUNTS.c.account_id, ids)
        }
        if missing := [a for a in ids if a not in known]:
            raise UnknownAccounts(missing)
        stored = {o.key: o for o in await self._outcomes(ids)}
        now = utcnow()
        rows: list[dict[str, Any]] = []
        inserted = updated = 0
        for o in outcomes:
            old = stored.get(o.key)
            if old == o:
                continue
            inserted += old is None
            updated += old is not None
            rows.append(
                {
                    **{k: getattr(o, k) for k in (*_KEY, *_STORED)},
                    "recorded_at": now,
                    "updated_at": now,
                }
            )
        if rows:
            # One statement executed for many rows: compiled once, whatever the batch size.
            stmt = insert_for(self.session, OUTCOMES)
            stmt = stmt.on_conflict_do_update(
                index_elements=list(_KEY),
                set_={c: stmt.excluded[c] for c in (*_STORED, "updated_at")},
            )
            await self.session.execute(stmt, rows)
        await self.rebuild(ids, as_of=as_of)
        return RecordResult(inserted, updated, len(outcomes) - inserted - updated)

    async def outcomes(self, account_id: str) -> list[CustomerOutcome]:
        """The account's outcomes in day order."""
        return in_day_order(await self._outcomes([account_id]))

    async def _outcomes(self, account_ids: Sequence[str] | None) -> list[CustomerOutcome]:
        rows = await _rows_of(self.session, select(OUTCOMES), OUTCOMES.c.account_id, account_ids)
        return [_outcome(r) for r in rows]

    async def mrr_history(self, account_id: str) -> list[MrrPoint]:
        result = await self.session.execute(
            select(MRR_HISTORY)
            .where(MRR_HISTORY.c.account_id == account_id)
            .order_by(MRR_HISTORY.c.effective_on)
        )
        return [MrrPoint(r.effective_on, r.mrr, r.cause) for r in result]

    async def stage_changes(self, account_id: str) -> list[StageChange]:
        result = await self.session.execute(
            select(STAGE_CHANGES)
            .where(STAGE_CHANGES.c.account_id == account_id)
            .order_by(STAGE_CHANGES.c.effective_on)
        )
        return [StageChange(r.effective_on, r.stage) for r in result]

    async def histories(
        self, account_ids: Sequence[str] | None = None, *, stored: bool = False
    ) -> list[AccountHistory]:
        """Accounts (every one when None) with their outcomes and MRR history, for the
        retention maths. The MRR history is derived afresh from the profile and outcomes as
        they are now, or, with ``stored``, read from ``mrr_history`` as :meth:`rebuild` last
        wrote it (an account never rebuilt has none there)."""
        query = select(
            ACCOUNTS.c.account_id,
            ACCOUNTS.c.created_at,
            ACCOUNTS.c.first_seen,
            ACCOUNTS.c.plan,
            ACCOUNTS.c.csm_email,
            ACCOUNTS.c.renewal_date,
            ACCOUNTS.c.mrr,
        )
        profiles = await _rows_of(self.session, query, ACCOUNTS.c.account_id, account_ids)
        ids = [p.account_id for p in profiles]
        by_account: dict[str, list[CustomerOutcome]] = {}
        for o in await self._outcomes(None if account_ids is None else ids):
            by_account.setdefault(o.account_id, []).append(o)
        kept: dict[str, list[MrrPoint]] = {}
        if stored:
            kept = await self._stored_mrr(None if account_ids is None else ids)
        out = []
        for p in sorted(profiles, key=lambda p: p.account_id):
            outcomes = tuple(in_day_order(by_account.get(p.account_id, [])))
            start = account_start(p.created_at, p.first_seen, outcomes)
            if stored:
                points = kept.get(p.account_id, [])
            else:
                points = derive_mrr_history(outcomes, profile_mrr=p.mrr, start=start)
            out.append(
                AccountHistory(
                    account_id=p.account_id,
                    start=start,
                    plan=p.plan,
                    csm=p.csm_email,
                    renewal_date=p.renewal_date,
                    outcomes=outcomes,
                    mrr=tuple(points),
                )
            )
        return out

    async def _stored_mrr(self, account_ids: Sequence[str] | None) -> dict[str, list[MrrPoint]]:
        query = select(MRR_HISTORY).order_by(MRR_HISTORY.c.account_id, MRR_HISTORY.c.effective_on)
        out: dict[str, list[MrrPoint]] = {}
        for r in await _rows_of(self.session, query, MRR_HISTORY.c.account_id, account_ids):
            out.setdefault(r.account_id, []).append(MrrPoint(r.effective_on, r.mrr, r.cause))
        return out

    async def rebuild(self, account_ids: Sequence[str] | None = None, *, as_of: date) -> int:
        """Replace the MRR history and the stage changes (up to ``as_of``) of the accounts
        (every account when None) with what their profile and outcomes give today; returns the
        number of accounts rebuilt. Stages move with time (New ends, a Renewal window opens),
        so this is also what a daily job calls."""
        histories = await self.histories(account_ids)
        ids = [h.account_id for h in histories]
        for chunk in _chunks(ids):
            await self.session.execute(
                delete(MRR_HISTORY).where(MRR_HISTORY.c.account_id.in_(chunk))
            )
            await self.session.execute(
                delete(STAGE_CHANGES).where(STAGE_CHANGES.c.account_id.in_(chunk))
            )
        points = [
            {
                "account_id": h.account_id,
                "effective_on": p.effective_on,
                "mrr": p.mrr,
                "cause": p.cause,
            }
            for h in histories
            for p in h.mrr
        ]
        stages = [
            {"account_id": h.account_id, "effective_on": c.effective_on, "stage": c.stage}
            for h in histories
            for c in stage_changes(h, as_of, self.policy)
        ]
        for table, rows in ((MRR_HISTORY, points), (STAGE_CHANGES, stages)):
            for i in range(0, len(rows), _CHUNK):
                await self.session.execute(insert(table), rows[i : i + _CHUNK])
        return len(histories)

    async def first_key_feature_use(
        self, key_features: Sequence[str], account_ids: Sequence[str] | None = None
    ) -> dict[str, date]:
        """The first day each account used any of ``key_features`` (from the feature-day
        rollups, the onboarding scorecard's data); accounts that never did are absent."""
        if not key_features:
            return {}
        query = (
            select(FeatureDay.account_id, func.min(FeatureDay.day))
            .where(FeatureDay.feature.in_(list(key_features)), FeatureDay.uses > 0)
            .group_by(FeatureDay.account_id)
        )
        rows = await _rows_of(self.session, query, FeatureDay.account_id, account_ids)
        return {account_id: day for account_id, day in rows}

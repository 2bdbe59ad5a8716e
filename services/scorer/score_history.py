"""The scorer's score history: ``health_scores`` rows read and upserted, and each account's
current score on ``accounts``.

:class:`ScoreHistory` never commits; the caller's unit of work does. Its reads and writes take
a chunk of accounts in a constant number of statements (on PostgreSQL one statement of arrays
per write, elsewhere an executemany), never one per account. The re-scorer reaches it through
:class:`~services.scorer.repository.ScoringRepository`, which adds the activity reads and the
work lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Date, Table, Text, and_, bindparam, cast, func, or_, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ColumnElement, Subquery

from services.scorer.activity_reads import _as_date, _chunks
from services.scorer.bulk import columns, is_postgresql, unnest
from services.scorer.driver import DriverStatement
from services.scorer.score_rows import (
    JSON_PARTS,
    EncodedScore,
    ScoreRow,
    previous_score_from_text,
)
from shared.db.models import Account, HealthScore
from shared.db.types import utcnow
from shared.scores import PreviousScore

ACCOUNTS: Table = Account.__table__  # type: ignore[assignment]
HEALTH_SCORES: Table = HealthScore.__table__  # type: ignore[assignment]


def _latest_before(account_ids: Sequence[str], before: date) -> Subquery:
    """Each of ``account_ids``' latest scored day strictly before ``before``."""
    hs = HEALTH_SCORES.c
    return (
        select(hs.account_id, func.max(hs.as_of).label("as_of"))
        .where(hs.account_id.in_(list(account_ids)), hs.as_of < before)
        .group_by(hs.account_id)
        .subquery()
    )


def _on(latest: Subquery) -> ColumnElement[bool]:
    """The ``health_scores`` row of each of ``latest``'s (account, day)."""
    hs = HEALTH_SCORES.c
    return and_(hs.account_id == latest.c.account_id, hs.as_of == latest.c.as_of)


class ScoreHistory:
    """Score history and current scores. Never commits; a repeated save stores the same rows
    (upserts keyed by account and day), and a current score only moves forward in time.
    """

    async def load_scores(
        self, session: AsyncSession, account_ids: Sequence[str], as_of: date
    ) -> dict[str, ScoreRow]:
        """The stored scores of ``account_ids`` as of ``as_of`` (accounts without one are
        absent)."""
        out: dict[str, ScoreRow] = {}
        hs = HEALTH_SCORES.c
        for chunk in _chunks(list(dict.fromkeys(account_ids))):
            result = await session.execute(
                select(HEALTH_SCORES).where(hs.account_id.in_(list(chunk)), hs.as_of == as_of)
            )
            for row in result:
                out[row.account_id] = _score_row(dict(row._mapping))
        return out

    async def load_encoded_scores(
        self, session: AsyncSession, account_ids: Sequence[str], as_of: date
    ) -> dict[str, EncodedScore]:
        """:meth:`load_scores` with the JSON parts as stored, undecoded."""
        out: dict[str, EncodedScore] = {}
        hs = HEALTH_SCORES.c
        columns_ = [
            hs.account_id,
            hs.as_of,
            hs.score,
            hs.band,
            *(cast(hs[name], Text) for name in JSON_PARTS),
            hs.previous_score,
            hs.previous_band,
            hs.computed_at,
            hs.provisional,
        ]
        for chunk in _chunks(list(dict.fromkeys(account_ids))):
            result = await session.execute(
                select(*columns_).where(hs.account_id.in_(list(chunk)), hs.as_of == as_of)
            )
            for row in result:
                day = _as_date(row[1])
                assert day is not None
                out[row[0]] = EncodedScore(
                    account_id=row[0],
                    as_of=day,
                    score=None if row[2] is None else float(row[2]),
                    band=row[3],
                    components=row[4],
                    left_out=row[5],
                    metrics=row[6],
                    moved=row[7],
                    previous_score=row[8],
                    previous_band=row[9],
                    computed_at=row[10],
                    provisional=bool(row[11]),
                )
        return out

    async def load_previous(
        self, session: AsyncSession, account_ids: Sequence[str], before: date
    ) -> dict[str, ScoreRow]:
        """Each account's latest score strictly before ``before`` (accounts without one are
        absent). One query."""
        ids = list(dict.fromkeys(account_ids))
        out: dict[str, ScoreRow] = {}
        for chunk in _chunks(ids):
            latest = _latest_before(chunk, before)
            result = await session.execute(select(HEALTH_SCORES).join(latest, _on(latest)))
            for row in result:
                out[row.account_id] = _score_row(dict(row._mapping))
        return out

    async def load_previous_scores(
        self, session: AsyncSession, account_ids: Sequence[str], before: date
    ) -> dict[str, PreviousScore]:
        """What the scorer remembers of each account's latest score strictly before
        ``before`` (:func:`~services.scorer.score_rows.previous_from_row` of
        :meth:`load_previous`'s rows), reading only the columns that takes: what was left
        out, the metrics and what moved are most of a row's JSON, decoded for nothing; the
        components are read as text and only their points decoded."""
        ids = list(dict.fromkeys(account_ids))
        out: dict[str, PreviousScore] = {}
        hs = HEALTH_SCORES.c
        if is_postgresql(session):
            # One backward probe of the key per account; the GROUP BY below scans every
            # earlier day of each account, and the planner, misjudging the aggregate, ran it
            # as a parallel bitmap scan (ten times the time for 500 accounts, one day each).
            chunks: list[Any] = [
                await session.execute(_PREVIOUS_PG, {"account_id": ids, "before": before})
            ]
        else:
            chunks = []
            for chunk in _chunks(ids):
                latest = _latest_before(chunk, before)
                chunks.append(
                    await session.execute(
                        select(
                            hs.account_id, hs.as_of, hs.score, hs.band, cast(hs.components, Text)
                        ).join(latest, _on(latest))
                    )
                )
        for result in chunks:
            for account_id, as_of, points, band, components in result:
                day = _as_date(as_of)
                assert day is not None
                score = None if points is None else float(points)
                out[account_id] = previous_score_from_text(score, band, components, day)
        return out

    async def save_scores(self, session: AsyncSession, rows: Sequence[ScoreRow]) -> None:
        """Upsert ``health_scores`` rows and make them the accounts' current score.

        An account's current score only moves forward in time: a score as of an earlier date
        than the account's ``scored_as_of`` is kept in history but does not replace it. The
        re-score marks are left alone (see
        :meth:`ScoringRepository.advance_marks
        <services.scorer.repository.ScoringRepository.advance_marks>`)."""
        await self.save_history(session, rows)
        await self.set_current(session, rows)

    async def save_history(self, session: AsyncSession, rows: Sequence[ScoreRow]) -> None:
        """Upsert ``health_scores`` rows (a row replaces the stored one of its day), their JSON
        parts encoded as the engine encodes them (``json.dumps``)."""
        await self.save_encoded(session, [r.encoded() for r in rows])

    async def save_encoded(self, session: AsyncSession, rows: Sequence[EncodedScore]) -> None:
        """:meth:`save_history` of rows whose JSON parts are encoded already: the texts are
        stored as they are, in key order; on PostgreSQL by one statement of arrays, on SQLite
        by the driver's ``executemany`` (never decoded for Core to encode them again)."""
        if not rows:
            return
        now = utcnow()
        unique = sorted(
            {(r.account_id, r.as_of): r for r in rows}.values(),
            key=lambda r: (r.account_id, r.as_of),
        )
        for r in unique:
            if r.computed_at is not None and r.computed_at.tzinfo is None:
                # Refused as the column type refuses it in the row-per-row upsert.
                raise ValueError("naive computed_at; pass an aware datetime")
        values = [
            (
                r.account_id,
                r.as_of,
                r.score,
                r.band,
                r.components,
                r.left_out,
                r.metrics,
                r.moved,
                r.previous_score,
                r.previous_band,
                r.computed_at or now,
                r.provisional,
            )
            for r in unique
        ]
        if is_postgresql(session):
            await session.execute(_HISTORY_UPSERT, columns(_HISTORY, values))
        else:
            await _HISTORY_SQLITE.executemany(session, values)

    async def set_current(
        self, session: AsyncSession, rows: Sequence[ScoreRow | EncodedScore]
    ) -> None:
        """Make each account's latest row of ``rows`` its current score, unless the account
        already has a current score of a later day."""
        if not rows:
            return
        latest: dict[str, ScoreRow | EncodedScore] = {}
        for r in rows:
            if r.account_id not in latest or r.as_of >= latest[r.account_id].as_of:
                latest[r.account_id] = r
        if is_postgresql(session):
            ordered = sorted(latest.values(), key=lambda r: r.account_id)
            await session.execute(_CURRENT_LOCK, {"account_id": [r.account_id for r in ordered]})
            await session.execute(
                _CURRENT_UPDATE,
                columns(_CURRENT, ((r.account_id, r.as_of, r.score, r.band) for r in ordered)),
            )
            return
        await session.execute(
            _CURRENT_SQLITE,
            [
                {
                    "b_account_id": r.account_id,
                    "b_as_of": r.as_of,
                    "b_score": r.score,
                    "b_band": r.band,
                }
                for r in sorted(latest.values(), key=lambda r: r.account_id)
            ],
        )


_HISTORY = (
    "account_id",
    "as_of",
    "score",
    "band",
    "components",
    "left_out",
    "metrics",
    "moved",
    "previous_score",
    "previous_band",
    "computed_at",
    "provisional",
)
_HISTORY_UPSERT = text(
    f"INSERT INTO {HEALTH_SCORES.name} ({', '.join(_HISTORY)}) SELECT "
    + ", ".join(f"CAST({c} AS JSON)" if c in JSON_PARTS else c for c in _HISTORY)
    + f" FROM {unnest(HEALTH_SCORES, _HISTORY, ordinality=True)} ORDER BY n "
    "ON CONFLICT (account_id, as_of) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _HISTORY[2:])
)
"""PostgreSQL: a chunk's score rows in one statement, in key order (JSON parts as text)."""


def _history_sqlite() -> DriverStatement:
    """SQLite: the same upsert row by row, the JSON parts bound as the texts they are (the
    column's own type would encode them again)."""
    stmt = sqlite.insert(HEALTH_SCORES).values(
        {
            c: bindparam(c, type_=Text() if c in JSON_PARTS else HEALTH_SCORES.c[c].type)
            for c in _HISTORY
        }
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["account_id", "as_of"],
        set_={c: stmt.excluded[c] for c in _HISTORY[2:]},
    )
    return DriverStatement(stmt, _HISTORY)


_HISTORY_SQLITE = _history_sqlite()

_PREVIOUS_PG = text(
    "SELECT h.account_id, h.as_of, h.score, h.band, CAST(h.components AS TEXT) "
    "FROM unnest(CAST(:account_id AS TEXT[])) AS ids(account_id) CROSS JOIN LATERAL ("
    f"SELECT account_id, as_of, score, band, components FROM {HEALTH_SCORES.name} "
    "WHERE account_id = ids.account_id AND as_of < :before ORDER BY as_of DESC LIMIT 1) AS h"
).bindparams(bindparam("before", type_=Date))
"""PostgreSQL: each account's latest score before a day (see
:meth:`ScoreHistory.load_previous_scores`)."""

_CURRENT = ("account_id", "as_of", "score", "band")
_CURRENT_LOCK = text(
    f"SELECT account_id FROM {ACCOUNTS.name} WHERE account_id = ANY(CAST(:account_id AS TEXT[])) "
    "ORDER BY account_id FOR UPDATE"
)
"""PostgreSQL: lock the accounts of a chunk in key order, as the row-per-row updates did (the
rollup writer's transactions take them in that order too), before one update takes them all."""
_CURRENT_UPDATE = text(
    f"UPDATE {ACCOUNTS.name} SET score = batch.score, band = batch.band, "
    "scored_as_of = batch.as_of FROM unnest(CAST(:account_id AS TEXT[]), "
    "CAST(:as_of AS DATE[]), CAST(:score AS FLOAT[]), CAST(:band AS TEXT[])) "
    f"AS batch(account_id, as_of, score, band) WHERE {ACCOUNTS.name}.account_id = batch.account_id "
    f"AND ({ACCOUNTS.name}.scored_as_of IS NULL OR {ACCOUNTS.name}.scored_as_of <= batch.as_of)"
)
"""PostgreSQL: each account's latest row of a chunk as its current score, in one statement."""
_CURRENT_SQLITE = (
    update(ACCOUNTS)
    .where(
        ACCOUNTS.c.account_id == bindparam("b_account_id"),
        or_(
            ACCOUNTS.c.scored_as_of.is_(None),
            ACCOUNTS.c.scored_as_of <= bindparam("b_as_of", type_=Date),
        ),
    )
    .values(
        score=bindparam("b_score"),
        band=bindparam("b_band"),
        scored_as_of=bindparam("b_as_of", type_=Date),
    )
)
"""Elsewhere: the same, row by row (an executemany)."""


def _score_row(m: Mapping[str, Any]) -> ScoreRow:
    as_of = _as_date(m["as_of"])
    assert as_of is not None
    return ScoreRow(
        account_id=m["account_id"],
        as_of=as_of,
        score=None if m["score"] is None else float(m["score"]),
        band=m["band"],
        components=dict(m["components"] or {}),
        left_out=list(m["left_out"] or []),
        metrics=dict(m["metrics"] or {}),
        moved=dict(m["moved"] or {}),
        previous_score=m["previous_score"],
        previous_band=m["previous_band"],
        computed_at=m["computed_at"],
        provisional=bool(m.get("provisional", False)),
    )

"""Odd strings through the scorer's writes (issue 13 review): whatever ingest accepts comes back
as it went in, on both dialects. Property tests over the strings ingest lets through (no NUL,
no lone surrogate; names without other control characters but tab and newline)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.bulk import array_literal
from services.scorer.recent import MAX_TEXT
from services.scorer.writer import RollupWriter
from shared.read.events import last_events
from tests.support.events import create_event

Sessions = async_sessionmaker[AsyncSession]
START = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)

# What ingest lets into a value (services/ingest/normalize.py: no NUL, no lone surrogate) and
# into a name or id (no control character but tab and newline either).
VALUE_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"))
NAME_TEXT = st.text(
    st.characters(
        exclude_categories=("Cs",),
        exclude_characters="".join(map(chr, [*range(0x00, 0x09), *range(0x0B, 0x20)])),
    ),
    max_size=MAX_TEXT + 20,
)
ODD = st.sampled_from(["", "NULL", "null", '"', "\\", '\\"', "{", "}", ",", " ", "\\u0000"])
CELLS = st.lists(st.one_of(st.none(), ODD, VALUE_TEXT, st.lists(ODD).map("".join)), max_size=8)
FEW = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FEW
@given(values=CELLS)
async def test_any_text_array_reads_as_the_binary_one(
    pg_sessions: Sessions, values: list[Any]
) -> None:
    async with pg_sessions() as session:
        binary = (
            await session.execute(text("SELECT CAST(:v AS TEXT[])"), {"v": values})
        ).scalar_one()
        literal = (
            await session.execute(
                text("SELECT CAST(CAST(:v AS TEXT) AS TEXT[])"), {"v": array_literal(values)}
            )
        ).scalar_one()
    assert literal == binary == values


@FEW
@given(
    events=st.lists(st.tuples(NAME_TEXT, NAME_TEXT.filter(bool)), min_size=1, max_size=5),
)
async def test_odd_names_and_users_come_back_as_they_went(
    db: Sessions, events: list[tuple[str, str]]
) -> None:
    account = f"odd-{uuid.uuid4().hex[:10]}"
    batch = [
        create_event(
            f"{account}-{i}",
            account_id=account,
            name=name,
            user_id=user,
            at=START + timedelta(minutes=i),
        )
        for i, (name, user) in enumerate(events)
    ]
    async with db() as session, session.begin():
        await RollupWriter().flush(session, "odd", batch, {})
    async with db() as session:
        shown = await last_events(session, account)
    assert [(e.name, e.user_id) for e in reversed(shown)] == [
        (name[:MAX_TEXT], user[:MAX_TEXT]) for name, user in events
    ]


ID_TEXT = NAME_TEXT.map(lambda s: s[:150]).filter(bool)
TRAITS = st.dictionaries(
    st.sampled_from(["plan", "name", "seats", "mrr", "lifecycle_stage", "renewal_date", "x"]),
    st.one_of(
        VALUE_TEXT,
        st.integers(0, 2**31 - 1),
        st.floats(min_value=0, allow_nan=False, allow_infinity=False),
        st.sampled_from(["2026-11-02", "2026-11-02T23:30:00+05:30", "1e3", " 12 "]),
    ),
    max_size=4,
)
EVENT = st.tuples(
    st.sampled_from(["track", "page", "identify", "group"]),
    st.integers(0, 1),  # which account
    ID_TEXT,  # user
    st.one_of(st.none(), ID_TEXT),  # feature
    st.booleans(),  # is_login
    st.integers(-3000, 3000),  # minutes from START
    TRAITS,
)


async def _stored(sessions: Sessions, accounts: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    from sqlalchemy import select

    from shared.db.models import (
        Account,
        AccountDay,
        FeatureDay,
        FeatureUserDay,
        User,
        UserDay,
    )

    found: dict[str, list[tuple[Any, ...]]] = {}
    async with sessions() as session:
        for model, cols in (
            (AccountDay, ("day", "events", "logins", "active_users")),
            (UserDay, ("user_id", "day", "events", "logins")),
            (FeatureDay, ("feature", "day", "uses", "users")),
            (FeatureUserDay, ("feature", "user_id", "day", "uses")),
            (User, ("user_id", "first_seen", "last_seen", "traits")),
            (
                Account,
                (
                    "name",
                    "plan",
                    "seats",
                    "mrr",
                    "renewal_date",
                    "lifecycle_stage",
                    "traits",
                    "first_seen",
                    "dirty",
                    "rescore_from",
                ),
            ),
        ):
            table: Any = model.__table__
            query = select(table.c.account_id, *(table.c[c] for c in cols)).where(
                table.c.account_id.in_(accounts)
            )
            rows = [(accounts.index(r[0]), *r[1:]) for r in (await session.execute(query)).all()]
            found[table.name] = sorted(rows, key=repr)
    return found


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    events=st.lists(EVENT, min_size=1, max_size=8), names=st.lists(ID_TEXT, min_size=2, max_size=2)
)
async def test_both_dialects_store_the_same_rows(
    pg_sessions: Sessions,
    sqlite_sessions: Sessions,
    events: list[tuple[Any, ...]],
    names: list[str],
) -> None:
    """The text-form arrays (PostgreSQL) and the driver-level rows (SQLite) store the same
    values for the same batch, odd strings and trait values included."""
    uid = uuid.uuid4().hex[:10]
    accounts = [f"{uid}-{n}" for n in names]
    if accounts[0] == accounts[1]:
        accounts[1] += "-2"
    batch = [
        create_event(
            f"{uid}-{i}",
            type=kind,
            account_id=accounts[which],
            user_id=user,
            feature=feature if kind in ("track", "page") else None,
            is_login=is_login and kind == "track",
            at=START + timedelta(minutes=minutes),
            traits=traits if kind in ("identify", "group") else None,
        )
        for i, (kind, which, user, feature, is_login, minutes, traits) in enumerate(events)
    ]
    stored = []
    for sessions in (pg_sessions, sqlite_sessions):
        async with sessions() as session, session.begin():
            await RollupWriter().flush(session, "odd", batch, {})
        stored.append(await _stored(sessions, accounts))
    assert stored[0] == stored[1]

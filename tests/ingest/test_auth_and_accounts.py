"""Write-key checks and the user-to-account directory, against the real PostgreSQL database."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.accounts import AccountDirectory
from services.ingest.auth import (
    MISSING_KEY,
    Unauthorized,
    WriteKeyAuthenticator,
    key_from_body,
    key_from_headers,
)
from shared.db.keys import create_key, revoke_key
from shared.db.models import UserAccount
from shared.db.session import transaction

pytestmark = pytest.mark.integration


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class TestKeyLocation:
    def test_basic_user(self) -> None:
        assert key_from_headers({"authorization": basic("k1")}) == "k1"

    def test_basic_password_when_user_is_empty(self) -> None:
        assert key_from_headers({"authorization": basic("", "k2")}) == "k2"

    def test_header(self) -> None:
        assert key_from_headers({"x-write-key": " k3 "}) == "k3"

    def test_none(self) -> None:
        assert key_from_headers({}) is None
        assert key_from_body({"writeKey": ""}) is None
        assert key_from_body({"writeKey": 5}) is None

    def test_body(self) -> None:
        assert key_from_body({"writeKey": "k4"}) == "k4"

    @pytest.mark.parametrize("value", ["Bearer abc", "Basic %%%not-base64"])
    def test_bad_authorization_header(self, value: str) -> None:
        with pytest.raises(Unauthorized) as err:
            key_from_headers({"authorization": value})
        assert "abc" not in str(err.value)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def new_key(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, str]:
    async with transaction(sessions) as session:
        row, plaintext = await create_key(session, f"test-{uuid.uuid4().hex[:6]}")
        return row.id, plaintext


class TestWriteKeyCache:
    async def test_active_key_is_looked_up_once_per_ttl(
        self, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        key_id, plaintext = await new_key(pg_sessions)
        clock = Clock()
        auth = WriteKeyAuthenticator(pg_sessions, ttl_s=30, clock=clock)
        assert await auth.authenticate(plaintext) == key_id
        assert await auth.authenticate(plaintext) == key_id
        assert auth.lookups == 1
        clock.now += 31
        assert await auth.authenticate(plaintext) == key_id
        assert auth.lookups == 2

    async def test_revoked_key_refused_once_the_cache_expires(
        self, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        key_id, plaintext = await new_key(pg_sessions)
        clock = Clock()
        auth = WriteKeyAuthenticator(pg_sessions, ttl_s=30, clock=clock)
        await auth.authenticate(plaintext)
        async with transaction(pg_sessions) as session:
            await revoke_key(session, key_id)
        assert await auth.authenticate(plaintext) == key_id  # still cached
        clock.now += 30
        with pytest.raises(Unauthorized):
            await auth.authenticate(plaintext)

    async def test_unknown_keys_are_cached_too(
        self, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        auth = WriteKeyAuthenticator(pg_sessions, ttl_s=30, clock=Clock())
        for _ in range(3):
            with pytest.raises(Unauthorized) as err:
                await auth.authenticate("tend_wk_nope")
            assert "tend_wk_nope" not in str(err.value)
        assert auth.lookups == 1

    async def test_missing_and_oversized_keys_need_no_query(
        self, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        auth = WriteKeyAuthenticator(pg_sessions, ttl_s=30)
        with pytest.raises(Unauthorized, match="missing write key"):
            await auth.authenticate(None)
        with pytest.raises(Unauthorized):
            await auth.authenticate("k" * 10_000)
        assert auth.lookups == 0
        assert "X-Write-Key" in MISSING_KEY

    async def test_cache_is_bounded(self, pg_sessions: async_sessionmaker[AsyncSession]) -> None:
        auth = WriteKeyAuthenticator(pg_sessions, ttl_s=30, max_entries=3)
        for i in range(10):
            with pytest.raises(Unauthorized):
                await auth.authenticate(f"bad-{i}")
        assert len(auth._cache) <= 3

    async def test_zero_ttl_means_no_cache(
        self, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        _, plaintext = await new_key(pg_sessions)
        auth = WriteKeyAuthenticator(pg_sessions, ttl_s=0)
        await auth.authenticate(plaintext)
        await auth.authenticate(plaintext)
        assert auth.lookups == 2


class TestAccountDirectory:
    async def test_remember_then_lookup(
        self, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        user = f"user-{uuid.uuid4().hex[:8]}"
        at = datetime(2026, 5, 1, tzinfo=UTC)
        writer = AccountDirectory(pg_sessions, ttl_s=60)
        await writer.remember({user: ("acme", at)})
        reader = AccountDirectory(pg_sessions, ttl_s=60)
        assert await reader.lookup([user, "nobody"]) == {user: "acme"}
        assert await reader.lookup([user, "nobody"]) == {user: "acme"}
        assert reader.queries == 1

    async def test_an_older_group_call_does_not_replace_a_newer_one(
        self, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        user = f"user-{uuid.uuid4().hex[:8]}"
        at = datetime(2026, 5, 1, tzinfo=UTC)
        directory = AccountDirectory(pg_sessions, ttl_s=0)
        await directory.remember({user: ("new", at)})
        await directory.remember({user: ("old", at - timedelta(days=3))})
        async with pg_sessions() as session:
            row = await session.scalar(select(UserAccount).where(UserAccount.user_id == user))
        assert row is not None and row.account_id == "new"
        await directory.remember({user: ("newest", at + timedelta(days=1))})
        assert await directory.lookup([user]) == {user: "newest"}

    async def test_users_without_a_group_call_are_remembered_briefly(
        self, pg_sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        user = f"user-{uuid.uuid4().hex[:8]}"
        clock = Clock()
        reader = AccountDirectory(pg_sessions, ttl_s=60, clock=clock)
        assert await reader.lookup([user]) == {}
        await AccountDirectory(pg_sessions, ttl_s=60).remember({user: ("acme", datetime.now(UTC))})
        assert await reader.lookup([user]) == {}
        clock.now += 5
        assert await reader.lookup([user]) == {user: "acme"}

    async def test_works_on_sqlite(self, sqlite_url: str) -> None:
        from shared.db.session import create_engine, create_sessionmaker

        engine = create_engine(sqlite_url)
        try:
            directory = AccountDirectory(create_sessionmaker(engine), ttl_s=0)
            at = datetime(2026, 5, 1, tzinfo=UTC)
            await directory.remember({"u": ("a", at)})
            await directory.remember({"u": ("b", at - timedelta(hours=1))})
            assert await directory.lookup(["u"]) == {"u": "a"}
        finally:
            await engine.dispose()

"""The operator's path to an account's profile (PATCH /v1/accounts/{id}) and what the read API
shows of webhook URLs, on PostgreSQL and SQLite; group calls through the real writer cannot
change the CSM routing the operator set."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scorer.writer import RollupWriter
from services.web.app import create_app
from shared.db.models import Account
from shared.settings import Settings
from tests.support.events import create_event

pytestmark = pytest.mark.integration

TOKEN = "profile-api-test-token-0123456789ab"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WEBHOOK = "https://hooks.slack.com/services/T0PROFILE/B0PROFILE/sekritsekritsekrit"
SECRET = "sekritsekritsekrit"


@pytest_asyncio.fixture
async def profile_client(db: async_sessionmaker[AsyncSession]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(api_token=SecretStr(TOKEN)), sessions=db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://scorer") as c:
        yield c


async def stored(db: async_sessionmaker[AsyncSession], account_id: str) -> Account:
    async with db() as session:
        account = await session.get(Account, account_id)
        assert account is not None
        return account


async def group_call(
    db: async_sessionmaker[AsyncSession], event_id: str, account_id: str, traits: dict[str, Any]
) -> None:
    async with db() as session, session.begin():
        event = create_event(event_id, type="group", account_id=account_id, traits=traits)
        await RollupWriter().flush(session, "profile-test", [event], {})


class TestOperatorSetsTheProfile:
    async def test_patch_creates_the_account_and_shows_the_webhook_masked(
        self, db: async_sessionmaker[AsyncSession], profile_client: httpx.AsyncClient, uid: str
    ) -> None:
        account = f"{uid}-acme"
        body = {"csm_email": "dana@vendor.example", "csm_slack": WEBHOOK, "seats": 40}
        response = await profile_client.patch(f"/v1/accounts/{account}", json=body, headers=AUTH)
        assert response.status_code == 200, response.text
        shown = response.json()
        assert shown["csm_email"] == "dana@vendor.example" and shown["seats"] == 40
        assert shown["csm_slack"] == "https://hooks.slack.com/services/…"
        row = await stored(db, account)
        assert (row.csm_slack, row.dirty) == (WEBHOOK, True)
        for path in (f"/v1/accounts/{account}", "/v1/accounts"):
            text = (await profile_client.get(path, headers=AUTH)).text
            assert SECRET not in text and "T0PROFILE" not in text

    async def test_null_clears_a_field_and_others_stay(
        self, db: async_sessionmaker[AsyncSession], profile_client: httpx.AsyncClient, uid: str
    ) -> None:
        account = f"{uid}-acme"
        first = {"csm_email": "dana@vendor.example", "plan": "pro"}
        await profile_client.patch(f"/v1/accounts/{account}", json=first, headers=AUTH)
        response = await profile_client.patch(
            f"/v1/accounts/{account}", json={"csm_email": None}, headers=AUTH
        )
        assert response.status_code == 200
        row = await stored(db, account)
        assert (row.csm_email, row.plan) == (None, "pro")

    async def test_a_group_call_cannot_reroute_but_still_updates_the_profile(
        self, db: async_sessionmaker[AsyncSession], profile_client: httpx.AsyncClient, uid: str
    ) -> None:
        account = f"{uid}-acme"
        await profile_client.patch(
            f"/v1/accounts/{account}",
            json={"csm_email": "dana@vendor.example", "csm_slack": WEBHOOK},
            headers=AUTH,
        )
        await group_call(
            db,
            f"{uid}-g1",
            account,
            {
                "name": "Acme",
                "seats": 12,
                "csm_email": "attacker@evil.example",
                "csmSlack": "http://127.0.0.1:9/internal/admin",
            },
        )
        row = await stored(db, account)
        assert (row.csm_email, row.csm_slack) == ("dana@vendor.example", WEBHOOK)
        assert (row.name, row.seats) == ("Acme", 12)
        assert row.traits == {"name": "Acme", "seats": 12}

    async def test_the_operator_names_the_champion_and_a_group_call_cannot(
        self, db: async_sessionmaker[AsyncSession], profile_client: httpx.AsyncClient, uid: str
    ) -> None:
        account = f"{uid}-acme"
        response = await profile_client.patch(
            f"/v1/accounts/{account}", json={"champion": " dana "}, headers=AUTH
        )
        assert response.status_code == 200, response.text
        assert response.json()["champion"] == "dana"
        await group_call(db, f"{uid}-g1", account, {"champion": "mallory"})
        body = (await profile_client.get(f"/v1/accounts/{account}", headers=AUTH)).json()
        assert (body["champion"], body["current_champion"]) == ("dana", None)
        assert (await stored(db, account)).champion == "dana"
        await profile_client.patch(f"/v1/accounts/{account}", json={"champion": None}, headers=AUTH)
        assert (await stored(db, account)).champion is None

    async def test_webhook_urls_in_traits_are_masked_when_shown(
        self, db: async_sessionmaker[AsyncSession], profile_client: httpx.AsyncClient, uid: str
    ) -> None:
        account = f"{uid}-acme"
        await group_call(db, f"{uid}-g1", account, {"name": "Acme", "alerts_hook": WEBHOOK})
        body = (await profile_client.get(f"/v1/accounts/{account}", headers=AUTH)).json()
        assert body["traits"] == {
            "name": "Acme",
            "alerts_hook": "https://hooks.slack.com/services/…",
        }


class TestRefusals:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"csm_email": "not-an-email"}, "csm_email"),
            ({"csm_email": "dana\x00@vendor.example"}, "csm_email"),
            ({"name": "   "}, "name"),
            ({"seats": -1}, "seats"),
            ({"csm_slack": "x" * 201}, "csm_slack"),
            ({"colour": "red"}, "colour"),
            ({}, "body"),
        ],
    )
    async def test_bad_input_is_a_422_naming_the_field(
        self,
        db: async_sessionmaker[AsyncSession],
        profile_client: httpx.AsyncClient,
        uid: str,
        body: dict[str, Any],
        field: str,
    ) -> None:
        response = await profile_client.patch(f"/v1/accounts/{uid}-acme", json=body, headers=AUTH)
        assert response.status_code == 422
        assert response.json()["error"]["field"] == field, response.text
        async with db() as session:
            assert await session.get(Account, f"{uid}-acme") is None

    async def test_without_the_token_nothing_changes(
        self, db: async_sessionmaker[AsyncSession], profile_client: httpx.AsyncClient, uid: str
    ) -> None:
        response = await profile_client.patch(
            f"/v1/accounts/{uid}-acme", json={"csm_email": "a@b.example"}, headers={}
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        async with db() as session:
            assert await session.get(Account, f"{uid}-acme") is None

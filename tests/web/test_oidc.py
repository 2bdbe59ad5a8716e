"""OIDC sign-in (Authorization Code with PKCE) against a real OpenID Connect provider on
loopback (tests/support/oidc.py): the console signs the person in only when every check of the
answer holds, and never makes a person of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.web.app import create_app
from shared.people.directory import add_person, find_person
from shared.settings import Settings
from tests.support.oidc import CLIENT_ID, LocalOidcProvider

pytestmark = pytest.mark.integration

TOKEN = "oidc-test-admin-token-0123456789abcdef"
ANA = "ana@sso.example"


@pytest_asyncio.fixture
async def sso(
    sqlite_sessions: async_sessionmaker[AsyncSession], oidc_provider: LocalOidcProvider
) -> AsyncIterator[httpx.AsyncClient]:
    """A console whose single sign-on is the loopback provider; Ana (csm) may sign in by it."""
    async with sqlite_sessions() as s, s.begin():
        await add_person(s, ANA, "Ana", "csm", None)
    settings = Settings(
        api_token=None,
        config=None,
        oidc={"issuer": oidc_provider.issuer, "client_id": CLIENT_ID, "name": "Loopback"},
    )
    app = create_app(settings, sessions=sqlite_sessions, api_token=TOKEN)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tend") as c:
        yield c


async def sign_in(c: httpx.AsyncClient, tamper_state: bool = False) -> httpx.Response:
    """Start at the console, let the provider approve (real HTTP), come back to the callback."""
    start = await c.get("/console/oidc/start", params={"next": "/console/alerts"})
    assert start.status_code == 303
    async with httpx.AsyncClient(timeout=10) as browser:
        approved = await browser.get(start.headers["location"])
    assert approved.status_code == 302
    back = approved.headers["location"]
    if tamper_state:
        back = back.replace("state=", "state=x")
    return await c.get(back)


class TestOidcSignIn:
    async def test_login_page_offers_it(self, sso: httpx.AsyncClient) -> None:
        page = await sso.get("/console/login")
        assert "Sign in with Loopback" in page.text

    async def test_code_flow_with_pkce_signs_the_person_in(
        self, sso: httpx.AsyncClient, oidc_provider: LocalOidcProvider
    ) -> None:
        start = await sso.get("/console/oidc/start")
        query = parse_qs(urlparse(start.headers["location"]).query)
        assert query["code_challenge_method"] == ["S256"] and query["client_id"] == [CLIENT_ID]
        assert query["redirect_uri"] == ["http://tend/console/oidc/callback"]
        assert "openid" in query["scope"][0].split()
        done = await sign_in(sso)
        assert done.status_code == 303 and done.headers["location"] == "/console/alerts"
        [exchange] = oidc_provider.token_requests
        assert exchange["code_verifier"] and exchange["grant_type"] == "authorization_code"
        page = await sso.get("/console/")
        assert page.status_code == 200 and "Ana · csm" in page.text

    async def test_the_subject_is_linked_and_wins_over_a_changed_email(
        self,
        sso: httpx.AsyncClient,
        oidc_provider: LocalOidcProvider,
        sqlite_sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        assert (await sign_in(sso)).status_code == 303
        async with sqlite_sessions() as s:
            person = await find_person(s, ANA)
            assert person is not None and person.oidc_subject == "u-1"
        sso.cookies.clear()
        oidc_provider.person = {"sub": "u-1", "email": "renamed@sso.example"}
        assert (await sign_in(sso)).status_code == 303

    @pytest.mark.parametrize("lie", ["audience", "nonce", "expired", "issuer", "key"])
    async def test_a_token_that_does_not_hold_signs_nobody_in(
        self, sso: httpx.AsyncClient, oidc_provider: LocalOidcProvider, lie: str
    ) -> None:
        oidc_provider.misbehave = lie
        r = await sign_in(sso)
        assert r.status_code == 401 and "Single sign-on failed" in r.text
        assert (await sso.get("/console/")).status_code == 303

    async def test_a_forged_state_is_refused_before_any_exchange(
        self, sso: httpx.AsyncClient, oidc_provider: LocalOidcProvider
    ) -> None:
        r = await sign_in(sso, tamper_state=True)
        assert r.status_code == 400 and oidc_provider.token_requests == []

    @pytest.mark.parametrize(
        "person",
        [
            {"sub": "u-2", "email": "stranger@sso.example"},
            {"sub": "u-3", "email": ANA, "email_verified": False},
        ],
    )
    async def test_nobody_is_made_and_unverified_emails_do_not_match(
        self, sso: httpx.AsyncClient, oidc_provider: LocalOidcProvider, person: dict[str, object]
    ) -> None:
        oidc_provider.person = person
        r = await sign_in(sso)
        assert r.status_code == 403 and "ask an admin" in r.text
        assert (await sso.get("/console/")).status_code == 303

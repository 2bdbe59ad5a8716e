"""Roles and books on real PostgreSQL: every route of the web app, walked as each role.

The walk enumerates ``app.routes``, so a route added later is walked too: anonymous callers get
nothing from any route but the public ones; a CSM gets nothing of an account outside their book
from any route (403, 404 or filtered, never its name, reason or figures) and moves nothing of
it; a leader and an admin read it. Then: a disabled person's session and token stop at once,
and every action is in the audit log with its actor, which nobody can rewrite.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.web.app import create_app
from shared.db.models import Account, Alert, AuditEntry
from shared.db.session import create_engine, create_sessionmaker
from shared.people.directory import create_token, find_person
from shared.settings import Settings
from tests.support import people
from tests.support.postgres import create_database, drop_database

pytestmark = pytest.mark.integration

TOKEN = "roles-test-admin-token-0123456789abcdef"
ANA, BEN, LEAD = "ana@roles.example", "ben@roles.example", "lead@roles.example"
FOREIGN_NAME = "Foreign Secret Holdings"
FOREIGN_REASON = "FOREIGN-REASON: nobody logged in"
PUBLIC = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/console",
    "/console/login",
    "/console/static/{path:path}",
    "/console/{path:path}",
    "/console/logout",
}
"""Routes anyone may call (sign-in, static files, ops, the API description; logout without a
session only sends you to sign in)."""


@dataclass
class World:
    app: FastAPI
    sessions: async_sessionmaker[AsyncSession]
    mine: str
    theirs: str
    my_alert: int
    their_alert: int
    tokens: dict[str, str]


@pytest_asyncio.fixture(scope="module")
async def roles_world() -> AsyncIterator[World]:
    url = await create_database("tend_roles")
    try:
        from shared.db.migrate import upgrade_async

        await upgrade_async(url)
        engine = create_engine(url)
        sessions = create_sessionmaker(engine)
        uid = uuid.uuid4().hex[:6]
        mine, theirs = f"mine-{uid}", f"theirs-{uid}"
        await people.add_people(
            sessions, {people.ADMIN: "admin", LEAD: "leader", ANA: "csm", BEN: "csm"}
        )
        at = datetime(2026, 11, 20, 9, tzinfo=UTC)
        tokens: dict[str, str] = {}
        async with sessions() as s, s.begin():
            s.add(
                Account(
                    account_id=mine,
                    name="Mine Inc",
                    csm_email="Ana@Roles.example",
                    mrr=100.0,
                    score=40.0,
                    band="red",
                )
            )
            s.add(
                Account(
                    account_id=theirs,
                    name=FOREIGN_NAME,
                    csm_email=BEN,
                    mrr=777.0,
                    score=30.0,
                    band="red",
                )
            )
            alerts = [
                Alert(
                    account_id=a,
                    account_name=n,
                    rule="dormant",
                    feature="",
                    status="open",
                    severity="critical",
                    reason=r,
                    as_of=date(2026, 11, 20),
                    opened_at=at,
                    created_at=at,
                    updated_at=at,
                    csm_email=e,
                )
                for a, n, r, e in (
                    (mine, "Mine Inc", "mine: quiet", ANA),
                    (theirs, FOREIGN_NAME, FOREIGN_REASON, BEN),
                )
            ]
            s.add_all(alerts)
            await s.flush()
            for email in (people.ADMIN, LEAD, ANA, BEN):
                person = await find_person(s, email)
                assert person is not None
                tokens[email] = (await create_token(s, person.id, "walk"))[1]
        app = create_app(Settings(api_token=None, config=None), sessions=sessions, api_token=TOKEN)
        yield World(app, sessions, mine, theirs, alerts[0].id, alerts[1].id, tokens)
        await engine.dispose()
    finally:
        await drop_database(url)


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tend")


def routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every route of the app."""
    found = []
    for r in app.routes:
        path = getattr(r, "path", None)
        for method in sorted(getattr(r, "methods", None) or ()):
            if method != "HEAD" and path is not None:
                found.append((method, path))
    return found


def fill(path: str, w: World, person_id: int = 1, token_id: int = 1) -> str:
    """A path template with the other CSM's account and alert in it."""
    values = {
        "account_id": w.theirs,
        "alert_id": str(w.their_alert),
        "action": "ack",
        "person_id": str(person_id),
        "token_id": str(token_id),
        "path:path": "x",
    }
    return re.sub(r"\{([^}]+)\}", lambda m: values.get(m.group(1), "x"), path)


BODIES = {
    "snooze": {"until": "2099-01-01T00:00:00Z", "reason": "walk"},
    "outcomes": {"kind": "cancellation", "effective_on": "2026-11-30"},
}


def body_for(path: str) -> dict[str, object]:
    for key, body in BODIES.items():
        if path.endswith(key):
            return body
    return {}


async def csrf(c: httpx.AsyncClient) -> str:
    page = await c.get("/console/")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text[:300]
    return found.group(1)


class TestAnonymous:
    async def test_no_route_but_the_public_ones_answers_without_credentials(
        self, roles_world: World
    ) -> None:
        async with client(roles_world.app) as c:
            for method, path in routes(roles_world.app):
                if path in PUBLIC:
                    continue
                r = await c.request(method, fill(path, roles_world), json=body_for(path))
                assert r.status_code in (303, 401, 403), (method, path, r.status_code)
                assert FOREIGN_NAME not in r.text


class TestCsmBook:
    """Ana (csm) walks every route, by API token and by console session, aimed at Ben's
    account and alert."""

    @pytest.mark.parametrize("via", ["token", "console"])
    async def test_nothing_of_another_book_leaks_or_moves(
        self, roles_world: World, via: str
    ) -> None:
        w = roles_world
        async with client(w.app) as c:
            form: dict[str, str] = {}
            if via == "token":
                c.headers["Authorization"] = f"Bearer {w.tokens[ANA]}"
            else:
                assert (await people.sign_in(c, ANA)).status_code == 303
                form = {"csrf": await csrf(c), "until": "2099-01-01T00:00", "reason": "walk"}
            for method, path in routes(w.app):
                if path in ("/console/logout",):
                    continue
                url = fill(path, w)
                if method == "GET":
                    r = await c.get(url)
                elif path.startswith("/console"):
                    r = await c.request(method, url, data=form)
                else:
                    r = await c.request(method, url, json=body_for(path))
                where = (via, method, path, r.status_code)
                assert r.status_code < 500, where
                assert FOREIGN_NAME not in r.text and FOREIGN_REASON not in r.text, where
                assert "777" not in r.text or path in ("/metrics",), where
                names_foreign = "{account_id}" in path or "{alert_id}" in path
                if names_foreign and r.status_code not in (401, 404, 405, 422):
                    assert r.status_code == 403, where
        async with w.sessions() as s:
            alert = await s.get(Alert, w.their_alert)
            assert alert is not None and alert.status == "open"
            account = await s.get(Account, w.theirs)
            assert account is not None and account.csm_email == BEN and account.mrr == 777.0
            moved = await s.scalars(select(AuditEntry).where(AuditEntry.account_id == w.theirs))
            assert list(moved) == []

    async def test_lists_hold_the_book_only(self, roles_world: World) -> None:
        w = roles_world
        auth = {"Authorization": f"Bearer {w.tokens[ANA]}"}
        async with client(w.app) as c:
            accounts = (await c.get("/v1/accounts", headers=auth)).json()["accounts"]
            assert [a["account_id"] for a in accounts] == [w.mine]
            alerts = (await c.get("/v1/alerts", headers=auth)).json()["alerts"]
            assert [a["account_id"] for a in alerts] == [w.mine]
            assert (await c.get(f"/v1/accounts/{w.mine}", headers=auth)).status_code == 200
            await people.sign_in(c, ANA)
            page = await c.get("/console/")
            assert "Mine Inc" in page.text and FOREIGN_NAME not in page.text

    @pytest.mark.parametrize("role_email", [LEAD, people.ADMIN])
    async def test_leaders_and_admins_see_every_account(
        self, roles_world: World, role_email: str
    ) -> None:
        w = roles_world
        auth = {"Authorization": f"Bearer {w.tokens[role_email]}"}
        async with client(w.app) as c:
            listed = (await c.get("/v1/accounts", headers=auth)).json()["accounts"]
            assert {w.mine, w.theirs} <= {a["account_id"] for a in listed}
            r = await c.get(f"/v1/accounts/{w.theirs}", headers=auth)
            assert r.status_code == 200 and r.json()["name"] == FOREIGN_NAME
            await people.sign_in(c, role_email)
            assert FOREIGN_NAME in (await c.get(f"/console/accounts/{w.theirs}")).text
            retention = await c.get("/v1/retention", headers=auth)
            assert retention.status_code == 200
            admin_only = await c.get("/v1/audit", headers=auth)
            assert admin_only.status_code == (200 if role_email == people.ADMIN else 403)

    async def test_read_all_lets_a_csm_read_without_acting(self, roles_world: World) -> None:
        w = roles_world
        app = create_app(
            Settings(api_token=None, config=None, people={"csm_read_all": True}),
            sessions=w.sessions,
            api_token=TOKEN,
        )
        auth = {"Authorization": f"Bearer {w.tokens[ANA]}"}
        async with client(app) as c:
            assert (await c.get(f"/v1/accounts/{w.theirs}", headers=auth)).status_code == 200
            r = await c.post(f"/v1/alerts/{w.their_alert}/ack", headers=auth)
            assert r.status_code == 403
            await people.sign_in(c, ANA)
            page = await c.get(f"/console/accounts/{w.theirs}")
            assert (
                FOREIGN_NAME in page.text
                and f"/console/alerts/{w.their_alert}/ack" not in page.text
            )


class TestDisabling:
    async def test_sessions_and_tokens_stop_at_once(self, roles_world: World) -> None:
        w = roles_world
        admin = {"Authorization": f"Bearer {TOKEN}"}
        async with client(w.app) as c:
            added = await c.post(
                "/v1/people", headers=admin, json={"email": "gone@roles.example", "role": "leader"}
            )
            assert added.status_code == 201
            person, password = added.json()["id"], added.json()["password"]
            r = await people.sign_in(c, "gone@roles.example", password=password)
            assert r.status_code == 303
            assert (await c.get("/console/")).status_code == 200
            me = {"Authorization": f"Bearer {await self._token(c)}"}
            assert (await c.get("/v1/accounts", headers=me)).status_code == 200
            off = await c.patch(f"/v1/people/{person}", headers=admin, json={"disabled": True})
            assert off.status_code == 200 and off.json()["disabled_at"] is not None
            assert (await c.get("/console/")).status_code == 303
            assert (await c.get("/v1/accounts", headers=me)).status_code == 401
            again = await people.sign_in(c, "gone@roles.example", password=password)
            assert again.status_code == 403

    @staticmethod
    async def _token(c: httpx.AsyncClient) -> str:
        """A token made through the console's own API session: the person's own."""
        # The console has a tokens page; the API needs a token to make one, so sign-in first
        # makes one through the page.
        page = await c.get("/console/tokens")
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found
        made = await c.post("/console/tokens", data={"csrf": found.group(1), "name": "ci"})
        shown = re.search(r"(tend_pt_[A-Za-z0-9_-]+)", made.text)
        assert shown, made.text[:500]
        return shown.group(1)


class TestAudit:
    async def test_moves_name_their_actor_and_the_log_is_append_only(
        self, roles_world: World
    ) -> None:
        w = roles_world
        auth = {"Authorization": f"Bearer {w.tokens[ANA]}"}
        async with client(w.app) as c:
            r = await c.post(
                f"/v1/alerts/{w.my_alert}/snooze",
                headers=auth,
                json={"until": "2099-01-01T00:00:00Z", "reason": "QBR next week"},
            )
            assert r.status_code == 200
            log = await c.get(
                "/v1/audit",
                params={"account": w.mine},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            entry = log.json()["entries"][0]
            assert (entry["actor"], entry["action"], entry["reason"]) == (
                ANA,
                "alert.snooze",
                "QBR next week",
            )
            await people.sign_in(c, ANA)
            page = await c.get(f"/console/accounts/{w.mine}")
            assert re.search(r"by <span class=\"actor\">Ana</span>", page.text)
        async with w.sessions() as s:
            for statement in (
                "UPDATE audit_log SET actor = 'someone else'",
                "DELETE FROM audit_log",
            ):
                with pytest.raises(DBAPIError, match="append-only"):
                    async with s.begin():
                        await s.execute(text(statement))


class TestTokensAndPeopleApi:
    async def test_a_token_is_shown_once_listed_by_prefix_and_revoked(
        self, roles_world: World
    ) -> None:
        w = roles_world
        ben = {"Authorization": f"Bearer {w.tokens[BEN]}"}
        async with client(w.app) as c:
            made = await c.post("/v1/tokens", headers=ben, json={"name": "laptop"})
            assert made.status_code == 201
            token = made.json()["token"]
            mine = {"Authorization": f"Bearer {token}"}
            assert (await c.get("/v1/me", headers=mine)).json()["email"] == BEN
            listed = (await c.get("/v1/tokens", headers=mine)).json()["tokens"]
            assert token not in str(listed) and token[:12] in {t["prefix"] for t in listed}
            other = await c.delete(
                f"/v1/tokens/{made.json()['id']}",
                headers={"Authorization": f"Bearer {w.tokens[ANA]}"},
            )
            assert other.status_code == 404  # not Ana's
            gone = await c.delete(f"/v1/tokens/{made.json()['id']}", headers=mine)
            assert gone.status_code == 200 and gone.json()["revoked_at"] is not None
            assert (await c.get("/v1/me", headers=mine)).status_code == 401
            admin = {"Authorization": f"Bearer {TOKEN}"}
            assert (await c.get("/v1/tokens", headers=admin)).status_code == 403
            log = (await c.get("/v1/audit", headers=admin, params={"actor": BEN})).json()
            assert [e["action"] for e in log["entries"]][:2] == ["token.revoke", "token.create"]

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"email": "not-an-email", "role": "csm"}, "email"),
            ({"email": "x@roles.example", "role": "owner"}, "role"),
            ({"email": "x@roles.example", "role": "csm", "password": "short"}, "password"),
            ({"email": "x\u0000@roles.example", "role": "csm"}, "email"),
        ],
    )
    async def test_bad_people_are_refused_naming_the_field(
        self, roles_world: World, body: dict[str, str], field: str
    ) -> None:
        async with client(roles_world.app) as c:
            r = await c.post("/v1/people", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
            csm = {"Authorization": f"Bearer {roles_world.tokens[ANA]}"}
            assert (await c.post("/v1/people", json=body, headers=csm)).status_code in (403, 422)

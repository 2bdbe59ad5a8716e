"""Console sign-in hardening on PostgreSQL and SQLite: the sign-in throttle, sessions that end on
the server at logout, the Secure cookie setting, security headers on every page, and the API
token's minimum length."""

from __future__ import annotations

import re
import time

import httpx
import pytest
import pytest_asyncio
from click.testing import CliRunner
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.cli import main
from services.web.app import create_app
from services.web.console import auth
from services.web.console.routes import SECURITY_HEADERS
from shared.db.models import ConsoleSignIn
from shared.settings import MIN_API_TOKEN_CHARS, ConsoleSettings, Settings
from tests.support import people

TOKEN = "console-security-token-0123456789abcdef"


def build_app(
    db: async_sessionmaker[AsyncSession], console: ConsoleSettings | None = None
) -> FastAPI:
    settings = Settings(
        api_token=SecretStr(TOKEN), config=None, console=console or ConsoleSettings()
    )
    return create_app(settings, sessions=db)


def client_for(app: FastAPI, address: str = "10.0.0.1", https: bool = False) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(
        transport=transport, base_url="https://tend" if https else "http://tend"
    )


@pytest_asyncio.fixture
async def app(db: async_sessionmaker[AsyncSession]) -> FastAPI:
    await people.add_people(db, {people.ADMIN: "admin"})
    return build_app(db)


async def sign_in(c: httpx.AsyncClient, password: str = people.PASSWORD) -> httpx.Response:
    return await people.sign_in(c, password=password)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@pytest.mark.integration
class TestSignInThrottle:
    async def test_ten_failures_then_429_with_retry_after_even_for_the_right_password(
        self, app: FastAPI
    ) -> None:
        async with client_for(app) as c:
            for _ in range(10):
                assert (await sign_in(c, "wrong")).status_code == 401
            for password in ("wrong", people.PASSWORD):
                r = await sign_in(c, password)
                assert r.status_code == 429
                assert 1 <= int(r.headers["retry-after"]) <= 60
                assert "Too many failed sign-ins" in r.text
                assert "set-cookie" not in r.headers
                assert r.headers["x-frame-options"] == "DENY"

    async def test_other_addresses_are_not_throttled(self, app: FastAPI) -> None:
        async with client_for(app, "10.0.0.1") as attacker:
            for _ in range(10):
                await sign_in(attacker, "wrong")
            assert (await sign_in(attacker)).status_code == 429
        async with client_for(app, "10.0.0.2") as csm:
            assert (await sign_in(csm)).status_code == 303

    async def test_the_limit_is_a_setting(self, db: async_sessionmaker[AsyncSession]) -> None:
        await people.add_people(db, {people.ADMIN: "admin"})
        app = build_app(db, ConsoleSettings(signin_max_failures=2))
        async with client_for(app) as c:
            assert (await sign_in(c, "wrong")).status_code == 401
            assert (await sign_in(c, "wrong")).status_code == 401
            assert (await sign_in(c)).status_code == 429


@pytest.mark.unit
class TestThrottleWindow:
    def test_failures_leave_the_window(self) -> None:
        t = auth.SignInThrottle(max_failures=3, window_s=60)
        for at in (0.0, 10.0, 20.0):
            assert t.retry_after("a", at) is None
            t.failed("a", at)
        assert t.retry_after("a", 20.0) == 40
        assert t.retry_after("a", 59.5) == 1
        assert t.retry_after("a", 60.0) is None  # the failure at 0 has left the window

    def test_success_clears_the_address(self) -> None:
        t = auth.SignInThrottle(max_failures=2, window_s=60)
        t.failed("a", 0.0)
        t.succeeded("a")
        t.failed("a", 1.0)
        assert t.retry_after("a", 1.0) is None

    @pytest.mark.parametrize("clients", [1, 5, 50])
    def test_memory_is_bounded(self, clients: int) -> None:
        t = auth.SignInThrottle(max_failures=1, window_s=60, max_clients=5)
        for i in range(clients):
            t.failed(f"10.0.0.{i}", float(i))
        remembered = [i for i in range(clients) if t.retry_after(f"10.0.0.{i}", 0.0) is not None]
        assert remembered == list(range(max(0, clients - 5), clients))


@pytest.mark.integration
class TestLogoutEndsTheSession:
    async def test_a_copied_cookie_is_dead_after_logout(
        self, app: FastAPI, db: async_sessionmaker[AsyncSession]
    ) -> None:
        async with client_for(app) as c:
            assert (await sign_in(c)).status_code == 303
            cookie = c.cookies[auth.COOKIE]
            session = auth.verify(TOKEN, cookie, time.time())
            assert session is not None
            page = await c.get("/console/")
            assert page.status_code == 200
            async with client_for(app, "10.0.0.9") as thief:
                thief.cookies.set(auth.COOKIE, cookie, path="/console")
                assert (await thief.get("/console/")).status_code == 200
                r = await c.post("/console/logout", data={"csrf": csrf_of(page.text)})
                assert r.status_code == 303
                assert (await thief.get("/console/")).status_code == 303
                assert (await thief.get("/console/alerts")).status_code == 303
        async with db() as s:
            assert await s.get(ConsoleSignIn, session.sid) is None

    async def test_a_validly_signed_cookie_without_a_stored_session_is_refused(
        self, app: FastAPI
    ) -> None:
        async with client_for(app) as c:
            c.cookies.set(auth.COOKIE, auth.issue(TOKEN, time.time()), path="/console")
            assert (await c.get("/console/")).status_code == 303

    async def test_other_sessions_stay_open(self, app: FastAPI) -> None:
        async with client_for(app) as one, client_for(app, "10.0.0.3") as two:
            await sign_in(one)
            await sign_in(two)
            page = await one.get("/console/")
            await one.post("/console/logout", data={"csrf": csrf_of(page.text)})
            assert (await one.get("/console/")).status_code == 303
            assert (await two.get("/console/")).status_code == 200


@pytest.mark.integration
class TestCookieSecure:
    @pytest.mark.parametrize(
        ("setting", "https", "secure"),
        [
            (True, False, True),  # behind a TLS proxy uvicorn does not trust: still Secure
            (False, True, False),
            (None, True, True),
            (None, False, False),
        ],
    )
    async def test_secure_flag(
        self,
        db: async_sessionmaker[AsyncSession],
        setting: bool | None,
        https: bool,
        secure: bool,
    ) -> None:
        await people.add_people(db, {people.ADMIN: "admin"})
        app = build_app(db, ConsoleSettings(cookie_secure=setting))
        async with client_for(app, https=https) as c:
            r = await sign_in(c)
            assert r.status_code == 303
            assert ("; secure" in r.headers["set-cookie"].lower()) is secure

    def test_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TEND_CONSOLE__COOKIE_SECURE", "true")
        assert Settings().console.cookie_secure is True


@pytest.mark.integration
class TestSecurityHeaders:
    @pytest.mark.parametrize(
        ("method", "path", "signed_in", "status"),
        [
            ("GET", "/console/login", False, 200),
            ("GET", "/console/", False, 303),
            ("GET", "/console/", True, 200),
            ("GET", "/console/alerts", True, 200),
            ("GET", "/console/accounts/nobody", True, 404),
            ("POST", "/console/alerts/1/ack", True, 403),
            ("POST", "/console/login", False, 401),
            ("GET", "/console/no/such/page", False, 404),
            ("GET", "/console/logout", True, 404),
            ("POST", "/console/alerts/1/ack", True, 422),  # a NUL in the form
        ],
    )
    async def test_every_console_page(
        self, app: FastAPI, method: str, path: str, signed_in: bool, status: int
    ) -> None:
        async with client_for(app) as c:
            if signed_in:
                await sign_in(c)
            form = {"csrf": "\x00"} if status == 422 else {}
            r = await c.request(method, path, data=form if method == "POST" else None)
            assert r.status_code == status
            csp = r.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["referrer-policy"] == SECURITY_HEADERS["Referrer-Policy"]


@pytest.mark.unit
class TestApiTokenLength:
    @pytest.mark.parametrize("length", [1, MIN_API_TOKEN_CHARS - 1])
    def test_short_tokens_are_refused_naming_the_setting(self, length: int) -> None:
        with pytest.raises(ValidationError, match="TEND_API_TOKEN must be at least 32"):
            Settings(api_token=SecretStr("x" * length))

    @pytest.mark.parametrize("length", [MIN_API_TOKEN_CHARS, 200])
    def test_long_enough_tokens_are_taken(self, length: int) -> None:
        assert Settings(api_token=SecretStr("x" * length)).api_token is not None

    @pytest.mark.parametrize("command", [["scorer"], ["alerts"], ["up", "--port", "0"]])
    def test_services_do_not_start_with_a_short_token(self, command: list[str]) -> None:
        result = CliRunner().invoke(
            main, command, env={"TEND_API_TOKEN": "short", "TEND_KAFKA_BOOTSTRAP": None}
        )
        assert result.exit_code == 2
        assert "TEND_API_TOKEN" in result.output and "at least 32 characters" in result.output

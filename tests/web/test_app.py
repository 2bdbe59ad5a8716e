"""The web service is the one app for people and API clients; the scorer and alerts apps only
answer their ops routes.

The web app runs its own lifespan here (it opens the database ``TEND_DATABASE_URL`` names, as
``tend web`` does), on a fresh SQLite file with one scored account and one open alert.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from pydantic import SecretStr

from services.web.app import create_app
from shared.config import TendConfig
from shared.db.migrate import upgrade_async
from shared.db.models import Account, Alert, HealthScore
from shared.db.session import create_engine, create_sessionmaker
from shared.settings import Settings
from tests.support import people

TOKEN = "web-app-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TODAY = date(2026, 11, 20)
ACCOUNT = "acme"


async def _seed(url: str) -> int:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            session.add(
                Account(
                    account_id=ACCOUNT,
                    name="Acme",
                    seats=10,
                    score=42.0,
                    band="red",
                    scored_as_of=TODAY,
                    first_seen=TODAY - timedelta(days=90),
                )
            )
            session.add(HealthScore(account_id=ACCOUNT, as_of=TODAY, score=42.0, band="red"))
            at = datetime(2026, 11, 20, 9, tzinfo=UTC)
            alert = Alert(
                account_id=ACCOUNT,
                rule="dormant",
                feature="",
                status="open",
                severity="critical",
                reason="nobody logged in for 14 days",
                as_of=TODAY,
                opened_at=at,
                created_at=at,
                updated_at=at,
            )
            session.add(alert)
            await session.flush()
            alert_id = alert.id
        await people.add_people(create_sessionmaker(engine), {people.ADMIN: "admin"})
        return alert_id
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(scope="module")
async def seeded_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A migrated SQLite file with the account and its open alert, made once for the module;
    each test works on a copy (migrating takes longer than the tests)."""
    path = tmp_path_factory.mktemp("web") / "seeded.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade_async(url)
    return path, await _seed(url)


@pytest.fixture
def web_db(seeded_file: tuple[Path, int], tmp_path: Path) -> tuple[str, int]:
    """A copy of the seeded file for one test: (its URL, the open alert's id)."""
    path, alert_id = seeded_file
    shutil.copy(path, tmp_path / "tend.db")
    return f"sqlite+aiosqlite:///{tmp_path / 'tend.db'}", alert_id


@pytest_asyncio.fixture
async def web(web_db: tuple[str, int]) -> AsyncIterator[tuple[httpx.AsyncClient, int]]:
    """The web app as ``tend web`` builds it, its lifespan running, and the open alert's id."""
    sqlite_url, alert_id = web_db
    config = TendConfig(key_features=("exports", "dashboards"))
    app = create_app(
        Settings(database_url=sqlite_url, api_token=SecretStr(TOKEN), config=None), config=config
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
            yield client, alert_id


@pytest.mark.integration  # a SQLite file
class TestTheWebAppAlone:
    async def test_read_api(self, web: tuple[httpx.AsyncClient, int]) -> None:
        client, _ = web
        listed = await client.get("/v1/accounts", headers=AUTH)
        assert listed.status_code == 200
        assert [a["account_id"] for a in listed.json()["accounts"]] == [ACCOUNT]
        one = await client.get(f"/v1/accounts/{ACCOUNT}", headers=AUTH)
        assert one.json()["band"] == "red"
        assert (await client.get("/v1/accounts")).status_code == 401

    async def test_alerts_api_and_a_move(self, web: tuple[httpx.AsyncClient, int]) -> None:
        client, alert_id = web
        listed = await client.get("/v1/alerts", headers=AUTH)
        assert [a["id"] for a in listed.json()["alerts"]] == [alert_id]
        acked = await client.post(f"/v1/alerts/{alert_id}/ack", headers=AUTH)
        assert acked.status_code == 200
        assert acked.json()["status"] == "acknowledged"

    async def test_reports_see_the_configured_key_features(
        self, web: tuple[httpx.AsyncClient, int]
    ) -> None:
        client, _ = web
        report = await client.get(f"/v1/accounts/{ACCOUNT}/report?month=2026-10", headers=AUTH)
        assert report.status_code == 200
        body = report.json()
        assert [f["feature"] for f in body["features"] if f["key"]] == ["exports", "dashboards"]
        assert body["key_features_total"] == 2
        page = await client.get(f"/v1/accounts/{ACCOUNT}/report.html?month=2026-10", headers=AUTH)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "Acme" in page.text

    async def test_console(self, web: tuple[httpx.AsyncClient, int]) -> None:
        client, _ = web
        home = await client.get("/console/")
        assert home.status_code == 303
        assert home.headers["location"].startswith("/console/login")
        assert (await client.get("/console/login")).status_code == 200
        signed = await people.sign_in(client)
        assert signed.status_code == 303
        page = await client.get(f"/console/accounts/{ACCOUNT}")
        assert page.status_code == 200
        assert "Acme" in page.text
        css = await client.get("/console/static/console.css")
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")

    async def test_ops_routes(self, web: tuple[httpx.AsyncClient, int]) -> None:
        client, _ = web
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready"}
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")

    async def test_readyz_says_when_the_database_is_gone(self) -> None:
        app = create_app(
            Settings(
                database_url="sqlite+aiosqlite:////nonexistent-dir/tend.db",
                api_token=SecretStr(TOKEN),
                config=None,
            ),
            config=TendConfig(),
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
                ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"


@pytest.mark.integration  # a SQLite file
class TestGivenSessions:
    """``tend up`` passes its sessions and token: the app needs no lifespan of its own."""

    async def test_serves_without_a_lifespan(self, web_db: tuple[str, int]) -> None:
        engine = create_engine(web_db[0])
        try:
            app = create_app(
                Settings(api_token=None, config=None),
                config=TendConfig(),
                sessions=create_sessionmaker(engine),
                api_token=TOKEN,
            )
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://up") as client:
                listed = await client.get("/v1/accounts", headers=AUTH)
                assert listed.json()["total"] == 1
                assert (await client.get("/readyz")).status_code == 200
        finally:
            await engine.dispose()


def _ops_only_apps() -> list[tuple[str, FastAPI]]:
    from services.alerts.app import create_app as alerts_app
    from services.scorer.app import create_app as scorer_app

    settings = Settings(api_token=SecretStr(TOKEN), config=None)
    return [
        ("scorer", scorer_app(settings, config=TendConfig())),
        ("alerts", alerts_app(settings, config=TendConfig())),
    ]


class TestOpsOnlyServices:
    @pytest.mark.parametrize(
        "path",
        ["/v1/accounts", f"/v1/accounts/{ACCOUNT}", "/v1/alerts", "/console/", "/console/login"],
    )
    async def test_scorer_and_alerts_do_not_serve_the_web(self, path: str) -> None:
        for name, app in _ops_only_apps():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ops") as client:
                answer = await client.get(path, headers=AUTH)
            assert answer.status_code == 404, (name, path)

    def test_they_keep_their_ops_routes(self) -> None:
        for name, app in _ops_only_apps():
            paths = {getattr(r, "path", None) for r in app.routes}
            assert {"/healthz", "/readyz", "/metrics"} <= paths, name
            assert not any(str(p).startswith(("/v1", "/console")) for p in paths), name

"""The web app's read and alerts APIs answer every error in the one shape
``{"error": {"code", "message", "field"?}}`` and document it: the app as ``tend web`` builds it,
on a fresh SQLite file (no server)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from pydantic import BaseModel, SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.web.api import schemas
from services.web.app import create_app
from shared.api_errors import TendError
from shared.clock import FixedClock
from shared.config import TendConfig
from shared.db.models import Alert
from shared.settings import Settings

# The lane follows the fixtures: the 401 and OpenAPI checks are unit, the SQLite ones integration.

TOKEN = "errors-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def web_app(sessions: async_sessionmaker[AsyncSession] | None = None) -> FastAPI:
    return create_app(
        Settings(api_token=SecretStr(TOKEN)),
        config=TendConfig(),
        sessions=sessions,
        clock=FixedClock(NOW),
    )


NO_DATABASE = web_app()
"""The app without sessions: what happens before a session is opened (token, OpenAPI)."""
DOCUMENT = NO_DATABASE.openapi()


def api_operations() -> list[tuple[str, str, dict[str, Any]]]:
    """The token-guarded API routes (Slack's interactivity route is authenticated by Slack's
    signature instead: tests/web/test_slack_interactivity.py)."""
    document = DOCUMENT
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if path.startswith("/v1/") and not path.startswith("/v1/slack/")
    ]


@pytest_asyncio.fixture
async def web_errors_client(
    sqlite_sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=web_app(sqlite_sessions))
    async with httpx.AsyncClient(transport=transport, base_url="http://web", headers=AUTH) as c:
        yield c


async def add_open_alert(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session, session.begin():
        alert = Alert(
            account_id="globex",
            rule="dormant",
            status="open",
            severity="critical",
            opened_at=NOW,
            updated_at=NOW,
        )
        session.add(alert)
        await session.flush()
        return alert.id


def assert_error(response: httpx.Response, status: int, code: str, field: str | None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(response.json()) == {"error"}
    assert error["code"] == code and error["message"], error
    assert error.get("field") == field, error
    if field is not None:
        assert error["message"].startswith(f"{field}: ")


class TestEveryRoute:
    @pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, _ in api_operations()])
    async def test_401_without_the_token(self, method: str, path: str) -> None:
        # No database: the token is checked before a session is opened.
        url = re.sub(r"\{[^}]+\}", "1", path)
        transport = httpx.ASGITransport(app=NO_DATABASE)
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
            r = await client.request(method, url)
        assert_error(r, 401, "unauthorized", None)
        assert r.headers["www-authenticate"] == "Bearer"

    @pytest.mark.parametrize(
        ("method", "path", "operation"), api_operations(), ids=lambda v: str(v)[:40]
    )
    def test_documented(self, method: str, path: str, operation: dict[str, Any]) -> None:
        assert re.fullmatch(r"[a-z_]+", operation["operationId"])
        tags = (["accounts"], ["alerts"], ["outcomes"], ["retention"], ["exports"], ["people"])
        assert operation["tags"] in tags
        answers = operation["responses"]
        ok = (answers.get("200") or answers["201"])["content"]  # 201: made something
        assert "text/html" in ok or "text/csv" in ok or "$ref" in ok["application/json"]["schema"]
        errors = {"401", "422"}
        if "{" in path and method != "PATCH":
            errors.add("404")
        if path.startswith("/v1/alerts/{alert_id}/"):
            errors.add("409")
        assert errors <= set(operation["responses"]), operation["responses"].keys()
        for status in errors:
            content = operation["responses"][status]["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/TendError"}
            assert set(content["example"]) == {"error"}

    def test_every_tag_is_described(self) -> None:
        described = {tag["name"] for tag in DOCUMENT["tags"] if tag.get("description")}
        assert {t for _, _, operation in api_operations() for t in operation["tags"]} <= described

    @pytest.mark.parametrize(
        "model",
        [
            m
            for m in vars(schemas).values()
            if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__ == schemas.__name__
        ]
        + [TendError],
        ids=lambda m: m.__name__,
    )
    def test_examples_are_valid_answers(self, model: type[BaseModel]) -> None:
        for example in model.model_json_schema().get("examples", []):
            model.model_validate(example)

    def test_operation_ids_are_unique(self) -> None:
        ids = [operation["operationId"] for _, _, operation in api_operations()]
        assert len(ids) == len(set(ids))


# Each database test loops over its cases: a fresh migrated SQLite file per case would cost
# the fast lane more than the cases themselves.


class TestNotFound:
    async def test_unknown_account_alert_and_path(
        self, web_errors_client: httpx.AsyncClient
    ) -> None:
        for suffix in ("", "/health", "/usage", "/report", "/report.html"):
            r = await web_errors_client.get(f"/v1/accounts/nope{suffix}")
            assert_error(r, 404, "not_found", None)
            assert r.json()["error"]["message"] == "account 'nope' not found"
        for path in ("/v1/alerts/999", "/v1/alerts/x", "/v1/nowhere"):
            assert_error(await web_errors_client.get(path), 404, "not_found", None)


class TestConflict:
    async def test_a_move_the_status_does_not_allow_is_409(
        self,
        web_errors_client: httpx.AsyncClient,
        sqlite_sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        alert_id = await add_open_alert(sqlite_sessions)
        assert (await web_errors_client.post(f"/v1/alerts/{alert_id}/resolve")).status_code == 200
        for move in ("ack", "resolve"):
            r = await web_errors_client.post(f"/v1/alerts/{alert_id}/{move}")
            assert_error(r, 409, "conflict", None)
            assert "resolved" in r.json()["error"]["message"]


class TestInvalid:
    async def test_query(self, web_errors_client: httpx.AsyncClient) -> None:
        cases: list[tuple[str, dict[str, str], str]] = [
            ("/v1/accounts", {"limit": "0"}, "limit"),
            ("/v1/accounts", {"sort": "colour"}, "sort"),
            ("/v1/accounts/nope/health", {"from": "2026-02-30"}, "from"),
            ("/v1/alerts", {"status": "closed"}, "status"),
            ("/v1/alerts", {"offset": "-1"}, "offset"),
            ("/v1/alerts", {"csm": "a\x00"}, "csm"),
        ]
        for path, params, field in cases:
            assert_error(await web_errors_client.get(path, params=params), 422, "invalid", field)

    async def test_range_and_profile_body(self, web_errors_client: httpx.AsyncClient) -> None:
        bodies: list[tuple[dict[str, Any], str]] = [
            ({"seats": -1}, "seats"),
            ({"name": "  "}, "name"),
            ({"colour": 1}, "colour"),
            ({}, "body"),
        ]
        for body, field in bodies:
            r = await web_errors_client.patch("/v1/accounts/acme", json=body)
            assert_error(r, 422, "invalid", field)
        await web_errors_client.patch("/v1/accounts/acme", json={"seats": 10})
        r = await web_errors_client.get(
            "/v1/accounts/acme/usage", params={"from": "2026-11-10", "to": "2026-11-01"}
        )
        assert_error(r, 422, "invalid", "from")

    async def test_snooze_in_the_past(
        self,
        web_errors_client: httpx.AsyncClient,
        sqlite_sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        alert_id = await add_open_alert(sqlite_sessions)
        r = await web_errors_client.post(
            f"/v1/alerts/{alert_id}/snooze", json={"until": "2026-11-01T00:00:00Z"}
        )
        assert_error(r, 422, "invalid", "until")

    async def test_a_surrogate_in_the_body_is_answered(
        self, web_errors_client: httpx.AsyncClient
    ) -> None:
        r = await web_errors_client.post(
            "/v1/alerts/1/snooze",
            content=b'{"until": "2999-01-01T00:00:00Z", "reason": "\\ud800"}',
            headers={"content-type": "application/json"},
        )
        assert_error(r, 422, "invalid", "reason")

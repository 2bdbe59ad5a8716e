"""Client input the read API (/v1/accounts) and the alerts API (/v1/alerts) must answer with a
4xx naming the field, never a 500, on PostgreSQL and SQLite: dates at the calendar's edges,
offsets and ids past 64 bits, digits ``int`` refuses, NUL and lone surrogates."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.web.app import create_app
from shared.db.models import Account
from shared.settings import Settings

TOKEN = "api-input-test-token-0123456789abcdef"
TOO_BIG = str(2**63)
BIGGEST = str(2**63 - 1)

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def input_client(db: async_sessionmaker[AsyncSession]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(api_token=SecretStr(TOKEN), config=None), sessions=db)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        yield c


@pytest_asyncio.fixture
async def account(db: async_sessionmaker[AsyncSession], uid: str) -> str:
    account_id = f"{uid}-acme"
    async with db() as session, session.begin():
        session.add(Account(account_id=account_id, name="Acme"))
    return account_id


class TestDatesAtTheCalendarsEdges:
    @pytest.mark.parametrize("view", ["health", "usage"])
    @pytest.mark.parametrize(
        "query",
        [
            {"to": "0001-01-05"},  # the default window would start before year 1
            {"to": "0001-01-01"},
            {"from": "0001-01-01", "to": "0001-01-01"},
            {"to": "9999-12-31", "from": "9999-12-01"},
            {"from": "9999-12-31", "to": "9999-12-31"},
        ],
    )
    async def test_edge_dates_are_answered(
        self, input_client: httpx.AsyncClient, account: str, view: str, query: dict[str, str]
    ) -> None:
        r = await input_client.get(f"/v1/accounts/{account}/{view}", params=query)
        assert r.status_code == 200, r.text

    @pytest.mark.parametrize("view", ["health", "usage"])
    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ({"to": "10000-01-01"}, "to"),
            ({"from": "0000-12-31"}, "from"),
            ({"from": "9999-12-31"}, "from"),  # after today, the default end
            ({"to": "²⁰²⁶-01-01"}, "to"),
        ],
    )
    async def test_impossible_dates_are_422_naming_the_field(
        self,
        input_client: httpx.AsyncClient,
        account: str,
        view: str,
        query: dict[str, str],
        field: str,
    ) -> None:
        r = await input_client.get(f"/v1/accounts/{account}/{view}", params=query)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == field, r.text

    @pytest.mark.parametrize("month", ["9999-12", "0001-01", "²⁰²⁶-01", "2026-13"])
    async def test_report_months(
        self, input_client: httpx.AsyncClient, account: str, month: str
    ) -> None:
        r = await input_client.get(f"/v1/accounts/{account}/report", params={"month": month})
        assert r.status_code == 422 and r.json()["error"]["field"] == "month", r.text


class TestNumbers:
    @pytest.mark.parametrize("path", ["/v1/accounts", "/v1/alerts"])
    @pytest.mark.parametrize(
        ("params", "status"),
        [
            ({"offset": BIGGEST}, 200),
            ({"offset": TOO_BIG}, 422),
            ({"offset": "9" * 40}, 422),
            ({"offset": "-1"}, 422),
            ({"offset": "²"}, 422),
            ({"limit": "²"}, 422),
            ({"limit": "0"}, 422),
            ({"limit": "1001"}, 422),
            ({"limit": "-1"}, 422),
        ],
    )
    async def test_limit_and_offset(
        self, input_client: httpx.AsyncClient, path: str, params: dict[str, str], status: int
    ) -> None:
        r = await input_client.get(path, params=params)
        assert r.status_code == status, r.text
        if status == 422:
            assert r.json()["error"]["field"] == next(iter(params)), r.text

    @pytest.mark.parametrize("alert_id", ["²", "\u0661", "-1", "0x10", TOO_BIG, "9" * 40, "1.5"])
    @pytest.mark.parametrize("action", ["", "/ack", "/resolve"])
    async def test_ids_that_are_not_ids_are_404(
        self, input_client: httpx.AsyncClient, alert_id: str, action: str
    ) -> None:
        method = "POST" if action else "GET"
        r = await input_client.request(method, f"/v1/alerts/{alert_id}{action}")
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "not_found"

    async def test_the_biggest_id_is_a_plain_404(self, input_client: httpx.AsyncClient) -> None:
        assert (await input_client.get(f"/v1/alerts/{'9' * 18}")).status_code == 404


class TestStrings:
    @pytest.mark.parametrize(
        ("path", "params", "field"),
        [
            ("/v1/accounts/a%00b", {}, "account_id"),
            ("/v1/accounts/a%00b/health", {}, "account_id"),
            ("/v1/accounts", {"csm": "x\x00"}, "csm"),
            ("/v1/accounts", {"band": "\x00"}, "band"),
            ("/v1/alerts", {"account": "a\x00"}, "account"),
            ("/v1/alerts", {"csm": "\x00"}, "csm"),
        ],
    )
    async def test_nul_is_422_naming_the_field(
        self, input_client: httpx.AsyncClient, path: str, params: dict[str, str], field: str
    ) -> None:
        r = await input_client.get(path, params=params)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == field, r.text

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"until": "9999-12-31T23:00:00-05:00"}, "until"),
            ({"until": "2999-01-01T00:00:00Z", "reason": "a\x00b"}, "reason"),
            ({"until": "2999-01-01T00:00:00Z", "reason": "\ud800"}, "reason"),
        ],
    )
    async def test_snooze_bodies(
        self, input_client: httpx.AsyncClient, body: dict[str, str], field: str
    ) -> None:
        # json.dumps escapes the surrogate as \ud800, as a client's serializer would.
        content = json.dumps(body).encode()
        r = await input_client.post(
            "/v1/alerts/1/snooze", content=content, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == field, r.text

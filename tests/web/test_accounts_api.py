"""The read API on the scorer app (ASGI in process), over a replayed and scored database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from services.scorer.rescorer import Rescorer
from services.scorer.writer import RollupWriter
from services.web.app import create_app
from shared.clock import FixedClock
from shared.db.migrate import upgrade_async
from shared.db.session import create_engine, create_sessionmaker
from shared.settings import Settings
from tests.scorer.synthetic import (
    CONFIG,
    Archetype,
    Replay,
    expected_rollups,
    generate,
    import_profiles,
)
from tests.support.postgres import create_database, drop_database

pytestmark = pytest.mark.integration

TOKEN = "read-api-test-token-0123456789abcd"
HISTORY_DAYS = 7


@dataclass
class Api:
    client: httpx.AsyncClient
    replay: Replay

    def id_of(self, archetype: Archetype, n: int = 0) -> str:
        return next(
            a.account_id
            for a in self.replay.accounts
            if a.archetype is archetype and a.account_id.endswith(f"-{n}")
        )

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(
            path, params=params, headers={"Authorization": f"Bearer {TOKEN}"}
        )


@pytest_asyncio.fixture(scope="module")
async def api() -> AsyncIterator[Api]:
    """A fresh database holding 14 replayed accounts, scored daily over the last week."""
    url = await create_database("tend_api")
    await upgrade_async(url)
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    replay = generate(uuid.uuid4().hex[:8], per_archetype=2)
    await import_profiles(sessions, replay)
    writer = RollupWriter()
    for start in range(0, len(replay.events), 1000):
        async with sessions() as session, session.begin():
            await writer.flush(session, "api-test", replay.events[start : start + 1000], {})
    clock = FixedClock(replay.as_of_datetime())
    rescorer = Rescorer(sessions, None, CONFIG, clock)
    for back in reversed(range(HISTORY_DAYS)):
        await rescorer.sweep(replay.end - timedelta(days=back))

    app = create_app(Settings(api_token=SecretStr(TOKEN)), config=CONFIG, sessions=sessions)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://scorer") as client:
        yield Api(client, replay)
    await engine.dispose()
    await drop_database(url)


class TestAuth:
    @pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic YWJjOg==", "Bearer "])
    async def test_refused_without_the_token(self, api: Api, header: str | None) -> None:
        headers = {"Authorization": header} if header is not None else {}
        for path in ("/v1/accounts", f"/v1/accounts/{api.id_of(Archetype.DORMANT)}"):
            response = await api.client.get(path, headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            error = response.json()["error"]
            assert error["code"] == "unauthorized" and "bearer token" in error["message"]


class TestList:
    async def test_all_accounts_sorted_by_score(self, api: Api) -> None:
        body = (await api.get("/v1/accounts", sort="-score")).json()
        assert body["total"] == 14
        scores = [a["score"] for a in body["accounts"]]
        assert scores == sorted(scores, reverse=True)
        ascending = (await api.get("/v1/accounts", sort="score")).json()["accounts"]
        assert [a["score"] for a in ascending] == sorted(scores)

    async def test_filter_by_band(self, api: Api) -> None:
        body = (await api.get("/v1/accounts", band="red")).json()
        assert body["total"] == 2
        assert {a["account_id"] for a in body["accounts"]} == {
            api.id_of(Archetype.DORMANT, 0),
            api.id_of(Archetype.DORMANT, 1),
        }
        yellow = (await api.get("/v1/accounts", band="yellow")).json()
        assert {a["account_id"].split("-")[1] for a in yellow["accounts"]} == {
            "plateauing",
            "declining",
        }

    async def test_filter_by_csm_and_sort_by_mrr_and_renewal(self, api: Api) -> None:
        csm = api.replay.accounts[1].csm_email  # accounts numbered 1 go to csm1
        body = (await api.get("/v1/accounts", csm=csm, sort="-mrr")).json()
        assert body["total"] == 7
        assert {a["csm_email"] for a in body["accounts"]} == {csm}
        mrrs = [a["mrr"] for a in body["accounts"]]
        assert mrrs == sorted(mrrs, reverse=True)
        by_renewal = (await api.get("/v1/accounts", sort="renewal", limit=3)).json()
        assert by_renewal["total"] == 14 and len(by_renewal["accounts"]) == 3
        dates = [a["renewal_date"] for a in by_renewal["accounts"]]
        assert dates == sorted(dates) == [(api.replay.end + timedelta(days=30)).isoformat()] * 3

    async def test_unknown_sort_is_a_422(self, api: Api) -> None:
        response = await api.get("/v1/accounts", sort="colour")
        assert response.status_code == 422
        error = response.json()["error"]
        assert (error["code"], error["field"]) == ("invalid", "sort")
        assert error["message"].startswith("sort: ")


class TestAccount:
    async def test_detail_has_traits_score_and_metrics(self, api: Api) -> None:
        account = api.id_of(Archetype.DECLINING)
        body = (await api.get(f"/v1/accounts/{account}")).json()
        assert body["account_id"] == account
        assert body["band"] == "yellow"
        assert body["seats"] == 20 and body["plan"] == "pro"
        assert body["scored_as_of"] == api.replay.end.isoformat()
        # The CSM is the operator's import; the group call's csm_email trait was dropped.
        assert body["csm_email"] == next(
            a.csm_email for a in api.replay.accounts if a.account_id == account
        )
        assert "csm_email" not in body["traits"] and body["traits"]["plan"] == "pro"
        assert body["metrics"]["as_of"] == api.replay.end.isoformat()
        assert body["metrics"]["trend_ratio"] < 0.4

    async def test_unknown_account_is_a_json_404(self, api: Api) -> None:
        for suffix in ("", "/health", "/usage"):
            response = await api.get(f"/v1/accounts/no-such-account{suffix}")
            assert response.status_code == 404
            assert response.headers["content-type"] == "application/json"
            assert response.json() == {
                "error": {"code": "not_found", "message": "account 'no-such-account' not found"}
            }


class TestHealth:
    async def test_history_in_range_and_current_components(self, api: Api) -> None:
        account = api.id_of(Archetype.HEALTHY_STEADY)
        end = api.replay.end
        body = (
            await api.get(
                f"/v1/accounts/{account}/health",
                **{"from": (end - timedelta(days=3)).isoformat(), "to": end.isoformat()},
            )
        ).json()
        assert [h["as_of"] for h in body["history"]] == [
            (end - timedelta(days=k)).isoformat() for k in (3, 2, 1, 0)
        ]
        assert {h["band"] for h in body["history"]} == {"green"}
        current = body["current"]
        assert current["as_of"] == end.isoformat()
        assert set(current["components"]) == {
            "seat_utilization",
            "stickiness",
            "feature_breadth",
            "login_trend",
            "recency",
        }
        assert current["previous_score"] is not None  # yesterday's score
        all_days = (
            await api.get(
                f"/v1/accounts/{account}/health",
                **{"from": (end - timedelta(days=30)).isoformat(), "to": end.isoformat()},
            )
        ).json()
        assert len(all_days["history"]) == HISTORY_DAYS

    @pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "2026-02-30"])
    async def test_bad_from_is_a_422_naming_the_field(self, api: Api, value: str) -> None:
        account = api.id_of(Archetype.HEALTHY_STEADY)
        for suffix in ("/health", "/usage"):
            response = await api.get(f"/v1/accounts/{account}{suffix}", **{"from": value})
            assert response.status_code == 422
            error = response.json()["error"]
            assert (error["code"], error["field"]) == ("invalid", "from")

    async def test_from_after_to_is_a_422(self, api: Api) -> None:
        account = api.id_of(Archetype.HEALTHY_STEADY)
        response = await api.get(
            f"/v1/accounts/{account}/health", **{"from": "2026-11-10", "to": "2026-11-01"}
        )
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["field"] == "from" and error["message"] == "from: must not be after to"


class TestUsage:
    async def test_daily_rollups_and_features(self, api: Api) -> None:
        account = api.id_of(Archetype.ABANDONS_FEATURE)
        end = api.replay.end
        start = end - timedelta(days=27)
        body = (
            await api.get(
                f"/v1/accounts/{account}/usage",
                **{"from": start.isoformat(), "to": end.isoformat()},
            )
        ).json()
        want = expected_rollups(e for e in api.replay.events if e.account_id == account)
        in_range = {
            d: v for (a, d), v in want.account_days.items() if a == account and start <= d <= end
        }
        assert {
            date.fromisoformat(d["day"]): (d["events"], d["logins"], d["active_users"])
            for d in body["days"]
        } == in_range
        assert set(body["features"]) == {"reports", "dashboards"}  # exports abandoned
        reports = {
            date.fromisoformat(r["day"]): (r["uses"], r["users"])
            for r in body["features"]["reports"]
        }
        assert reports == {
            d: v
            for (a, f, d), v in want.feature_days.items()
            if a == account and f == "reports" and start <= d <= end
        }

"""POST and GET /v1/accounts/{id}/outcomes on the web app, on PostgreSQL and SQLite: auth, errors
naming the field, idempotent re-posts, the MRR history and stage, and a renewal moving the
renewal date."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.clock import FixedClock
from shared.db.models import Account, Outcome
from shared.db.session import transaction
from tests.outcomes.web import noon, web_client

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
TODAY = date(2026, 6, 30)
CANCEL = {"kind": "cancellation", "effective_on": "2026-05-31", "reason": "budget cut"}
RENEW = {
    "kind": "renewal",
    "effective_on": "2026-03-01",
    "new_mrr": 1200,
    "new_term_end": "2027-03-01",
}
EXPAND = {"kind": "expansion", "effective_on": "2026-04-10", "mrr_delta": 300}


async def create_account(sessions: Sessions, account_id: str, **fields: Any) -> None:
    values: dict[str, Any] = {
        "created_at": date(2025, 3, 1),
        "mrr": 1500.0,
        "renewal_date": date(2026, 3, 1),
        "plan": "pro",
    }
    values.update(fields)
    async with transaction(sessions) as session:
        session.add(Account(account_id=account_id, **values))


async def stored_outcomes(sessions: Sessions, account_id: str) -> int:
    async with sessions() as session:
        n = await session.scalar(
            select(func.count()).select_from(Outcome).where(Outcome.account_id == account_id)
        )
    return int(n or 0)


class TestAuth:
    @pytest.mark.parametrize("method", ["GET", "POST"])
    async def test_no_or_wrong_token_is_401(self, db: Sessions, uid: str, method: str) -> None:
        await create_account(db, f"{uid}-a")
        async with web_client(db, FixedClock(noon(TODAY))) as client:
            for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
                r = await client.request(
                    method,
                    f"/v1/accounts/{uid}-a/outcomes",
                    json=CANCEL if method == "POST" else None,
                    headers=headers,
                )
                assert r.status_code == 401
                assert r.json()["error"]["code"] == "unauthorized"
        assert await stored_outcomes(db, f"{uid}-a") == 0


class TestErrors:
    async def test_unknown_account_is_404(self, db: Sessions, uid: str) -> None:
        async with web_client(db, FixedClock(noon(TODAY))) as client:
            for r in (
                await client.post(f"/v1/accounts/{uid}-nobody/outcomes", json=CANCEL),
                await client.get(f"/v1/accounts/{uid}-nobody/outcomes"),
            ):
                assert r.status_code == 404
                assert r.json()["error"] == {
                    "code": "not_found",
                    "message": f"account '{uid}-nobody' not found",
                }
        assert await stored_outcomes(db, f"{uid}-nobody") == 0

    @pytest.mark.parametrize(
        ("body", "field", "words"),
        [
            ({"kind": "cancellation", "effective_on": "2026-05-31"}, "reason", "is required"),
            ({"kind": "refund", "effective_on": "2026-05-31"}, "kind", "is not one of"),
            (
                {"kind": "expansion", "effective_on": "31/05/2026", "mrr_delta": 5},
                "effective_on",
                "YYYY-MM-DD",
            ),
            (
                {"kind": "contraction", "effective_on": "2026-05-31", "mrr_delta": 200},
                "mrr_delta",
                "negative",
            ),
            ({**RENEW, "mrr_delta": 10}, "mrr_delta", "is not used by a renewal"),
            ({**RENEW, "new_term_end": "2026-02-01"}, "new_term_end", "after"),
            ({**CANCEL, "color": "red"}, "color", "unknown field"),
            ({**CANCEL, "account_id": "someone-else"}, "account_id", "is not the path's account"),
            (
                [CANCEL, {"kind": "expansion", "effective_on": "2026-04-10"}],
                "1.mrr_delta",
                "is required",
            ),
            ([CANCEL, CANCEL], "1.effective_on", "already"),
            ({**CANCEL, "effective_on": "0001-01-01"}, "effective_on", "between"),
            ({**RENEW, "new_term_end": "9999-12-31"}, "new_term_end", "between"),
            ([], "body", "give an outcome"),
            ("cancel it", "body", "must be an object"),
            ([CANCEL] * 1001, "body", "at most 1000"),
        ],
    )
    async def test_bad_input_is_422_naming_the_field_and_records_nothing(
        self, db: Sessions, uid: str, body: Any, field: str, words: str
    ) -> None:
        await create_account(db, f"{uid}-a")
        async with web_client(db, FixedClock(noon(TODAY))) as client:
            r = await client.post(f"/v1/accounts/{uid}-a/outcomes", json=body)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid"
        assert error["field"] == field
        assert error["message"].startswith(f"{field}: ")
        assert words in error["message"]
        assert await stored_outcomes(db, f"{uid}-a") == 0

    async def test_a_body_that_is_not_json_is_422(self, db: Sessions, uid: str) -> None:
        await create_account(db, f"{uid}-a")
        async with web_client(db, FixedClock(noon(TODAY))) as client:
            r = await client.post(
                f"/v1/accounts/{uid}-a/outcomes",
                content=b"{not json",
                headers={"Content-Type": "application/json"},
            )
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "invalid"

    async def test_outcomes_that_contradict_the_recorded_ones_are_409(
        self, db: Sessions, uid: str
    ) -> None:
        await create_account(db, f"{uid}-a")
        async with web_client(db, FixedClock(noon(TODAY))) as client:
            assert (
                await client.post(f"/v1/accounts/{uid}-a/outcomes", json=CANCEL)
            ).status_code == 201
            late = {"kind": "expansion", "effective_on": "2026-06-10", "mrr_delta": 100}
            r = await client.post(f"/v1/accounts/{uid}-a/outcomes", json=late)
        assert r.status_code == 409
        assert "cancelled on 2026-05-31" in r.json()["error"]["message"]
        assert await stored_outcomes(db, f"{uid}-a") == 1


class TestRecording:
    async def test_one_or_a_list_then_the_same_again_changes_nothing(
        self, db: Sessions, uid: str
    ) -> None:
        account = f"{uid}-a"
        await create_account(db, account)
        async with web_client(db, FixedClock(noon(TODAY))) as client:
            first = await client.post(f"/v1/accounts/{account}/outcomes", json=[RENEW, EXPAND])
            assert first.status_code == 201
            assert (first.json()["inserted"], first.json()["unchanged"]) == (2, 0)
            one = await client.post(f"/v1/accounts/{account}/outcomes", json=CANCEL)
            assert one.status_code == 201 and one.json()["inserted"] == 1

            again = await client.post(
                f"/v1/accounts/{account}/outcomes", json=[CANCEL, EXPAND, RENEW]
            )
            assert again.status_code == 200
            body = again.json()
            assert (body["inserted"], body["updated"], body["unchanged"]) == (0, 0, 3)
            listed = (await client.get(f"/v1/accounts/{account}/outcomes")).json()
        assert await stored_outcomes(db, account) == 3
        assert [(o["kind"], o["effective_on"], o["source"]) for o in listed["outcomes"]] == [
            ("renewal", "2026-03-01", "api"),
            ("expansion", "2026-04-10", "api"),
            ("cancellation", "2026-05-31", "api"),
        ]
        # A flat renewal at 1200 makes 1200 the MRR before it; +300; 0 from the cancellation.
        assert [(p["effective_on"], p["mrr"], p["cause"]) for p in listed["mrr_history"]] == [
            ("2025-03-01", 1200.0, "start"),
            ("2026-03-01", 1200.0, "renewal"),
            ("2026-04-10", 1500.0, "expansion"),
            ("2026-05-31", 0.0, "cancellation"),
        ]
        assert listed["stage"] == "cancelled"
        assert listed["stage_changes"][0] == {"effective_on": "2025-03-01", "stage": "new"}
        assert listed["stage_changes"][-1] == {"effective_on": "2026-05-31", "stage": "cancelled"}
        assert body == {**listed, "inserted": 0, "updated": 0, "unchanged": 3, "alerts_resolved": 0}

    async def test_posting_a_key_again_with_other_values_replaces_them(
        self, db: Sessions, uid: str
    ) -> None:
        account = f"{uid}-a"
        await create_account(db, account)
        async with web_client(db, FixedClock(noon(TODAY))) as client:
            await client.post(f"/v1/accounts/{account}/outcomes", json=CANCEL)
            r = await client.post(
                f"/v1/accounts/{account}/outcomes",
                json={**CANCEL, "reason": "moved to a competitor", "mrr_lost": 1400},
            )
        assert r.status_code == 200
        assert (r.json()["inserted"], r.json()["updated"]) == (0, 1)
        [outcome] = r.json()["outcomes"]
        assert (outcome["reason"], outcome["mrr_lost"]) == ("moved to a competitor", 1400.0)
        assert await stored_outcomes(db, account) == 1

    async def test_a_renewal_moves_the_renewal_date(self, db: Sessions, uid: str) -> None:
        account = f"{uid}-a"
        await create_account(db, account, renewal_date=date(2026, 3, 1))
        async with web_client(db, FixedClock(noon(TODAY))) as client:
            before = (await client.get(f"/v1/accounts/{account}")).json()
            r = await client.post(f"/v1/accounts/{account}/outcomes", json=RENEW)
            after = (await client.get(f"/v1/accounts/{account}")).json()
        assert before["renewal_date"] == "2026-03-01"
        assert r.json()["renewal_date"] == "2027-03-01"
        assert after["renewal_date"] == "2027-03-01"

    async def test_an_account_without_outcomes_lists_its_profile_mrr(
        self, db: Sessions, uid: str
    ) -> None:
        await create_account(db, f"{uid}-a", created_at=date(2026, 6, 20))
        async with web_client(db, FixedClock(noon(TODAY))) as client:
            r = await client.get(f"/v1/accounts/{uid}-a/outcomes")
        assert r.status_code == 200
        assert r.json()["outcomes"] == []
        assert r.json()["mrr_history"] == [
            {"effective_on": "2026-06-20", "mrr": 1500.0, "cause": "start"}
        ]
        assert r.json()["stage"] == "new"


class TestOpenApi:
    async def test_the_routes_are_documented(self, db: Sessions) -> None:
        async with web_client(db, FixedClock(noon(TODAY))) as client:
            doc = (await client.get("/openapi.json")).json()
        path = doc["paths"]["/v1/accounts/{account_id}/outcomes"]
        assert path["post"]["operationId"] == "record_account_outcomes"
        assert path["get"]["operationId"] == "list_outcomes"
        assert {"401", "404", "409", "422"} <= set(path["post"]["responses"])
        assert path["post"]["tags"] == ["outcomes"]
        assert doc["paths"]["/v1/retention"]["get"]["operationId"] == "get_retention"


class TestStageInTheAccountsApi:
    async def test_listed_shown_and_filtered(self, db: Sessions, uid: str) -> None:
        csm = f"{uid}@vendor.test"
        await create_account(db, f"{uid}-new", created_at=date(2026, 6, 10), csm_email=csm)
        await create_account(db, f"{uid}-renewing", renewal_date=date(2026, 8, 1), csm_email=csm)
        await create_account(db, f"{uid}-gone", csm_email=csm)
        await create_account(db, f"{uid}-grows", renewal_date=date(2027, 6, 1), csm_email=csm)
        async with web_client(db, FixedClock(noon(TODAY))) as client:
            r = await client.post(f"/v1/accounts/{uid}-gone/outcomes", json=CANCEL)
            assert r.status_code == 201
            listed = (await client.get("/v1/accounts", params={"csm": csm, "sort": "name"})).json()
            by_stage = {
                stage: (
                    await client.get("/v1/accounts", params={"csm": csm, "stage": stage})
                ).json()
                for stage in ("new", "growing", "renewal", "cancelled")
            }
            one = (await client.get(f"/v1/accounts/{uid}-gone")).json()
            bad = await client.get("/v1/accounts", params={"stage": "churned"})
        assert {a["account_id"]: a["stage"] for a in listed["accounts"]} == {
            f"{uid}-new": "new",
            f"{uid}-renewing": "renewal",
            f"{uid}-gone": "cancelled",
            f"{uid}-grows": "growing",
        }
        for stage, body in by_stage.items():
            assert body["total"] == 1
            assert [a["stage"] for a in body["accounts"]] == [stage]
        assert by_stage["cancelled"]["accounts"][0]["account_id"] == f"{uid}-gone"
        assert one["stage"] == "cancelled"
        assert bad.status_code == 422
        assert bad.json()["error"]["field"] == "stage"

"""The last events of an account: ``GET /v1/accounts/{id}/events`` and the console account
page's "Last events" section, on the console's seeded database plus events sent with a key."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from services.scorer.recent import RECENT_EVENTS_KEPT
from services.scorer.writer import RollupWriter
from services.web.api import events as events_api
from services.web.console.views import LAST_EVENTS_SHOWN
from shared.db.keys import create_key
from shared.db.models import Account
from tests.scorer.synthetic import Archetype
from tests.support.events import create_event
from tests.web.console_data import TOKEN, Seeded
from tests.web.test_console import parse

BEARER = {"Authorization": f"Bearer {TOKEN}"}
AT = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
RECEIVED = datetime(2026, 11, 30, 9, 31, tzinfo=UTC)


async def send_keyed_event(seeded: Seeded, account_id: str) -> tuple[int, str]:
    """One 'Report Exported' event of ``account_id`` sent with a new key: (key id, the key)."""
    async with seeded.sessions() as session, session.begin():
        key, plaintext = await create_key(session, "web app")
        event = create_event(
            f"last-events-{account_id}",
            account_id=account_id,
            user_id="u-42",
            name="Report Exported",
            at=AT,
            received_at=RECEIVED,
        ).model_copy(update={"write_key_id": key.id})
        await RollupWriter().flush(session, "last-events-test", [event], {})
    return key.id, plaintext


def test_the_api_says_what_the_scorer_keeps() -> None:
    assert events_api.KEPT_EVENTS == RECENT_EVENTS_KEPT


class TestApi:
    async def test_newest_first_with_times_and_key(
        self, client: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        account = seeded.id_of(Archetype.HEALTHY_STEADY)
        key_id, plaintext = await send_keyed_event(seeded, account)
        r = await client.get(f"/v1/accounts/{account}/events", headers=BEARER)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["account_id"] == account and body["kept"] == RECENT_EVENTS_KEPT
        assert len(body["events"]) == RECENT_EVENTS_KEPT  # the replay sent many more
        newest = body["events"][0]
        assert newest["event_id"] == f"last-events-{account}"
        assert (newest["type"], newest["name"], newest["user_id"]) == (
            "track",
            "Report Exported",
            "u-42",
        )
        assert newest["occurred_at"] == "2026-11-30T09:30:00Z"
        assert newest["received_at"] == "2026-11-30T09:31:00Z"
        assert newest["write_key"] == {"id": key_id, "name": "web app", "prefix": plaintext[:12]}
        assert plaintext not in r.text
        older = body["events"][1]
        assert older["write_key"] is None  # the replay's events came without a key
        ids = [e["id"] for e in body["events"]]
        assert ids == sorted(ids, reverse=True)

    async def test_limit_and_after_id(self, client: httpx.AsyncClient, seeded: Seeded) -> None:
        account = seeded.id_of(Archetype.DORMANT)
        path = f"/v1/accounts/{account}/events"
        two = (await client.get(path, params={"limit": 2}, headers=BEARER)).json()["events"]
        assert len(two) == 2
        newer = await client.get(path, params={"after_id": two[1]["id"]}, headers=BEARER)
        assert [e["id"] for e in newer.json()["events"]] == [two[0]["id"]]

    @pytest.mark.parametrize(
        ("params", "field"),
        [({"limit": 0}, "limit"), ({"limit": 51}, "limit"), ({"after_id": "x"}, "after_id")],
    )
    async def test_bad_input_names_the_field(
        self, client: httpx.AsyncClient, seeded: Seeded, params: dict[str, object], field: str
    ) -> None:
        account = seeded.id_of(Archetype.DORMANT)
        r = await client.get(f"/v1/accounts/{account}/events", params=params, headers=BEARER)
        assert r.status_code == 422
        assert r.json()["error"]["field"] == field

    async def test_unknown_account_is_404(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/v1/accounts/no-such-account/events", headers=BEARER)
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"

    async def test_needs_the_token(self, anonymous: httpx.AsyncClient, seeded: Seeded) -> None:
        account = seeded.id_of(Archetype.DORMANT)
        r = await anonymous.get(f"/v1/accounts/{account}/events")
        assert r.status_code == 401


class TestConsole:
    async def test_account_page_lists_the_last_events(
        self, client: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        account = seeded.id_of(Archetype.DECLINING)
        _, plaintext = await send_keyed_event(seeded, account)
        r = await client.get(f"/console/accounts/{account}")
        assert r.status_code == 200
        assert r.text.count('id="last-events"') == 1
        title = r.text.split("<title>")[1].split("</title>")[0]
        assert "Last events" not in title
        rows = parse(r.text).tables["events"]
        assert len(rows) == LAST_EVENTS_SHOWN
        attrs, cells = rows[0]
        assert attrs["data-event"] == f"last-events-{account}"
        assert cells == [
            "2026-11-30 09:31 UTC",
            "2026-11-30 09:30 UTC",
            "track",
            "Report Exported",
            "u-42",
            f"web app ({plaintext[:12]}…)",
        ]
        assert plaintext not in r.text
        assert rows[1][1][-1] == "none (imported)"

    async def test_an_account_without_events_says_how_to_watch(
        self, client: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        async with seeded.sessions() as session, session.begin():
            session.add(Account(account_id="quiet-one", name="Quiet One"))
        r = await client.get("/console/accounts/quiet-one")
        assert r.status_code == 200
        assert 'id="events"' not in r.text
        assert "No events counted yet" in r.text
        assert "tend tail --account quiet-one --follow" in r.text

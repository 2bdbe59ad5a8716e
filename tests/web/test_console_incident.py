"""The console's incident card: an account's open alerts as one card with the rules inside, and
acknowledge / snooze / resolve for all of them at once (on a seeded private SQLite database)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select

from shared.db.models import Alert
from tests.scorer.synthetic import Archetype
from tests.web.console_data import Seeded

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def incident(seeded: Seeded) -> AsyncIterator[tuple[str, list[int]]]:
    """The dormant account with a second open alert (health red) that began 9 days ago."""
    account = seeded.id_of(Archetype.DORMANT)
    async with seeded.sessions() as session, session.begin():
        dormant = await session.get(Alert, seeded.alerts["dormant"])
        assert dormant is not None
        dormant.status, dormant.started_on = "open", seeded.today - timedelta(days=20)
        red = Alert(
            account_id=account,
            rule="health_red",
            feature="",
            status="open",
            severity="critical",
            started_on=seeded.today - timedelta(days=9),
            opened_on=seeded.today - timedelta(days=8),
            reason="health 28 (red) <b>",
            next_step="Book a call",
            band="red",
            account_name=dormant.account_name,
            notifications=1,
        )
        session.add(red)
        await session.flush()
        ids = [dormant.id, red.id]
    yield account, ids
    async with seeded.sessions() as session, session.begin():
        row = await session.get(Alert, ids[1])
        await session.delete(row)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def statuses(seeded: Seeded, ids: list[int]) -> list[str]:
    async with seeded.sessions() as session:
        rows = await session.scalars(select(Alert).where(Alert.id.in_(ids)).order_by(Alert.id))
        return [r.status for r in rows]


class TestIncidentCard:
    async def test_the_open_alerts_are_one_card_with_the_rules_inside(
        self, client: httpx.AsyncClient, seeded: Seeded, incident: tuple[str, list[int]]
    ) -> None:
        account, ids = incident
        html = (await client.get(f"/console/accounts/{account}")).text
        card = html[html.index('<section class="incident"') :]
        card = card[: card.index("</section>")]
        assert card.count("<article") == 2
        assert all(f'id="alert-{i}"' in card for i in ids)
        assert "2 open alerts" in card
        # the day the problem began in event time, for the card and each rule
        began = (seeded.today - timedelta(days=20)).isoformat()
        assert f"Began {began}" in card and f"began {began}" in card
        assert "health 28 (red) &lt;b&gt;" in card
        base = f"/console/accounts/{account}/alerts"
        assert all(f'action="{base}/{a}"' in card for a in ("ack", "snooze", "resolve"))

    async def test_acknowledge_and_snooze_for_the_group(
        self, client: httpx.AsyncClient, seeded: Seeded, incident: tuple[str, list[int]]
    ) -> None:
        account, ids = incident
        page = f"/console/accounts/{account}"
        form = {"csrf": csrf_of((await client.get(page)).text), "next": page}
        r = await client.post(f"{page}/alerts/ack", data=form)
        assert r.status_code == 303
        assert r.headers["location"] == f"{page}?notice=acknowledged#incident"
        assert await statuses(seeded, ids) == ["acknowledged", "acknowledged"]

        until = seeded.clock.now() + timedelta(days=3)
        r = await client.post(
            f"{page}/alerts/snooze",
            data=form | {"until": until.strftime("%Y-%m-%dT%H:%M"), "reason": "QBR"},
        )
        assert "notice=snoozed" in r.headers["location"]
        assert await statuses(seeded, ids) == ["snoozed", "snoozed"]

        r = await client.post(f"{page}/alerts/snooze", data=form | {"until": "yesterday"})
        assert "notice=bad-until" in r.headers["location"]
        r = await client.post(f"{page}/alerts/resolve", data=form)
        assert await statuses(seeded, ids) == ["resolved", "resolved"]
        r = await client.post(f"{page}/alerts/ack", data=form)
        assert "notice=not-found" in r.headers["location"]

    async def test_a_group_move_needs_the_csrf_token(
        self, client: httpx.AsyncClient, seeded: Seeded, incident: tuple[str, list[int]]
    ) -> None:
        account, ids = incident
        r = await client.post(f"/console/accounts/{account}/alerts/ack", data={"csrf": "x"})
        assert r.status_code == 403
        r = await client.post(f"/console/accounts/{account}/alerts/explode", data={})
        assert r.status_code in (403, 404)
        assert await statuses(seeded, ids) == ["open", "open"]

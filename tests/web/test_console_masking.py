"""The console never shows a webhook URL in full: an account whose CSM is only a Slack webhook
shows it masked on the portfolio, account and alerts pages, and it is not offered as a CSM to
filter by (seeded SQLite database, the app ``tend up`` serves)."""

from __future__ import annotations

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import update

from shared.db.models import Account, Alert
from tests.scorer.synthetic import Archetype
from tests.web.console_data import Seeded

pytestmark = pytest.mark.integration

WEBHOOK = "https://hooks.slack.com/services/T0MASK/B0MASK/consolesecretconsole"
MASKED = "https://hooks.slack.com/services/…"


@pytest_asyncio.fixture(scope="module", autouse=True)
async def webhook_only_csm(seeded: Seeded) -> None:
    """The dormant account's CSM is only a Slack webhook (in this module's database)."""
    account = seeded.id_of(Archetype.DORMANT)
    async with seeded.sessions() as session, session.begin():
        for model in (Account, Alert):
            await session.execute(
                update(model)
                .where(model.account_id == account)
                .values(csm_email=None, csm_slack=WEBHOOK)
            )


class TestWebhooksOnPages:
    async def test_shown_masked_everywhere_and_not_offered_as_a_filter(
        self, seeded: Seeded, client: httpx.AsyncClient
    ) -> None:
        account = seeded.id_of(Archetype.DORMANT)
        pages = {
            path: await client.get(path)
            for path in ("/console/", "/console/alerts", f"/console/accounts/{account}")
        }
        for path, page in pages.items():
            assert page.status_code == 200, path
            assert "consolesecret" not in page.text and "T0MASK" not in page.text, path
        assert MASKED in pages[f"/console/accounts/{account}"].text
        assert MASKED in pages["/console/alerts"].text
        assert f'<option value="{MASKED}"' not in pages["/console/"].text

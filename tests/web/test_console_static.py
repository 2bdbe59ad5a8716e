"""The console's static files in the web app (Starlette's StaticFiles behind the console router):
content types, the cache and nosniff headers, 304 on a matching ETag, and no way out of the
static folder."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from services.web.app import create_app
from shared.db.session import create_engine, create_sessionmaker
from shared.settings import Settings

pytestmark = pytest.mark.unit


@pytest_asyncio.fixture(scope="module")  # one app for the module: the tests only read
async def static_client() -> AsyncIterator[httpx.AsyncClient]:
    engine = create_engine("sqlite+aiosqlite://")
    app = create_app(Settings(), sessions=create_sessionmaker(engine), api_token="t" * 40)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tend") as c:
        yield c
    await engine.dispose()


class TestStaticFiles:
    @pytest.mark.parametrize(
        ("name", "content_type"),
        [("console.css", "text/css"), ("favicon.svg", "image/svg+xml")],
    )
    async def test_served_with_cache_and_nosniff(
        self, static_client: httpx.AsyncClient, name: str, content_type: str
    ) -> None:
        r = await static_client.get(f"/console/static/{name}")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith(content_type)
        assert r.headers["cache-control"] == "public, max-age=3600"
        assert r.headers["x-content-type-options"] == "nosniff"
        again = await static_client.get(
            f"/console/static/{name}", headers={"If-None-Match": r.headers["etag"]}
        )
        assert again.status_code == 304

    @pytest.mark.parametrize(
        "path", ["/console/static/nope.css", "/console/static/%2e%2e/app.py", "/console/static/"]
    )
    async def test_nothing_else(self, static_client: httpx.AsyncClient, path: str) -> None:
        r = await static_client.get(path)
        assert r.status_code == 404
        assert "import" not in r.text

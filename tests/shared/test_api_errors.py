"""shared.api_errors: every JSON API answers errors in one shape (the ingest API in the
Segment-compatible one), whatever raised them; the OpenAPI document says so."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, HTTPException, Query
from pydantic import BaseModel

from services.ingest.app import create_app as create_ingest_app
from shared.api_errors import (
    SEGMENT,
    ApiError,
    ErrorRoute,
    error_responses,
    field_of,
    install_error_handlers,
    operation_id,
)
from shared.config import TendConfig
from shared.settings import Settings

pytestmark = pytest.mark.unit


class Body(BaseModel):
    until: int


def build_router() -> APIRouter:
    router = APIRouter(
        route_class=ErrorRoute,
        generate_unique_id_function=operation_id,
        responses=error_responses(401, 404, 409, 422),
    )

    @router.get("/things/{thing_id}")
    async def get_thing(
        thing_id: str, limit: Annotated[int, Query(ge=1, le=10)] = 1
    ) -> dict[str, str]:
        if thing_id == "missing":
            raise ApiError.not_found("thing", thing_id)
        if thing_id == "resolved":
            raise ApiError.conflict("thing 'resolved' is resolved; it cannot be acknowledged")
        if thing_id == "http":
            raise HTTPException(422, detail="from: must not be after to")
        if thing_id == "token":
            raise HTTPException(401, "no token", headers={"WWW-Authenticate": "Bearer"})
        if thing_id == "moved":
            raise HTTPException(303, "sign in first", headers={"Location": "/login"})
        if thing_id == "boom":
            raise RuntimeError("a bug")
        return {"thing_id": thing_id}

    @router.post("/things")
    async def create_thing(body: Body) -> dict[str, int]:
        return {"until": body.until}

    return router


def tend_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(build_router())
    return app


@pytest.fixture
async def errors_client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=tend_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


class TestFieldOf:
    @pytest.mark.parametrize(
        ("message", "field"),
        [
            ("until: must be in the future", "until"),
            ("properties.account_id: not a string", "properties.account_id"),
            ("Content-Encoding: 'br' is not supported", "Content-Encoding"),
            ("malformed JSON: Expecting value", None),
            ("unknown or revoked write key", None),
            ("", None),
        ],
    )
    def test_the_field_a_message_starts_with(self, message: str, field: str | None) -> None:
        assert field_of(message) == field


class TestApiError:
    def test_tend_shape_with_field(self) -> None:
        err = ApiError.invalid("until", "must be in the future")
        assert (err.status, err.body()) == (
            422,
            {
                "error": {
                    "code": "invalid",
                    "message": "until: must be in the future",
                    "field": "until",
                }
            },
        )

    def test_field_left_out_when_none_is_at_fault(self) -> None:
        assert ApiError.not_found("account", "acme").body() == {
            "error": {"code": "not_found", "message": "account 'acme' not found"}
        }

    @pytest.mark.parametrize(
        ("status", "code"),
        [(400, "bad_request"), (401, "unauthorized"), (409, "conflict"), (418, "bad_request")],
    )
    def test_code_follows_the_status(self, status: int, code: str) -> None:
        assert ApiError(status, "x").code == code

    def test_segment_shape_keeps_error_a_string(self) -> None:
        body = ApiError(400, "batch: required").body(SEGMENT)
        assert body == {
            "success": False,
            "error": "batch: required",
            "code": "bad_request",
            "field": "batch",
        }


class TestHandlers:
    async def test_404_of_an_api_error(self, errors_client: httpx.AsyncClient) -> None:
        r = await errors_client.get("/things/missing")
        assert r.status_code == 404
        assert r.json() == {"error": {"code": "not_found", "message": "thing 'missing' not found"}}

    async def test_409(self, errors_client: httpx.AsyncClient) -> None:
        r = await errors_client.get("/things/resolved")
        assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"

    async def test_http_exception_gets_the_shape_and_its_field(
        self, errors_client: httpx.AsyncClient
    ) -> None:
        r = await errors_client.get("/things/http")
        assert r.status_code == 422
        assert r.json()["error"] == {
            "code": "invalid",
            "message": "from: must not be after to",
            "field": "from",
        }

    async def test_http_exception_keeps_its_headers(self, errors_client: httpx.AsyncClient) -> None:
        r = await errors_client.get("/things/token")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["code"] == "unauthorized"

    async def test_redirect_stays_a_redirect(self, errors_client: httpx.AsyncClient) -> None:
        r = await errors_client.get("/things/moved")
        assert r.status_code == 303 and r.headers["location"] == "/login"

    async def test_query_validation_names_the_field(self, errors_client: httpx.AsyncClient) -> None:
        r = await errors_client.get("/things/a", params={"limit": "11"})
        assert r.status_code == 422
        error = r.json()["error"]
        assert error["code"] == "invalid" and error["field"] == "limit"
        assert error["message"].startswith("limit: ")

    @pytest.mark.parametrize(
        ("body", "field"), [({}, "until"), ({"until": "soon"}, "until"), (None, "body")]
    )
    async def test_body_validation_names_the_field(
        self, errors_client: httpx.AsyncClient, body: Any, field: str
    ) -> None:
        r = await errors_client.post("/things", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == field

    async def test_malformed_json_names_the_body(self, errors_client: httpx.AsyncClient) -> None:
        r = await errors_client.post(
            "/things", content=b'{"until": ', headers={"content-type": "application/json"}
        )
        assert r.status_code == 422
        error = r.json()["error"]
        assert error["field"] == "body" and error["message"].startswith("body: malformed JSON")

    async def test_lone_surrogate_is_answered_not_a_500(
        self, errors_client: httpx.AsyncClient
    ) -> None:
        r = await errors_client.post(
            "/things",
            content=b'{"until": "\\ud800"}',
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422 and r.json()["error"]["field"] == "until"

    async def test_unknown_path_and_method(self, errors_client: httpx.AsyncClient) -> None:
        r = await errors_client.get("/nowhere")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = await errors_client.delete("/things")
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"

    async def test_unexpected_exception_is_a_500_in_the_shape(
        self, errors_client: httpx.AsyncClient
    ) -> None:
        r = await errors_client.get("/things/boom")
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "internal"
        assert "a bug" not in r.text


class TestErrorRouteInAnotherApp:
    """The read and alerts APIs keep the tend shape when included in an app whose other
    paths answer in the Segment shape."""

    async def test_tend_shape_inside_a_segment_app(self) -> None:
        app = FastAPI()
        install_error_handlers(app, segment_paths={"/things", "/nowhere"})
        app.include_router(build_router())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.get("/things/missing")
            assert r.json()["error"]["code"] == "not_found"
            r = await c.get("/things/a", params={"limit": "0"})
            assert r.status_code == 422 and r.json()["error"]["field"] == "limit"
            r = await c.get("/nowhere")  # the app's own handler: Segment's shape
            assert r.status_code == 404 and r.json()["success"] is False
            r = await c.post("/things", json={})  # a route of the router: tend's shape
            assert r.status_code == 422 and r.json()["error"]["field"] == "until"


class TestIngestApp:
    async def test_segment_shape_on_tracking_paths_tend_shape_elsewhere(self) -> None:
        app = create_ingest_app(Settings(), config=TendConfig())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.get("/v1/batch")
            assert r.status_code == 405
            assert r.json() == {
                "success": False,
                "error": "Method Not Allowed",
                "code": "method_not_allowed",
            }
            r = await c.post("/v1/nowhere", json={})
        assert r.status_code == 404
        assert r.json() == {"error": {"code": "not_found", "message": "Not Found"}}

    def test_openapi_documents_the_segment_error(self) -> None:
        doc = create_ingest_app(Settings(), config=TendConfig()).openapi()
        responses = doc["paths"]["/v1/batch"]["post"]["responses"]
        for status in ("400", "401", "413", "429", "503"):
            content = responses[status]["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/SegmentError"}
            assert content["example"]["success"] is False
        assert doc["paths"]["/v1/batch"]["post"]["operationId"] == "batch"


class TestOpsApps:
    """The scorer and alerts processes serve only ops routes; anything else is a 404 in the
    tend shape."""

    @pytest.mark.parametrize("service", ["scorer", "alerts"])
    async def test_unknown_path(self, service: str) -> None:
        module = importlib.import_module(f"services.{service}.app")
        app = module.create_app(Settings(), config=TendConfig())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.get("/v1/accounts")
        assert r.status_code == 404
        assert r.json() == {"error": {"code": "not_found", "message": "Not Found"}}


class TestOpenApi:
    def test_errors_documented_with_the_model_and_no_default_422(self) -> None:
        doc = tend_app().openapi()
        responses = doc["paths"]["/things/{thing_id}"]["get"]["responses"]
        for status in ("401", "404", "409", "422"):
            content = responses[status]["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/TendError"}
            assert set(content["example"]) == {"error"}
        assert "HTTPValidationError" not in doc["components"]["schemas"]

    def test_operation_ids_are_the_function_names(self) -> None:
        doc = tend_app().openapi()
        assert doc["paths"]["/things/{thing_id}"]["get"]["operationId"] == "get_thing"
        assert doc["paths"]["/things"]["post"]["operationId"] == "create_thing"

"""Console sign-in through an OpenID Connect provider: the Authorization Code flow with PKCE.

1. ``/console/oidc/start`` reads the provider's discovery document, makes a state, a nonce and a
   PKCE verifier, keeps them in a signed, HttpOnly cookie that lives ten minutes (itsdangerous,
   keyed like the session cookie) and sends the browser to the authorization endpoint with the
   S256 challenge.
2. ``/console/oidc/callback`` checks the state against the cookie, trades the code and the
   verifier for tokens at the token endpoint, and verifies the id_token with PyJWT against the
   provider's JWKS: signature (asymmetric algorithms only), issuer, audience, expiry and nonce.
3. The person is the one linked to the token's subject, else the one with the token's email
   (unless the provider says it is unverified), who is linked then. Nobody is created here:
   an admin adds people first (``tend users add --oidc-only``).

Configured by ``TEND_OIDC__*`` (:class:`shared.settings.OidcSettings`); docs/security.md.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import select

from services.web.console import plumbing as web
from shared.api_input import storable_params
from shared.db.models import Person
from shared.people.directory import find_person
from shared.settings import OidcSettings

FLOW_COOKIE = "tend_oidc"
FLOW_MAX_AGE_S = 600
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
"""Asymmetric only: an HS256 token would be 'signed' with the client secret anyone could hold."""

router = APIRouter(
    prefix="/console/oidc", include_in_schema=False, dependencies=[Depends(storable_params)]
)


class OidcError(Exception):
    """A sign-in the provider or its answer did not allow; the message says why."""


@dataclass(frozen=True, slots=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge) of RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class OidcClient:
    """Talks to one provider: its discovery document (read once), its keys (read again when a
    token names a key id it does not know), the code exchange and the id_token's checks."""

    def __init__(self, settings: OidcSettings) -> None:
        assert settings.issuer and settings.client_id
        self.settings = settings
        self.issuer = settings.issuer
        self.client_id = settings.client_id
        self._provider: Provider | None = None
        self._keys: jwt.PyJWKSet | None = None

    async def _get_json(self, url: str, **kwargs: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=self.settings.timeout_s) as http:
            try:
                r = await (http.post(url, **kwargs) if kwargs else http.get(url))
            except httpx.HTTPError as err:
                raise OidcError(f"the provider did not answer ({type(err).__name__})") from None
        if r.status_code != 200:
            raise OidcError(f"the provider answered {r.status_code} at {url}")
        try:
            body = r.json()
        except ValueError:
            raise OidcError(f"the provider's answer at {url} is not JSON") from None
        if not isinstance(body, dict):
            raise OidcError(f"the provider's answer at {url} is not an object")
        return body

    async def provider(self) -> Provider:
        if self._provider is None:
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            doc = await self._get_json(url)
            if doc.get("issuer") != self.issuer:
                raise OidcError("the discovery document names another issuer")
            try:
                self._provider = Provider(
                    self.issuer,
                    str(doc["authorization_endpoint"]),
                    str(doc["token_endpoint"]),
                    str(doc["jwks_uri"]),
                )
            except KeyError as err:
                raise OidcError(f"the discovery document has no {err.args[0]}") from None
        return self._provider

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        provider = await self.provider()
        for refresh in (False, True):
            if self._keys is None or refresh:
                try:
                    self._keys = jwt.PyJWKSet.from_dict(await self._get_json(provider.jwks_uri))
                except jwt.PyJWKSetError as err:
                    raise OidcError(f"the provider's keys are unusable: {err}") from None
            for key in self._keys.keys:
                if kid is None or key.key_id == kid:
                    return key
        raise OidcError("the id_token is signed with a key the provider does not publish")

    async def authorize_url(self, redirect_uri: str, state: str, nonce: str, challenge: str) -> str:
        provider = await self.provider()
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid email profile",
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        joiner = "&" if "?" in provider.authorization_endpoint else "?"
        return provider.authorization_endpoint + joiner + urlencode(query)

    async def exchange(self, code: str, redirect_uri: str, verifier: str) -> str:
        """The id_token the token endpoint gives for ``code`` and the PKCE ``verifier``."""
        provider = await self.provider()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
            "code_verifier": verifier,
        }
        secret = self.settings.client_secret
        auth = (self.client_id, secret.get_secret_value()) if secret is not None else None
        answer = await self._get_json(provider.token_endpoint, data=form, auth=auth)
        token = answer.get("id_token")
        if not isinstance(token, str):
            raise OidcError("the token endpoint gave no id_token")
        return token

    async def verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The id_token's claims once its signature, issuer, audience, expiry and nonce hold."""
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as err:
            raise OidcError(f"the id_token is malformed: {err}") from None
        key = await self._key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=ALGORITHMS,
                audience=self.client_id,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
                leeway=60,
            )
        except jwt.PyJWTError as err:
            raise OidcError(f"the id_token does not hold: {err}") from None
        if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise OidcError("the id_token's nonce is not this sign-in's")
        return claims


def client_of(request: Request) -> OidcClient | None:
    found: OidcClient | None = getattr(request.app.state, "oidc", None)
    return found


def _flows(request: Request) -> URLSafeTimedSerializer:
    key = web.api_token(request)
    assert key is not None
    return URLSafeTimedSerializer(key, salt="tend console oidc flow v1")


def _redirect_uri(request: Request, oidc: OidcClient) -> str:
    return oidc.settings.redirect_url or str(request.url_for("oidc_callback"))


@router.get("/start")
async def oidc_start(request: Request, next: str | None = None) -> Response:
    oidc = client_of(request)
    if oidc is None or not web.api_token(request):
        return web.error(request, 404, "single sign-on is not configured", None)
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier, challenge = pkce_pair()
    try:
        url = await oidc.authorize_url(_redirect_uri(request, oidc), state, nonce, challenge)
    except OidcError as err:
        return web.login(
            request, f"Single sign-on is unavailable: {err}.", web.safe_next(next), 502
        )
    flow = {"state": state, "nonce": nonce, "verifier": verifier, "next": web.safe_next(next)}
    response = web.redirect(url)
    response.set_cookie(
        FLOW_COOKIE,
        _flows(request).dumps(flow),
        max_age=FLOW_MAX_AGE_S,
        path="/console/oidc",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/callback", name="oidc_callback")
async def oidc_callback(
    request: Request, code: str | None = None, state: str | None = None, error: str | None = None
) -> Response:
    oidc = client_of(request)
    if oidc is None or not web.api_token(request):
        return web.error(request, 404, "single sign-on is not configured", None)
    try:
        flow: dict[str, str] = _flows(request).loads(
            request.cookies.get(FLOW_COOKIE, ""), max_age=FLOW_MAX_AGE_S
        )
    except BadData:
        return web.login(
            request, "That sign-in expired or did not start here; try again.", "/console/", 400
        )
    next_url = web.safe_next(flow.get("next"))
    if error or not code or not state or not secrets.compare_digest(state, flow["state"]):
        why = f"the provider said {error}" if error else "the answer did not match this sign-in"
        return web.login(request, f"Single sign-on failed: {why}.", next_url, 400)
    try:
        id_token = await oidc.exchange(code, _redirect_uri(request, oidc), flow["verifier"])
        claims = await oidc.verify(id_token, flow["nonce"])
    except OidcError as err:
        return web.login(request, f"Single sign-on failed: {err}.", next_url, 401)
    async with web.database(request)() as db, db.begin():
        person = await _person_of(db, claims)
        if person is None:
            return web.login(
                request,
                "Nobody in tend has this account's email; ask an admin "
                "to add you (tend users add).",
                next_url,
                403,
            )
        if person.disabled_at is not None:
            return web.login(request, "This person is disabled; ask an admin.", next_url, 403)
        person_id = person.id
    response = await web.signed_in(request, person_id, next_url, time.time())
    response.delete_cookie(FLOW_COOKIE, path="/console/oidc")
    return response


async def _person_of(db: Any, claims: dict[str, Any]) -> Person | None:
    """The person linked to the subject, else the one with the (verified) email, linked now."""
    subject = str(claims["sub"])[:255]
    linked: Person | None = await db.scalar(select(Person).where(Person.oidc_subject == subject))
    if linked is not None:
        return linked
    email = claims.get("email")
    if not isinstance(email, str) or claims.get("email_verified") is False:
        return None
    person = await find_person(db, email)
    if person is None or person.oidc_subject is not None:
        return None
    person.oidc_subject = subject
    return person

"""The ``webhooks:`` block of the YAML file: where events go, signed with which secret.

Endpoints come from the operator only (this file), never from event traits or a write key.
Each has a name (used in metrics and logs; the URL is not logged), an ``https`` URL (``http``
only with ``allow_http: true``, for a receiver on the same host), a secret of at least 16
characters (inline, or the name of an environment variable with ``secret_env``) and the event
types it wants (default: all of them).
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from shared.scoring_model import KeyedError

__all__ = ["EVENT_TYPES", "EventType", "WebhookEndpoint", "WebhooksConfig"]

EventType = Literal[
    "alert.opened",
    "alert.acknowledged",
    "alert.snoozed",
    "alert.snooze_ended",
    "alert.resolved",
    "score.band_changed",
]
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
MIN_SECRET = 16


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookEndpoint(_Section):
    name: str = Field(description="Lower-case letters, digits, - and _ (metrics, logs).")
    url: str = Field(description="Where events are POSTed: https (http with allow_http).")
    secret: SecretStr | None = Field(None, description="The signing secret (or secret_env).")
    secret_env: str | None = Field(None, description="An environment variable holding it.")
    events: tuple[EventType, ...] = Field(EVENT_TYPES, description="The event types wanted.")
    allow_http: bool = Field(False, description="Accept an http:// URL (a local receiver).")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use 1 to 50 lower-case letters, digits, - and _")
        return v

    @field_validator("events")
    @classmethod
    def _some_events(cls, v: tuple[EventType, ...]) -> tuple[EventType, ...]:
        if not v:
            raise ValueError("list at least one event type")
        return tuple(dict.fromkeys(v))

    @model_validator(mode="after")
    def _url_and_secret(self) -> WebhookEndpoint:
        problem = url_problem(self.url, allow_http=self.allow_http)
        if problem:
            raise KeyedError("url", problem)
        if (self.secret is None) == (self.secret_env is None):
            raise KeyedError("secret", "give exactly one of secret and secret_env")
        if len(self.signing_secret()) < MIN_SECRET:
            where = f"the variable {self.secret_env}" if self.secret_env else "it"
            key = "secret_env" if self.secret_env else "secret"
            raise KeyedError(key, f"{where} must hold at least {MIN_SECRET} characters")
        return self

    def signing_secret(self) -> str:
        if self.secret is not None:
            return self.secret.get_secret_value()
        return os.environ.get(self.secret_env or "", "")

    def wants(self, event_type: str) -> bool:
        return event_type in self.events


def url_problem(url: str, *, allow_http: bool) -> str | None:
    """Why ``url`` cannot be a webhook endpoint, or None."""
    if len(url) > 2000 or any(c.isspace() for c in url):
        return "must be one URL of at most 2000 characters, without spaces"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a bad port
    except ValueError as err:
        return f"not a URL ({err})"
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        return "must start with https://" + (" or http://" if allow_http else "")
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user or password (they would end up in logs)"
    if parts.fragment:
        return "must not have a #fragment"
    del port
    return None


class WebhooksConfig(_Section):
    """``webhooks:``: the endpoints and how deliveries are tried."""

    endpoints: tuple[WebhookEndpoint, ...] = ()
    timeout_s: float = Field(10.0, gt=0, le=120, description="One POST's timeout.")
    max_attempts: int = Field(12, ge=1, le=100, description="Tries before a delivery fails.")
    initial_backoff_s: float = Field(5.0, gt=0, description="First wait after a failure.")
    max_backoff_s: float = Field(3600.0, gt=0, description="Longest wait between tries.")
    tolerance_s: int = Field(
        300, ge=30, description="How old a signature timestamp receivers should accept."
    )

    @model_validator(mode="before")
    @classmethod
    def _list_is_endpoints(cls, data: Any) -> Any:
        # `webhooks:` given as a bare list means its endpoints.
        return {"endpoints": data} if isinstance(data, list) else data

    @field_validator("endpoints")
    @classmethod
    def _unique_names(cls, v: tuple[WebhookEndpoint, ...]) -> tuple[WebhookEndpoint, ...]:
        names = [e.name for e in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"endpoint names must be unique: {', '.join(twice)}")
        return v

    def endpoint(self, name: str) -> WebhookEndpoint | None:
        return next((e for e in self.endpoints if e.name == name), None)

    def wanting(self, event_type: str) -> list[WebhookEndpoint]:
        return [e for e in self.endpoints if e.wants(event_type)]

"""Slack interactivity: the Acknowledge and Snooze buttons on alert messages.

``POST /v1/slack/interactivity`` is the app's Request URL (docs/slack.md). One click, numbered:

1. Verify the request is Slack's: the v0 signature of the raw body with
   ``TEND_SLACK__SIGNING_SECRET``, its timestamp within 5 minutes (:mod:`shared.slack`).
   Unsigned, forged or stale: 401, nothing done; no secret configured: 401 for every request.
2. Read the form field ``payload`` (JSON). Anything but a click on one of tend's buttons
   (:data:`shared.slack.ACTIONS`) is answered 200 and ignored, as Slack expects.
3. Move the account's incident (every active alert, as ``POST /v1/alerts/accounts/{id}/ack``
   does) through the shared life cycle, on locked rows, and record who did it
   (``alert_actions``: the Slack member id and name; the audit log: actor ``slack:<id>``,
   via ``slack``), all in one transaction.
4. Answer 200 at once; then, through the payload's ``response_url``, replace the message with
   the same one whose tend buttons give way to "Acknowledged by <name>" or "Snoozed until
   <time> by <name>". A click that cannot act (the alert resolved meanwhile) gets a reply only
   the clicker sees, and the message stays as it was.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

import httpx
from fastapi import APIRouter, BackgroundTasks, Header, Request, Response
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.web.deps import clock_of, webhooks_of
from shared import format as fmt
from shared.alerting.lifecycle import AlertState, acknowledge, snooze
from shared.alerting.state import move_incident
from shared.api_errors import ApiError, ErrorRoute, error_responses, operation_id
from shared.api_input import is_id, storable
from shared.db.models import AlertAction
from shared.people import audit
from shared.people.caller import Caller
from shared.read import alerts
from shared.slack import (
    ACK_ACTION,
    ACTIONS,
    SNOOZE_ACTIONS,
    SignatureError,
    escape_mrkdwn,
    verify,
)
from shared.webhooks.endpoints import WebhooksConfig
from shared.webhooks.outbox import AlertChange, record_alert_changes

__all__ = ["Click", "router", "updated_message"]

log = logging.getLogger("tend.web.slack")

MAX_BODY_BYTES = 256_000
"""Slack's interaction payloads are a few kilobytes; a larger body is not one."""
RESPONSE_TIMEOUT_S = 10.0

router = APIRouter(
    prefix="/v1/slack",
    tags=["slack"],
    route_class=ErrorRoute,
    generate_unique_id_function=operation_id,
    responses=error_responses(400, 401, 413),
)


@dataclass(frozen=True, slots=True)
class Click:
    """A click on one of tend's buttons, as Slack reported it."""

    action_id: str
    alert_id: str
    user_id: str
    user_name: str
    team_id: str | None
    response_url: str | None
    blocks: list[dict[str, Any]]

    @classmethod
    def of(cls, payload: dict[str, Any]) -> Click | None:
        """The click in a ``block_actions`` payload; None for anything else."""
        if payload.get("type") != "block_actions":
            return None
        actions = payload.get("actions")
        ours = [
            a
            for a in (actions if isinstance(actions, list) else [])
            if isinstance(a, dict) and a.get("action_id") in ACTIONS
        ]
        if not ours:
            return None
        user = payload.get("user")
        user_id = user.get("id") if isinstance(user, dict) else None
        if not isinstance(user_id, str) or not user_id or not storable(user_id):
            raise ApiError(400, "payload.user.id: missing", code="bad_request")
        assert isinstance(user, dict)
        name = next(
            (
                n
                for n in (user.get("name"), user.get("username"))
                if isinstance(n, str) and n and storable(n)
            ),
            user_id,
        )
        team = payload.get("team")
        team_id = team.get("id") if isinstance(team, dict) else None
        message = payload.get("message")
        blocks = message.get("blocks") if isinstance(message, dict) else None
        url = payload.get("response_url")
        return cls(
            action_id=str(ours[0]["action_id"]),
            alert_id=str(ours[0].get("value") or ""),
            user_id=user_id[:100],
            user_name=name[:200],
            team_id=team_id[:100] if isinstance(team_id, str) else None,
            response_url=url if isinstance(url, str) and url.startswith("http") else None,
            blocks=[b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else [],
        )


def updated_message(blocks: list[dict[str, Any]], line: str) -> dict[str, Any]:
    """The message with tend's buttons gone (the console link stays) and ``line`` under it."""
    kept: list[dict[str, Any]] = []
    for block in blocks:
        if block.get("type") == "actions":
            elements = [
                e
                for e in block.get("elements", [])
                if isinstance(e, dict) and e.get("action_id") not in ACTIONS
            ]
            if elements:
                kept.append({**block, "elements": elements})
            continue
        kept.append(block)
    kept.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line}]})
    return {"replace_original": True, "text": line, "blocks": kept}


def _only_to_clicker(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "replace_original": False, "text": text}


def _form_payload(body: bytes) -> dict[str, Any]:
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=False)
    except UnicodeDecodeError:
        raise ApiError(
            400, "payload: the body is not UTF-8 form data", code="bad_request"
        ) from None
    values = form.get("payload")
    if not values:
        raise ApiError(400, "payload: missing (Slack sends payload=<JSON>)", code="bad_request")
    try:
        payload = json.loads(values[0])
    except ValueError:
        raise ApiError(400, "payload: not JSON", code="bad_request") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "payload: not a JSON object", code="bad_request")
    return payload


def _check_signature(request: Request, body: bytes, timestamp: str | None, sig: str | None) -> None:
    secret: SecretStr | None = getattr(request.app.state, "slack_signing_secret", None)
    if secret is None:
        # Closed, not open: without the secret no request can be shown to be Slack's.
        raise ApiError(
            401,
            "Slack interactivity is not configured: no request can be verified without "
            "TEND_SLACK__SIGNING_SECRET",
            code="not_configured",
        )
    try:
        verify(secret.get_secret_value(), timestamp, sig, body, time.time())
    except SignatureError as err:
        raise ApiError(401, str(err), code="bad_signature") from None


async def _act(
    session: AsyncSession, click: Click, now: datetime, hooks: WebhooksConfig | None = None
) -> dict[str, Any]:
    """Move the incident of the clicked alert's account; the reply for ``response_url``."""
    who = escape_mrkdwn(click.user_name)
    if click.action_id == ACK_ACTION:
        move: Callable[[AlertState, datetime], AlertState] = acknowledge
        action, until, line = "acknowledge", None, f":white_check_mark: Acknowledged by {who}"
    else:
        wait, _ = SNOOZE_ACTIONS[click.action_id]
        until = now + wait
        reason = f"snoozed from Slack by {click.user_name}"[:1000]
        move = lambda s, at: snooze(s, until, reason, at)  # noqa: E731
        action = "snooze"
        line = f":zzz: Snoozed until {fmt.timestamp(until)} by {who}"
    async with session.begin():
        row = (
            await alerts.get_alert(session, int(click.alert_id)) if is_id(click.alert_id) else None
        )
        if row is None or row.status == "none":
            return _only_to_clicker("tend does not know this alert any more.")
        changes: list[AlertChange] = []
        moved = await move_incident(session, row.account_id, move, now, changes)
        done = [r for r in moved if r.status == ("acknowledged" if until is None else "snoozed")]
        if not done:
            return _only_to_clicker(
                f"Nothing to {action}: the alerts of {escape_mrkdwn(row.account_id)} are "
                f"{row.status} now."
            )
        session.add_all(
            AlertAction(
                alert_id=r.id,
                action=action,
                snoozed_until=until,
                source="slack",
                actor_id=click.user_id,
                actor_name=click.user_name,
                team_id=click.team_id,
                created_at=now,
            )
            for r in done
        )
        # The audit log names a Slack member by id: they may be no tend person (yet).
        slack_member = Caller(role="csm", email=f"slack:{click.user_id}", name=click.user_name)
        for r in done:
            move_name = "ack" if until is None else "snooze"
            by = f"from Slack by {click.user_name}"[:1000]
            audit.record_alert_move(session, slack_member, r, move_name, by, now, "slack")
        # The same webhook events as a move from the API or the console.
        record_alert_changes(session, hooks, changes, now)
    log.info(
        "slack %s of account %s by %s (%d alerts)",
        action,
        row.account_id,
        click.user_id,
        len(done),
        extra={"account_id": row.account_id, "alert_id": row.id},
    )
    return updated_message(click.blocks, line)


async def _respond(url: str, message: dict[str, Any]) -> None:
    """Post the reply to Slack's ``response_url`` (valid 30 minutes, 5 uses)."""
    try:
        async with httpx.AsyncClient(timeout=RESPONSE_TIMEOUT_S, follow_redirects=False) as c:
            answer = await c.post(url, json=message)
        if answer.status_code >= 300:
            log.warning("Slack refused the message update: HTTP %s", answer.status_code)
    except httpx.HTTPError as err:
        log.warning("could not update the Slack message: %s", type(err).__name__)


@router.post(
    "/interactivity",
    summary="Slack's button clicks on alert messages (signed by Slack)",
    status_code=200,
    response_class=Response,
)
async def interactivity(
    request: Request,
    background: BackgroundTasks,
    x_slack_request_timestamp: Annotated[str | None, Header()] = None,
    x_slack_signature: Annotated[str | None, Header()] = None,
) -> Response:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, f"body: larger than {MAX_BODY_BYTES} bytes", code="too_large")
    _check_signature(request, body, x_slack_request_timestamp, x_slack_signature)
    click = Click.of(_form_payload(body))
    if click is not None:
        # A session only now: nothing unsigned reaches the database.
        sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
        async with sessions() as session:
            reply = await _act(session, click, clock_of(request).now(), webhooks_of(request))
        if click.response_url is not None:
            background.add_task(_respond, click.response_url, reply)
    return Response(status_code=200)

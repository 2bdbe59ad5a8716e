"""End to end on PostgreSQL: 12 weeks of synthetic usage through the scorer onto the scores topic,
then the alerts service. A plateauing account gets exactly one ``login_plateau`` alert, posted to
a loopback Slack webhook with Block Kit and mailed to its CSM through a real SMTP server; a
healthy account gets none; once the account has no room left to grow (fewer seats), the
plateau alert resolves and says so."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select

from services.alerts.consumer import AlertsService
from services.alerts.dispatcher import Dispatcher
from services.alerts.notifiers.email import EmailNotifier, SmtpSettings
from services.alerts.notifiers.slack import SlackNotifier
from services.alerts.routing import Defaults
from services.scorer.rescorer import Rescorer
from shared import topics
from shared.clock import FixedClock
from shared.db.models import Alert, AlertNotification, BusRecord, ConsumerOffset
from shared.events import CanonicalEvent
from tests.scorer.synthetic import (
    CONFIG,
    Archetype,
    Replay,
    Sessions,
    Stack,
    end_offsets,
    generate,
    import_profiles,
    in_process_stack,
    publish,
    run_scorer_until_consumed,
    to_message,
)
from tests.support.servers import SlackWebhookServer, SmtpServer


def noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=UTC)


async def score_days(stack: Stack, *days: date) -> None:
    """The scorer's sweep of each day, in order: one score per account per day on the topic,
    swept the day after, so the score is final (alerts judge final days only)."""
    for day in days:
        clock = FixedClock(noon(day + timedelta(days=1)))
        rescorer = Rescorer(stack.sessions, stack.producer, CONFIG, clock)
        await rescorer.sweep(day)


async def scores_end(sessions: Sessions) -> dict[tuple[str, int], int]:
    async with sessions() as session:
        rows = await session.execute(
            select(BusRecord.partition, func.max(BusRecord.offset) + 1)
            .where(BusRecord.topic == topics.SCORES)
            .group_by(BusRecord.partition)
        )
        return {(topics.SCORES, int(p)): int(e) for p, e in rows.all()}


async def alerts_caught_up(sessions: Sessions, ends: dict[tuple[str, int], int]) -> bool:
    async with sessions() as session:
        rows = await session.execute(
            select(
                ConsumerOffset.topic, ConsumerOffset.partition, ConsumerOffset.next_offset
            ).where(ConsumerOffset.group_id == "tend-alerts")
        )
        stored = {(t, p): o for t, p, o in rows.all()}
    return all(stored.get(k, 0) >= v for k, v in ends.items())


async def outbox_settled(sessions: Sessions) -> bool:
    async with sessions() as session:
        pending = await session.scalar(
            select(func.count())
            .select_from(AlertNotification)
            .where(AlertNotification.status == "pending")
        )
    return pending == 0


async def run_alerts(
    stack: Stack,
    day: date,
    slack: SlackWebhookServer,
    smtp: SmtpServer,
    defaults: Defaults | None = None,
) -> None:
    """The alerts service until it has consumed every score and delivered every notification
    (default route: ``slack``, unless ``defaults`` says otherwise)."""
    clock = FixedClock(noon(day))
    email = EmailNotifier(
        SmtpSettings(host="127.0.0.1", port=smtp.port, from_address="tend@v.example", tls="none")
    )
    slack_notifier = SlackNotifier(min_interval_s=0)
    dispatcher = Dispatcher(
        stack.sessions, {"slack": slack_notifier, "email": email}, clock, idle_s=0.1
    )
    service = AlertsService(
        stack.bus,
        stack.sessions,
        stack.producer,
        CONFIG.rules,
        clock,
        defaults=defaults or Defaults(slack_webhook_url=slack.url()),
        console_url="http://console.example",
        dispatcher=dispatcher,
        max_wait_s=0.1,
    )
    ends = await scores_end(stack.sessions)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        for _ in range(300):
            if task.done():
                break
            if await alerts_caught_up(stack.sessions, ends) and await outbox_settled(
                stack.sessions
            ):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the alerts service did not catch up")
    finally:
        stop.set()
        await task


async def alerts_by_account(sessions: Sessions) -> dict[str, dict[str, Alert]]:
    async with sessions() as session:
        rows = await session.scalars(select(Alert))
        out: dict[str, dict[str, Alert]] = {}
        for a in rows:
            out.setdefault(a.account_id, {})[f"{a.rule}:{a.feature}".rstrip(":")] = a
        return out


def seats_changed(replay: Replay, account_id: str, seats: int, day: date) -> CanonicalEvent:
    at = noon(day)
    return CanonicalEvent(
        event_id=f"{account_id}-seats-{seats}",
        type="group",
        account_id=account_id,
        user_id=f"{account_id}-u00",
        occurred_at=at,
        received_at=at,
        traits={"seats": seats},
    )


def check_plateau_delivered(
    alerts: dict[str, dict[str, Alert]],
    healthy: str,
    account: Any,
    slack: SlackWebhookServer,
    smtp: SmtpServer,
) -> None:
    """The plateauing ``account`` has one open login_plateau alert, posted once to Slack with
    Block Kit and mailed once (text and HTML) to its CSM; the ``healthy`` account has none."""
    plateau = account.account_id
    assert {r: a.status for r, a in alerts.get(healthy, {}).items()} == {}
    mine = alerts[plateau]
    assert mine["login_plateau"].status == "open"
    assert "weekly actives 10, 10, 10, 10" in mine["login_plateau"].reason
    assert "20%" in mine["login_plateau"].reason and "50 seats" in mine["login_plateau"].reason

    plateau_posts = [r.json() for r in slack.requests if "login plateau" in r.body.decode()]
    assert len(plateau_posts) == 1
    post = plateau_posts[0]
    assert post["blocks"][0]["type"] == "header"
    assert "Plateauing 0" in str(post["blocks"])
    assert str(account.renewal_date) in str(post) or "29 days" in str(post)
    assert f"http://console.example/accounts/{plateau}" in str(post["blocks"])
    plateau_mails = [m for m in smtp.messages if "login_plateau" in m.message["X-Tend-Rule"]]
    assert len(plateau_mails) == 1
    mail = plateau_mails[0]
    assert mail.rcpt_tos == [account.csm_email]
    text = mail.message.get_body(("plain",))
    html = mail.message.get_body(("html",))
    assert text is not None and html is not None
    # The mail says what held on the day the alert opened (a backfilled day may come first,
    # depending on when the re-scorer ran), so only its shape is fixed.
    assert re.search(r"weekly actives (\d+, ){3}\d+", text.get_content())
    assert "Plateauing 0" in html.get_content()


def check_plateau_resolved(
    alerts: dict[str, dict[str, Alert]],
    plateau: str,
    slack: SlackWebhookServer,
    posts_before: int,
) -> None:
    """The plateau alert resolved by its condition, with exactly one resolve post since."""
    assert alerts[plateau]["login_plateau"].status == "resolved"
    assert alerts[plateau]["login_plateau"].resolved_by == "condition"
    resolved_posts = [
        r.body.decode() for r in slack.requests[posts_before:] if "login plateau" in r.body.decode()
    ]
    assert len(resolved_posts) == 1
    assert "resolved" in resolved_posts[0].lower()


class TestEndToEnd:
    async def test_plateau_alerted_once_on_slack_and_email_healthy_none_then_resolved(
        self, fresh_pg: str, slack: SlackWebhookServer, smtp: SmtpServer
    ) -> None:
        replay = generate(
            f"e2e{uuid.uuid4().hex[:6]}",
            archetypes=(Archetype.PLATEAUING, Archetype.HEALTHY_STEADY),
            late_share=0,
        )
        by = replay.by_archetype()
        plateau, healthy = by[Archetype.PLATEAUING][0], by[Archetype.HEALTHY_STEADY][0]
        [account] = [a for a in replay.accounts if a.account_id == plateau]
        d1, d2 = replay.end, replay.end + timedelta(days=1)
        async with in_process_stack(fresh_pg) as stack:
            await import_profiles(stack.sessions, replay)
            deliveries = await publish(stack.producer, topics.EVENTS, replay.messages())
            await run_scorer_until_consumed(stack, replay, end_offsets(deliveries), "tend-scorer")
            await score_days(stack, d1, d2)  # the condition must hold on 2 evaluations
            await run_alerts(stack, d2, slack, smtp)
            alerts = await alerts_by_account(stack.sessions)

            check_plateau_delivered(alerts, healthy, account, slack, smtp)

            # Seats cut to 12: 10 active of 12 leaves no room to grow, so it is no plateau.
            # It resolves once clear for keep_firing_for_days (3) days.
            d3, d4, d5 = (d2 + timedelta(days=n) for n in (1, 2, 3))
            more = await publish(
                stack.producer, topics.EVENTS, [to_message(seats_changed(replay, plateau, 12, d3))]
            )
            await run_scorer_until_consumed(stack, replay, end_offsets(more), "tend-scorer")
            await score_days(stack, d3, d4, d5)
            posts_before = len(slack.requests)
            await run_alerts(stack, d5, slack, smtp)
            alerts = await alerts_by_account(stack.sessions)

        check_plateau_resolved(alerts, plateau, slack, posts_before)

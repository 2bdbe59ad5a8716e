"""``tend demo``: feed a running tend realistic accounts and weeks of usage (see
:mod:`services.cli.demo_plan` and :mod:`services.cli.demo_send`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from services.cli.common import ConfigFailure, Failure

if TYPE_CHECKING:
    from services.cli.demo_outcomes import DemoOutcome


@click.command()
@click.option(
    "--accounts", default=40, show_default=True, type=click.IntRange(1, 5000), help="Accounts."
)
@click.option(
    "--weeks", default=16, show_default=True, type=click.IntRange(6, 52), help="Weeks of history."
)
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="tend's URL.")
@click.option(
    "--write-key",
    envvar="TEND_WRITE_KEY",
    show_envvar=True,
    help="A write key: the one `tend up` printed, or `tend keys create demo`.",
)
@click.option(
    "--api-token",
    envvar="TEND_API_TOKEN",
    show_envvar=True,
    help="The API token: the demo sets each account's CSM and records its outcomes with it, "
    "as an operator would.",
)
@click.option("--seed", default=1, show_default=True, type=int, help="Same seed, same data.")
@click.option("--gzip/--no-gzip", "use_gzip", default=True, show_default=True)
def demo(
    accounts: int,
    weeks: int,
    url: str,
    write_key: str | None,
    api_token: str | None,
    seed: int,
    use_gzip: bool,
) -> None:
    """Feed a running tend realistic accounts and WEEKS of usage, some drifting toward churn.

    Sends through the ingest HTTP API, like an SDK. For feature breadth and the key-feature
    alerts, run tend with the demo's key features: TEND_CONFIG=deploy/tend.yaml tend up
    (see docs/demo.md). Run it on a fresh database: the usage ends today.
    """
    import sys
    from datetime import UTC, datetime

    from services.cli.demo_outcomes import plan_outcomes
    from services.cli.demo_plan import EXPECTED, KEY_FEATURES, generate, plan_demo
    from services.cli.demo_send import DemoError, DemoSender

    if not write_key:
        raise ConfigFailure(
            "--write-key (or TEND_WRITE_KEY) is required: use the key `tend up` printed at its "
            "first start, or create one with `tend keys create demo`"
        )
    now = datetime.now(UTC)
    plan = plan_demo(accounts, weeks, seed, now.date())
    outcomes = plan_outcomes(plan)
    sender = DemoSender(url, write_key, use_gzip=use_gzip)
    days = weeks * 7
    click.echo(
        f"Sending {accounts} accounts and {weeks} weeks of usage ({plan.start} to {plan.today}) "
        f"to {url} (seed {seed}).",
        err=True,
    )
    try:
        if api_token:
            n = sender.set_profiles(plan.accounts, api_token)
            click.echo(f"Set the profile and CSM of {n} accounts (PATCH /v1/accounts).", err=True)
            recorded = sender.record_outcomes(outcomes, api_token)
            click.echo(
                f"Recorded {recorded} outcomes (POST /v1/accounts/{{id}}/outcomes): "
                f"{_outcome_counts(outcomes)}.",
                err=True,
            )
        else:
            click.echo(
                "No --api-token (TEND_API_TOKEN): accounts get no CSM, so alerts take the "
                "default route (TEND_SLACK_WEBHOOK_URL, TEND_ALERTS__DEFAULT_EMAILS), and no "
                "outcomes are recorded (no churn or retention to show).",
                err=True,
            )
        with click.progressbar(
            generate(plan, now),
            length=days,
            label="Sending usage",
            file=sys.stderr,
            item_show_func=lambda item: None if item is None else f"{item[0]}",
        ) as days_of_calls:
            for _day, calls in days_of_calls:
                sender.send_day(calls)
    except DemoError as err:
        raise Failure(f"demo stopped after {sender.stats.events} events: {err}") from None
    finally:
        sender.close()
    stats = sender.stats
    click.echo("")
    click.echo(
        f"Sent {stats.events} events in {stats.requests} batches in {stats.seconds:.1f} s "
        f"({stats.events_per_s:,.0f} events/s, {stats.retries} retries)."
    )
    click.echo("")
    click.echo("Accounts by archetype (expected band once scored; alerts it shows):")
    for archetype, members in plan.by_archetype().items():
        if not members:
            continue
        band, alerts = EXPECTED[archetype]
        click.echo(f"  {archetype.value:<17} {len(members):>3}  {band:<7} {alerts}")
        click.echo(f"  {'':<17}      e.g. {', '.join(a.account_id for a in members[:3])}")
    click.echo("")
    click.echo("The scorer backfills a score per account-day; give it a few seconds. Then:")
    click.echo(f"    curl -H 'Authorization: Bearer <token>' '{url}/v1/accounts?sort=score'")
    click.echo(f"    console: {url}/console/  (sign in with the API token `tend up` printed)")
    if api_token and outcomes:
        cancelled = [o.account_id for o in outcomes if o.kind == "cancellation"]
        click.echo(
            f"    churn and retention: {url}/console/retention"
            + (f"  (cancelled: {', '.join(cancelled)})" if cancelled else "")
        )
    click.echo(
        f"Key features used: {', '.join(KEY_FEATURES)}. Unless tend runs with them configured "
        "(TEND_CONFIG=deploy/tend.yaml), feature breadth is left out and no "
        "feature_unused alerts open."
    )


def _outcome_counts(outcomes: list[DemoOutcome]) -> str:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.kind] = counts.get(o.kind, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "none"

"""The ``tend`` command line: one console script, one sub-command per process or admin task.

This package is the only place that wires services together. One module per command group:
:mod:`~services.cli.serve` (the service processes: ingest, scorer, alerts, web),
:mod:`~services.cli.up` (everything in one process), :mod:`~services.cli.admin` (migrate, keys,
accounts), :mod:`~services.cli.users` (people and roles), :mod:`~services.cli.demo`,
:mod:`~services.cli.report`, :mod:`~services.cli.rescore`,
:mod:`~services.cli.import_events` (backfill), :mod:`~services.cli.tail` (the last events);
what they share is in :mod:`~services.cli.common`.

Adding a sub-command: write a ``@click.command()`` in the module of its group and register it
below with ``main.add_command``; read configuration through
:func:`~services.cli.common.load_settings` / :func:`~services.cli.common.load_tend_config` so
bad values end as a one-line error and exit code 2, and run async work with
:func:`~services.cli.common.run_db` when it touches the database. Background services of
``tend up`` go in :func:`~services.cli.up.embedded_services`.

Exit codes: 0 done, 1 failed (database unreachable, unknown key id, a service crashed),
2 bad configuration or usage, 3 the HTTP server could not start.
"""

from __future__ import annotations

import click

from services.cli.admin import accounts, keys, migrate
from services.cli.backtest import backtest
from services.cli.common import TendGroup
from services.cli.demo import demo
from services.cli.import_events import import_events
from services.cli.report import report
from services.cli.rescore import rescore
from services.cli.serve import alerts, ingest, scorer, web
from services.cli.tail import tail
from services.cli.up import embedded_services, up
from services.cli.users import users

__all__ = ["embedded_services", "main"]


@click.group(
    cls=TendGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="tend-health", prog_name="tend")
@click.pass_context
def main(ctx: click.Context) -> None:
    """tend: usage telemetry and customer health for SaaS vendors.

    Configuration comes from TEND_* environment variables (see README.md); the scoring model
    and alert rules from the YAML file named by TEND_CONFIG. Start with `tend up`.

    Exit codes: 0 done, 1 failed, 2 bad configuration or usage, 3 the HTTP server could not
    start.
    """
    if ctx.invoked_subcommand is None:  # plain `tend`: the help is the answer, not an error
        click.echo(ctx.get_help())
        ctx.exit(0)


for command in (
    migrate,
    keys,
    users,
    ingest,
    up,
    scorer,
    alerts,
    web,
    rescore,
    accounts,
    demo,
    report,
    import_events,
):
    main.add_command(command)
main.add_command(backtest)
main.add_command(tail)

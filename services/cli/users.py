"""``tend users add|list|disable|enable|role|password``: the people who sign in to the console
and call the APIs (docs/security.md). Every change is in the audit log, by ``cli``."""

from __future__ import annotations

import click

from services.cli.common import ConfigFailure, Failure, load_settings, open_transaction, run_db
from shared.people.caller import ROLES


def _when(value: object) -> str:
    return "-" if value is None else str(value)[:19]


@click.group()
def users() -> None:
    """Manage the people who sign in: admin, leader or csm (a CSM's book is the accounts whose
    profile names their email as CSM)."""


@users.command("add")
@click.argument("email")
@click.option("--name", default="", help="How the console names them (default: the email).")
@click.option("--role", type=click.Choice(ROLES), default="csm", show_default=True)
@click.option("--oidc-only", is_flag=True, help="No password: they sign in by OIDC only.")
def users_add(email: str, name: str, role: str, oidc_only: bool) -> None:
    """Add a person and print their password (this once only; only its hash is kept)."""
    from shared.people import audit, directory
    from shared.people.caller import CLI

    settings = load_settings()
    password = None if oidc_only else directory.generate_password()

    async def work() -> str:
        async with open_transaction(settings.database_url) as session:
            person = await directory.add_person(session, email, name, role, password)
            audit.record(
                session, CLI, "person.add", target=f"person:{person.email}", details={"role": role}
            )
            return person.email

    try:
        added = run_db(settings.database_url, work())
    except directory.PeopleError as err:
        raise ConfigFailure(str(err)) from None
    click.echo(f"Added {added} as {role}.")
    if password is not None:
        click.echo("Their password (store it now; it is not shown again):")
        click.echo("")
        click.echo(f"    {password}")
        click.echo("")


@users.command("list")
def users_list() -> None:
    """List people: id, email, name, role, created, disabled."""
    from shared.people import directory

    settings = load_settings()

    async def work() -> list[tuple[str, ...]]:
        async with open_transaction(settings.database_url) as session:
            return [
                (str(p.id), p.email, p.name, p.role, _when(p.created_at), _when(p.disabled_at))
                for p in await directory.list_people(session)
            ]

    rows = run_db(settings.database_url, work())
    table = [("ID", "EMAIL", "NAME", "ROLE", "CREATED (UTC)", "DISABLED (UTC)"), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(6)]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _change(email: str, what: str, role: str | None = None, password: str | None = None) -> str:
    """Apply one change to the person with ``email``; returns what to print."""
    from shared.people import audit, directory
    from shared.people.caller import CLI

    settings = load_settings()

    async def work() -> str:
        async with open_transaction(settings.database_url) as session:
            person = await directory.find_person(session, email)
            if person is None:
                raise Failure(
                    f"no person with email {email.strip().lower()} (see: tend users list)"
                )
            target = f"person:{person.email}"
            if what == "disable":
                await directory.disable(session, person)
                audit.record(session, CLI, "person.disable", target=target)
                return f"Disabled {person.email}: their sessions and API tokens stop now."
            if what == "enable":
                await directory.enable(session, person)
                audit.record(session, CLI, "person.enable", target=target)
                return f"Enabled {person.email}."
            if what == "password" and password is not None:
                await directory.set_password(session, person, password)
                audit.record(session, CLI, "person.password", target=target)
                return f"New password of {person.email} (shown once):\n\n    {password}\n"
            assert role is not None
            before = person.role
            await directory.set_role(session, person, role)
            audit.record(
                session, CLI, "person.role", target=target, details={"from": before, "to": role}
            )
            return f"{person.email} is now {role} (was {before})."

    try:
        return run_db(settings.database_url, work())
    except directory.PeopleError as err:
        raise ConfigFailure(str(err)) from None


@users.command("disable")
@click.argument("email")
def users_disable(email: str) -> None:
    """Disable a person: their console sessions and API tokens stop working at once."""
    click.echo(_change(email, "disable"))


@users.command("enable")
@click.argument("email")
def users_enable(email: str) -> None:
    """Enable a disabled person again (their revoked tokens stay revoked)."""
    click.echo(_change(email, "enable"))


@users.command("role")
@click.argument("email")
@click.argument("role", type=click.Choice(ROLES))
def users_role(email: str, role: str) -> None:
    """Give a person another role."""
    click.echo(_change(email, "role", role=role))


@users.command("password")
@click.argument("email")
def users_password(email: str) -> None:
    """Give a person a new random password and print it (this once only)."""
    from shared.people.directory import generate_password

    click.echo(_change(email, "password", password=generate_password()))

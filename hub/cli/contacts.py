"""`hub contacts show|resync|erase` over hub.core.contacts."""
from __future__ import annotations

import json
from typing import Any

import click

from hub.core.contacts import erase, resync, resync_all, view
from hub.core.errors import APIError
from hub.cli.terminal import UserError

def in_app(func: Any) -> Any:
    from hub.cli.ops import in_app as base

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except APIError as exc:
            raise click.ClickException(exc.message) from None
    run.__name__, run.__doc__ = func.__name__, func.__doc__
    return base(run)


@click.group("contacts")
def contacts_cli() -> None:
    """One contact: state, sync status per connector, resync, erase."""


@contacts_cli.command("show")
@click.argument("email")
@in_app
def contacts_show(email: str) -> None:
    """The contact's state and, per connector, last push, pending work and failures."""
    click.echo(json.dumps(view(email.strip().lower()), indent=2))


@contacts_cli.command("resync")
@click.argument("email", required=False)
@click.option("--all", "every", is_flag=True, help="every contact the hub holds (shows progress; Ctrl-C stops cleanly)")
@click.option("--connector", "connectors", multiple=True, help="only these connectors (repeatable)")
@click.option("--batch", type=click.IntRange(1, 10_000), default=500, show_default=True,
              help="with --all: contacts a step")
@click.option("--restart", is_flag=True, help="with --all: start from the beginning, not where a stopped run ended")
@in_app
def contacts_resync(email: str | None, every: bool, connectors: tuple[str, ...], batch: int, restart: bool) -> None:
    """Send a contact's current state again (or --all contacts'), even if unchanged."""
    from hub.cli.progress import command

    if bool(email) == every:
        raise UserError("give one contact's EMAIL, or --all for every contact")
    if email:
        names = resync(email.strip().lower(), list(connectors) or None)
        click.echo(f"resync queued for {', '.join(names)}")
        return
    with command("resync", unit="contacts") as progress:
        result = resync_all(progress, list(connectors) or None, batch, restart)
    click.echo(f"{result['contacts']} contacts marked for re-sync on {', '.join(result['connectors'])}; "
               "the workers push them")


@contacts_cli.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="do not ask")
@in_app
def contacts_erase(email: str, yes: bool) -> None:
    """Forget the contact in the hub and delete them at every connector (irreversible)."""
    if not yes:
        click.confirm(f"erase {email} everywhere? This cannot be undone", abort=True)
    result = erase(email.strip().lower())
    click.echo(f"erased; deletion queued for {', '.join(result['connectors'])} (event {result['event_id']})")

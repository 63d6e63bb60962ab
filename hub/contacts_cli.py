"""`hub contacts show|resync|erase` over hub.contacts."""
from __future__ import annotations

import json
from typing import Any
import click
from .errors import APIError
from .contacts import erase, resync, view


def in_app(func: Any) -> Any:
    from .ops_cli import in_app as base

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
@click.argument("email")
@click.option("--connector", "connectors", multiple=True, help="only these connectors (repeatable)")
@in_app
def contacts_resync(email: str, connectors: tuple[str, ...]) -> None:
    """Send the contact's current state again, even if unchanged."""
    names = resync(email.strip().lower(), list(connectors) or None)
    click.echo(f"resync queued for {', '.join(names)}")


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

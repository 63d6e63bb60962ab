"""`hub failed ...` and `hub connectors pause|resume|status`: the ops commands over hub.core.failed and hub.core.sync."""
from __future__ import annotations

import json
from typing import Any, Callable
import click
from hub.core import failed, sync
from hub.core.queue import get_queues


filter_options = [
    click.option("--connector", help="only this connector"),
    click.option("--code", help="vendor error code or HTTP status"),
    click.option("--since", help="last attempt at or after (ISO 8601, or 30m / 2h / 1d)"),
    click.option("--contact", help="only failures that include this email"),
]


def in_app(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command inside the hub's app context (Redis, queues), errors as click errors."""
    from functools import wraps

    @wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        from hub.cli.context import command_services
        from hub.core.services import using

        with using(command_services()):
            try:
                return func(*args, **kwargs)
            except (failed.NotFound, ValueError) as exc:
                raise click.ClickException(str(exc)) from None
    return wrapped


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def table(items: list[dict[str, Any]]) -> None:
    if not items:
        click.echo("no failed syncs")
        return
    click.echo(f"{'ID':<36}  {'CONNECTOR':<9}  {'KIND':<14}  {'STATUS':>6}  {'CODE':<18}  {'TRIES':>5}  "
               f"{'LAST ATTEMPT':<20}  CONTACTS")
    for i in items:
        contacts = ", ".join(i["contacts"][:3]) + (f" (+{len(i['contacts']) - 3})" if len(i["contacts"]) > 3 else "")
        click.echo(f"{i['id']:<36}  {i['connector']:<9}  {i['kind']:<14}  {str(i['status'] or '-'):>6}  "
                   f"{str(i['code'] or '-'):<18}  {i['attempts']:>5}  {str(i['last_attempt'] or '-'):<20}  {contacts}")


def with_filters(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(filter_options):
        func = option(func)
    return func


@click.group("failed")
def failed_cli() -> None:
    """Failed syncs: RQ failed jobs of the connector queues."""


@failed_cli.command("list")
@with_filters
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@in_app
def failed_list(connector: str | None, code: str | None, since: str | None, contact: str | None, as_json: bool) -> None:
    """List failed syncs, newest first."""
    items = failed.list_failed(connector=connector, code=code, since=since, contact=contact)
    echo_json(items) if as_json else table(items)


@failed_cli.command("show")
@click.argument("job_id")
@in_app
def failed_show(job_id: str) -> None:
    """Everything about one failed sync."""
    echo_json(failed.show(job_id))


@failed_cli.command("retry")
@click.argument("job_ids", nargs=-1)
@with_filters
@click.option("--all", "every", is_flag=True, help="every failed sync")
@click.option("--batch", type=click.IntRange(1, 10_000), default=100, show_default=True,
              help="failed syncs a step (progress on stderr; Ctrl-C stops cleanly)")
@in_app
def failed_retry(job_ids: tuple[str, ...], connector: str | None, code: str | None, since: str | None,
                 contact: str | None, every: bool, batch: int) -> None:
    """Retry failed syncs (ids, a filter, or --all) with fresh attempt counters; each pushes
    its contacts' CURRENT state."""
    from hub.cli.progress import command

    ids = failed.select(list(job_ids), every, connector=connector, code=code, since=since, contact=contact)
    with command("retry", unit="failed syncs") as progress:
        done = failed.retry(ids, progress, batch)
    click.echo(f"retried {len(done)} failed sync(s)")
    for job_id in done:
        click.echo(f"  {job_id}")


@failed_cli.command("discard")
@click.argument("job_ids", nargs=-1)
@with_filters
@click.option("--all", "every", is_flag=True, help="every failed sync")
@click.option("--yes", is_flag=True, help="do not ask")
@in_app
def failed_discard(job_ids: tuple[str, ...], connector: str | None, code: str | None, since: str | None,
                   contact: str | None, every: bool, yes: bool) -> None:
    """Forget failed syncs."""
    ids = failed.select(list(job_ids), every, connector=connector, code=code, since=since, contact=contact)
    if ids and not yes:
        click.confirm(f"discard {len(ids)} failed sync(s)?", abort=True)
    done = failed.discard(ids)
    click.echo(f"discarded {len(done)} failed sync(s)")


def check_enabled(name: str) -> str:
    if name not in get_queues().connectors:
        raise click.ClickException(f"no enabled connector named {name!r}; enabled: {', '.join(get_queues().connectors)}")
    return name


def show_status(state: dict[str, Any]) -> None:
    pause_ = state["paused"]
    line = f"{state['connector']}: " + (f"PAUSED by {pause_['by']} at {pause_['at']}: {pause_['reason']}"
                                        if pause_ else "active")
    if state["backing_off_until"]:
        line += f"; backing off until {state['backing_off_until']} (attempt {state['attempt']})"
    click.echo(line)
    click.echo(f"  dirty {state['dirty']}, erasures pending {state['erase_pending']}, queued jobs "
               f"{state['queued']}, failed syncs {state['failed']}")


@click.command("pause")
@click.argument("name")
@click.option("--reason", default="paused by ops", show_default=True)
@in_app
def connectors_pause(name: str, reason: str) -> None:
    """Stop pushing to a connector; its contacts stay dirty until resume."""
    sync.pause(check_enabled(name), reason, by="ops")
    show_status(sync.status(name))


@click.command("resume")
@click.argument("name")
@in_app
def connectors_resume(name: str) -> None:
    """Resume a paused connector and flush what waited."""
    sync.resume(check_enabled(name))
    show_status(sync.status(name))


@click.command("status")
@click.argument("names", nargs=-1)
@in_app
def connectors_status(names: tuple[str, ...]) -> None:
    """Pause, back-off and backlog of each enabled connector."""
    for name in names or get_queues().connectors:
        show_status(sync.status(check_enabled(name)))

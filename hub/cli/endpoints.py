"""`hub endpoints`: the event-feed endpoints from a terminal, through the same functions as the API."""
from __future__ import annotations

from typing import Any

import click

from hub.cli.admin import emit
from hub.cli.context import hub_app


def types_option(value: str | None) -> list[str] | None:
    return None if value is None else [t for t in value.replace(",", " ").split() if t]


def batch_option(events: int | None, seconds: float | None, off: bool) -> Any:
    if off:
        return None
    if events is None and seconds is None:
        return ...
    return {k: v for k, v in (("max_events", events), ("max_seconds", seconds)) if v is not None}


@click.group("endpoints")
def endpoints_cli() -> None:
    """Event-feed endpoints: signed webhooks to a brand's BI, warehouse or services."""


@endpoints_cli.command("create")
@click.argument("url")
@click.option("--types", help="event types it wants, comma separated (default: all)")
@click.option("--description", default="")
@click.option("--batch-events", type=int, help="batch mode: up to this many events per request")
@click.option("--batch-seconds", type=float, help="batch mode: or whatever arrived in this many seconds")
@click.option("--max-in-flight", type=int, default=4, show_default=True, help="concurrent requests to it")
def create(url: str, types: str | None, description: str, batch_events: int | None, batch_seconds: float | None,
           max_in_flight: int) -> None:
    """Create an endpoint; prints its signing secret, once."""
    from hub.core import endpoints

    batch = batch_option(batch_events, batch_seconds, False)
    data: dict[str, Any] = {"url": url, "description": description, "max_in_flight": max_in_flight,
                            "event_types": types_option(types), "batch": None if batch is ... else batch}
    with hub_app():
        emit(endpoints.create(data))


@endpoints_cli.command("list")
def list_() -> None:
    """List endpoints with their delivery figures."""
    from hub.core import endpoints, endpointstore

    with hub_app():
        emit([endpoints.view(e) for e in endpointstore.all_endpoints()])


@endpoints_cli.command("show")
@click.argument("endpoint_id")
def show(endpoint_id: str) -> None:
    """Show one endpoint."""
    from hub.core import endpoints, endpointstore

    with hub_app():
        emit(endpoints.view(endpointstore.load(endpoint_id)))


@endpoints_cli.command("update")
@click.argument("endpoint_id")
@click.option("--url")
@click.option("--types")
@click.option("--description")
@click.option("--batch-events", type=int)
@click.option("--batch-seconds", type=float)
@click.option("--no-batch", is_flag=True, help="one message per request")
@click.option("--max-in-flight", type=int)
def update(endpoint_id: str, url: str | None, types: str | None, description: str | None, batch_events: int | None,
           batch_seconds: float | None, no_batch: bool, max_in_flight: int | None) -> None:
    """Change an endpoint."""
    from hub.core import endpoints

    data: dict[str, Any] = {k: v for k, v in (("url", url), ("event_types", types_option(types)),
                                              ("description", description), ("max_in_flight", max_in_flight))
                            if v is not None}
    batch = batch_option(batch_events, batch_seconds, no_batch)
    if batch is not ...:
        data["batch"] = batch
    if not data:
        raise click.UsageError("nothing to change: give at least one option")
    with hub_app():
        emit(endpoints.update(endpoint_id, data))


@endpoints_cli.command("rotate-secret")
@click.argument("endpoint_id")
@click.option("--overlap", type=float, help="seconds the old secret still signs (default HUB_FEED_ROTATION_OVERLAP)")
def rotate_secret(endpoint_id: str, overlap: float | None) -> None:
    """Make a new signing secret; prints it, once."""
    from hub.core import endpoints

    with hub_app():
        emit(endpoints.rotate(endpoint_id, overlap))


@endpoints_cli.command("send-test")
@click.argument("endpoint_id")
def send_test(endpoint_id: str) -> None:
    """Send a signed hub.test message now and show the answer."""
    from hub.core import delivery

    with hub_app():
        result = delivery.send_test(endpoint_id)
    emit(result)
    if not result["delivered"]:
        raise click.ClickException("the endpoint did not accept the test message")


@endpoints_cli.command("disable")
@click.argument("endpoint_id")
@click.option("--reason")
def disable(endpoint_id: str, reason: str | None) -> None:
    """Stop sending to an endpoint (its queue is kept)."""
    from hub.core import endpoints

    with hub_app():
        emit(endpoints.view(endpoints.set_disabled(endpoint_id, True, reason)))


@endpoints_cli.command("enable")
@click.argument("endpoint_id")
def enable(endpoint_id: str) -> None:
    """Resume sending to an endpoint."""
    from hub.core import endpoints

    with hub_app():
        emit(endpoints.view(endpoints.set_disabled(endpoint_id, False)))


@endpoints_cli.command("delete")
@click.argument("endpoint_id")
def delete(endpoint_id: str) -> None:
    """Delete an endpoint and its queue."""
    from hub.core import endpoints

    with hub_app():
        emit(endpoints.delete(endpoint_id))


@endpoints_cli.command("attempts")
@click.argument("endpoint_id")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
def attempts(endpoint_id: str, limit: int) -> None:
    """The latest delivery attempts, newest first."""
    from hub.core import endpoints

    with hub_app():
        emit(endpoints.attempts(endpoint_id, limit))


@endpoints_cli.command("replay")
@click.argument("endpoint_id")
@click.option("--since", help="ISO 8601 time: replay messages from here")
@click.option("--until", help="ISO 8601 time: up to here")
@click.option("--id", "ids", multiple=True, help="a message id (repeat)")
@click.option("--batch", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="messages a step (progress on stderr; Ctrl-C stops cleanly)")
def replay(endpoint_id: str, since: str | None, until: str | None, ids: tuple[str, ...], batch: int) -> None:
    """Send stored messages again to one endpoint, oldest first."""
    from hub.core import endpoints
    from hub.cli.progress import command

    data: dict[str, Any] = {"since": since, "until": until} if since or until else {}
    if ids:
        data["message_ids"] = list(ids)
    with hub_app(), command("replay", unit="messages") as progress:
        result = endpoints.replay(endpoint_id, data, progress, batch)
    emit(result)

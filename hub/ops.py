"""Ops API and commands: failed syncs (list, show, retry, discard) and pausing a connector.

Every route needs the ops role (an admin token has it too). The same functions back the `hub
failed` and `hub connectors pause|resume|status` commands, which talk to Redis directly.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import click
from flask import jsonify, request
from flask_smorest import Blueprint

from . import failed, sync
from .auth import actor, require
from .errors import APIError
from .openapi import BAD_JSON, FILTERS, JOB_ID_422, NOT_ENABLED, STRINGS, arr, declare, obj, ref, t
from .queue import get_queues

bp = Blueprint("ops", __name__)


def body() -> dict[str, Any]:
    data = request.get_json(silent=True) if request.data else {}
    if not isinstance(data, dict):
        raise APIError(400, "invalid_json", "send a JSON object")
    return data


def guarded(call: Callable[[], Any], missing: str = "unknown_failed_sync") -> Any:
    """Failed-sync lookups answer 404 / 422 in the hub's one error shape: `missing` is the 404's
    code, unknown_connector where only a connector filter can name something absent."""
    try:
        return call()
    except failed.NotFound as exc:
        raise APIError(404, missing, str(exc)) from None
    except ValueError as exc:
        raise APIError(422, "invalid_filter", str(exc)) from None


def filters(source: Any) -> dict[str, Any]:
    return {k: source.get(k) or None for k in ("connector", "code", "since", "contact")}


def selection(data: dict[str, Any]) -> list[str]:
    """The job ids a bulk body names; a 422 naming the field when ids or a filter has the wrong type."""
    ids = data.get("ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        raise APIError(422, "invalid_request", "ids must be a list of job ids",
                       [{"field": "ids", "message": "must be a list of strings"}])
    for name, value in filters(data).items():
        if value is not None and not isinstance(value, str):
            raise APIError(422, "invalid_request", f"{name} must be a string",
                           [{"field": name, "message": "must be a string"}])
    # only a filter's connector can name something absent here; unknown ids are met by retry/discard
    return guarded(lambda: failed.select(ids, bool(data.get("all")), **filters(data)), "unknown_connector")


@bp.get("/v1/failed")
@declare("Failed syncs, newest first", (200, "The failed syncs.", obj(
    count=t("integer"), failed=arr(ref("FailedSync")))), params=FILTERS,
    errors={404: "connector names no enabled connector.", 422: "A filter is invalid."})
@require("ops")
def list_failed():  # type: ignore[no-untyped-def]
    items = guarded(lambda: failed.list_failed(**filters(request.args)), "unknown_connector")
    return jsonify({"count": len(items), "failed": items})


@bp.get("/v1/failed/<job_id>")
@declare("One failed sync", (200, "Everything about it.", ref("FailedSync")),
    errors={404: "No such failed sync.", 422: JOB_ID_422})
@require("ops")
def show_failed(job_id: str):  # type: ignore[no-untyped-def]
    return jsonify(guarded(lambda: failed.show(job_id)))


@bp.post("/v1/failed/<job_id>/retry")
@declare("Retry one failed sync with the contacts' current state", (202, "Queued again.", obj(
    retried=STRINGS)), errors={404: "No such failed sync.", 422: JOB_ID_422})
@require("ops")
def retry_failed(job_id: str):  # type: ignore[no-untyped-def]
    done = guarded(lambda: failed.retry([job_id]))
    if not done:
        raise APIError(404, "unknown_failed_sync", f"no failed sync {job_id!r}")
    return jsonify({"retried": done}), 202


@bp.post("/v1/failed/retry")
@declare("Retry failed syncs by ids, filter or all", (202, "Queued again.", obj(
    retried=STRINGS, count=t("integer"))), ref("Selection"),
    errors={400: BAD_JSON, 404: "No such failed sync.", 422: "A filter or a job id is invalid."})
@require("ops")
def retry_selected():  # type: ignore[no-untyped-def]
    """Retry failed syncs by ids, by a filter, or all.

    Body: {"ids": [...]}, a filter {"connector", "code", "since", "contact"}, or {"all": true}.
    """
    ids = selection(body())
    done = guarded(lambda: failed.retry(ids))
    return jsonify({"retried": done, "count": len(done)}), 202


@bp.delete("/v1/failed/<job_id>")
@declare("Forget one failed sync", (200, "Discarded.", obj(discarded=STRINGS)),
    errors={404: "No such failed sync.", 422: JOB_ID_422})
@require("ops")
def discard_failed(job_id: str):  # type: ignore[no-untyped-def]
    done = guarded(lambda: failed.discard([job_id]))
    if not done:
        raise APIError(404, "unknown_failed_sync", f"no failed sync {job_id!r}")
    return jsonify({"discarded": done})


@bp.post("/v1/failed/discard")
@declare("Forget failed syncs by ids, filter or all", (200, "Discarded.", obj(
    discarded=STRINGS, count=t("integer"))), ref("Selection"),
    errors={400: BAD_JSON, 404: "No such failed sync.", 422: "A filter or a job id is invalid."})
@require("ops")
def discard_selected():  # type: ignore[no-untyped-def]
    ids = selection(body())
    done = guarded(lambda: failed.discard(ids))
    return jsonify({"discarded": done, "count": len(done)})


def enabled(name: str) -> str:
    if name not in get_queues().connectors:
        raise APIError(404, "unknown_connector", f"no enabled connector named {name!r}")
    return name


@bp.get("/v1/connectors/<name>/pause")
@declare(ok=(200, "The status.", ref("ConnectorStatus")), errors={404: NOT_ENABLED})
@require("ops")
def show_pause(name: str):  # type: ignore[no-untyped-def]
    """Whether the connector is paused, by whom and why, with its backlog."""
    return jsonify(sync.status(enabled(name)))


@bp.post("/v1/connectors/<name>/pause")
@declare("Stop pushing to a connector until resumed", (200, "The status.", ref("ConnectorStatus")),
    obj(reason=t("string", maxLength=300)), errors={400: BAD_JSON, 404: NOT_ENABLED}, body_required=False)
@require("ops")
def pause_connector(name: str):  # type: ignore[no-untyped-def]
    reason = str(body().get("reason") or "paused by ops")[:300]
    sync.pause(enabled(name), reason, by=actor())
    return jsonify(sync.status(name))


@bp.post("/v1/connectors/<name>/resume")
@declare("Resume a paused connector", (200, "The status.", ref("ConnectorStatus")),
    errors={404: NOT_ENABLED})
@require("ops")
def resume_connector(name: str):  # type: ignore[no-untyped-def]
    sync.resume(enabled(name))
    return jsonify(sync.status(name))


# -- commands -------------------------------------------------------------------------------

def in_app(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command inside the hub's app context (Redis, queues), errors as click errors."""
    from functools import wraps

    @wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        from .cli import command_app

        with command_app().app_context():
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


filter_options = [
    click.option("--connector", help="only this connector"),
    click.option("--code", help="vendor error code or HTTP status"),
    click.option("--since", help="last attempt at or after (ISO 8601, or 30m / 2h / 1d)"),
    click.option("--contact", help="only failures that include this email"),
]


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
    from .progress import command

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

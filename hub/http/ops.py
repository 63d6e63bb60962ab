"""HTTP: the ops API over hub.core.failed and hub.core.sync: failed syncs (list, show, retry, discard) and
pausing a connector.

Every route needs the ops role (an admin token has it too). The same core functions back the
`hub failed` and `hub connectors pause|resume|status` commands (hub.cli.ops).
"""
from __future__ import annotations

from typing import Any, Callable

from flask import jsonify, request
from flask_smorest import Blueprint

from hub.core import failed, sync
from hub.http.auth import actor, require
from hub.core.errors import APIError
from hub.http.openapi import BAD_JSON, FILTERS, JOB_ID_422, NOT_ENABLED, STRINGS, arr, declare, obj, ref, t
from hub.core.queue import get_queues

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
    done = guarded(lambda: failed.retry([job_id], actor=actor()))
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
    done = guarded(lambda: failed.retry(ids, actor=actor()))
    return jsonify({"retried": done, "count": len(done)}), 202


@bp.delete("/v1/failed/<job_id>")
@declare("Forget one failed sync", (200, "Discarded.", obj(discarded=STRINGS)),
    errors={404: "No such failed sync.", 422: JOB_ID_422})
@require("ops")
def discard_failed(job_id: str):  # type: ignore[no-untyped-def]
    done = guarded(lambda: failed.discard([job_id], actor=actor()))
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
    done = guarded(lambda: failed.discard(ids, actor=actor()))
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
    sync.resume(enabled(name), actor())
    return jsonify(sync.status(name))

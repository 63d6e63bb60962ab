"""HTTP: the ops API over hub.failed and hub.sync: failed syncs (list, show, retry, discard) and
pausing a connector.

Every route needs the ops role (an admin token has it too). The same core functions back the
`hub failed` and `hub connectors pause|resume|status` commands (hub.ops_cli).
"""
from __future__ import annotations

from typing import Any, Callable

from flask import Blueprint, jsonify, request

from . import failed, sync
from .auth_http import require
from .errors import APIError
from .queue import get_queues

bp = Blueprint("ops", __name__)


def body() -> dict[str, Any]:
    data = request.get_json(silent=True) if request.data else {}
    if not isinstance(data, dict):
        raise APIError(400, "invalid_json", "send a JSON object")
    return data


def guarded(call: Callable[[], Any]) -> Any:
    """Failed-sync lookups answer 404 / 422 in the hub's one error shape."""
    try:
        return call()
    except failed.NotFound as exc:
        raise APIError(404, "not_found", str(exc)) from None
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
    return guarded(lambda: failed.select(ids, bool(data.get("all")), **filters(data)))


@bp.get("/v1/failed")
@require("ops")
def list_failed():  # type: ignore[no-untyped-def]
    items = guarded(lambda: failed.list_failed(**filters(request.args)))
    return jsonify({"count": len(items), "failed": items})


@bp.get("/v1/failed/<job_id>")
@require("ops")
def show_failed(job_id: str):  # type: ignore[no-untyped-def]
    return jsonify(guarded(lambda: failed.show(job_id)))


@bp.post("/v1/failed/<job_id>/retry")
@require("ops")
def retry_one(job_id: str):  # type: ignore[no-untyped-def]
    done = guarded(lambda: failed.retry([job_id]))
    if not done:
        raise APIError(404, "not_found", f"no failed sync {job_id!r}")
    return jsonify({"retried": done}), 202


@bp.post("/v1/failed/retry")
@require("ops")
def retry_many():  # type: ignore[no-untyped-def]
    """Retry failed syncs by ids, by a filter, or all.

    Body: {"ids": [...]}, a filter {"connector", "code", "since", "contact"}, or {"all": true}.
    """
    ids = selection(body())
    done = guarded(lambda: failed.retry(ids))
    return jsonify({"retried": done, "count": len(done)}), 202


@bp.delete("/v1/failed/<job_id>")
@require("ops")
def discard_one(job_id: str):  # type: ignore[no-untyped-def]
    done = guarded(lambda: failed.discard([job_id]))
    if not done:
        raise APIError(404, "not_found", f"no failed sync {job_id!r}")
    return jsonify({"discarded": done})


@bp.post("/v1/failed/discard")
@require("ops")
def discard_many():  # type: ignore[no-untyped-def]
    ids = selection(body())
    done = guarded(lambda: failed.discard(ids))
    return jsonify({"discarded": done, "count": len(done)})


def enabled(name: str) -> str:
    if name not in get_queues().connectors:
        raise APIError(404, "not_found", f"no enabled connector named {name!r}")
    return name


@bp.get("/v1/connectors/<name>/pause")
@require("ops")
def pause_state(name: str):  # type: ignore[no-untyped-def]
    """Whether the connector is paused, by whom and why, with its backlog."""
    return jsonify(sync.status(enabled(name)))


@bp.post("/v1/connectors/<name>/pause")
@require("ops")
def pause(name: str):  # type: ignore[no-untyped-def]
    reason = str(body().get("reason") or "paused by ops")[:300]
    sync.pause(enabled(name), reason, by="ops")
    return jsonify(sync.status(name))


@bp.post("/v1/connectors/<name>/resume")
@require("ops")
def resume(name: str):  # type: ignore[no-untyped-def]
    sync.resume(enabled(name))
    return jsonify(sync.status(name))

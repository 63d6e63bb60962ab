"""HTTP: /v1/endpoints, the event feed's endpoints, over hub.endpoints."""
from __future__ import annotations

from typing import Any
from flask import Blueprint, jsonify, request
from .auth_http import require
from .errors import APIError
from .endpoints import all_endpoints, attempts, create, delete, load, problem, replay, rotate, send_test, set_disabled, update, view


bp = Blueprint("endpoints", __name__)


def body() -> Any:
    data = request.get_json(silent=True)
    if data is None and request.get_data():
        raise APIError(400, "invalid_json", "the body is not valid JSON")
    return {} if data is None else data


@bp.get("/v1/endpoints")
@require("admin")
def list_route() -> Any:
    """List the event-feed endpoints."""
    return jsonify({"endpoints": [view(e) for e in all_endpoints()]})


@bp.post("/v1/endpoints")
@require("admin")
def create_route() -> Any:
    """Create an endpoint; the answer holds its signing secret, once."""
    return jsonify(create(body())), 201


@bp.get("/v1/endpoints/<endpoint_id>")
@require("admin")
def show_route(endpoint_id: str) -> Any:
    """Show an endpoint and its delivery figures."""
    return jsonify(view(load(endpoint_id)))


@bp.patch("/v1/endpoints/<endpoint_id>")
@require("admin")
def update_route(endpoint_id: str) -> Any:
    """Change an endpoint's URL, event types, description, batch mode or in-flight cap."""
    return jsonify(update(endpoint_id, body()))


@bp.delete("/v1/endpoints/<endpoint_id>")
@require("admin")
def delete_route(endpoint_id: str) -> Any:
    """Delete an endpoint and its queue."""
    return jsonify(delete(endpoint_id))


@bp.post("/v1/endpoints/<endpoint_id>/rotate-secret")
@require("admin")
def rotate_route(endpoint_id: str) -> Any:
    """Make a new signing secret; the old one signs too until the overlap ends."""
    data = body()
    overlap = data.get("overlap_seconds") if isinstance(data, dict) else None
    if overlap is not None and (not isinstance(overlap, (int, float)) or isinstance(overlap, bool)):
        raise problem("overlap_seconds", "must be a number of seconds")
    return jsonify(rotate(endpoint_id, overlap))


@bp.post("/v1/endpoints/<endpoint_id>/disable")
@require("admin")
def disable_route(endpoint_id: str) -> Any:
    """Stop sending to an endpoint."""
    data = body()
    reason = data.get("reason") if isinstance(data, dict) else None
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        raise problem("reason", "must be text of at most 500 characters")
    return jsonify(view(set_disabled(endpoint_id, True, reason)))


@bp.post("/v1/endpoints/<endpoint_id>/enable")
@require("admin")
def enable_route(endpoint_id: str) -> Any:
    """Resume sending to an endpoint."""
    return jsonify(view(set_disabled(endpoint_id, False)))


@bp.post("/v1/endpoints/<endpoint_id>/test")
@require("admin")
def test_route(endpoint_id: str) -> Any:
    """Send a signed hub.test message now; answers with the attempt."""
    return jsonify(send_test(endpoint_id))


@bp.post("/v1/endpoints/<endpoint_id>/replay")
@require("admin")
def replay_route(endpoint_id: str) -> Any:
    """Queue stored messages again for one endpoint: a time range or a list of ids."""
    return jsonify(replay(endpoint_id, body())), 202


@bp.get("/v1/endpoints/<endpoint_id>/attempts")
@require("admin")
def attempts_route(endpoint_id: str) -> Any:
    """The endpoint's latest delivery attempts, newest first."""
    try:
        limit = int(request.args.get("limit", 50))
    except ValueError:
        raise problem("limit", "must be an integer") from None
    if not 1 <= limit <= 1000:
        raise problem("limit", "must be from 1 to 1000")
    return jsonify({"attempts": attempts(endpoint_id, limit)})

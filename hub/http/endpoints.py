"""HTTP: /v1/endpoints, the event feed's endpoints, over hub.core.endpoints."""
from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask_smorest import Blueprint

from hub.http.auth import require
from hub.core.delivery import send_test
from hub.core.endpoints import (EVENT_TYPES, attempts, create, delete, problem, replay, rotate, set_disabled,
                                update, view)
from hub.core.endpointstore import all_endpoints, load
from hub.core.errors import APIError
from hub.http.openapi import arr, declare, obj, query, t

bp = Blueprint("endpoints", __name__)

NOT_FOUND = "No such endpoint."
INVALID = ("A field is invalid (named in details), e.g. a URL that resolves to a private address.", arr(t("object")))
BATCH = obj(max_events=t("integer", "Up to this many messages per request.", minimum=1, maximum=1000),
            max_seconds=t("number", "Or whatever is due after this many seconds.", minimum=0, maximum=3600))
BATCH["nullable"] = True
TYPE_LIST = arr(t("string", enum=list(EVENT_TYPES)), minItems=1)
STATS = obj(sent=t("integer"), failed=t("integer"), pending=t("integer"), mean_latency_seconds=t("number", nullable=True),
            lag_seconds=t("number", "Age of the oldest message still waiting for this endpoint."),
            failing_since=t("string", nullable=True), retry_at=t("string", nullable=True),
            last_success_at=t("string", nullable=True), recovered_at=t("string", nullable=True))
ENDPOINT = obj(id=t("string"), url=t("string"), description=t("string"), event_types=TYPE_LIST, batch=BATCH,
               max_in_flight=t("integer"), disabled=t("boolean"),
               disabled_reason=t("string", "Why it was disabled (by an operator, a 410, or continuous failure).",
                                 nullable=True),
               disabled_at=t("string", nullable=True), created_at=t("string"), updated_at=t("string"), stats=STATS)
FIELDS = obj(url=t("string", "http(s); must resolve to public addresses unless HUB_FEED_ALLOW lists it."),
             description=t("string", maxLength=500), event_types=TYPE_LIST, batch=BATCH,
             max_in_flight=t("integer", minimum=1, maximum=32, default=4))
CREATED = {**ENDPOINT, "properties": {**ENDPOINT["properties"], "secret": t("string", "whsec_...: shown only here."),
                                      "secret_note": t("string")}}
ATTEMPT = obj(at=t("string"), status=t("integer", nullable=True), latency=t("number"),
              answer=t("string", "The first bytes of the answer."), error=t("string", nullable=True),
              webhook_id=t("string"), message_ids=arr(t("string")), note=t("string"), retry_in=t("number"))
ERRORS: dict[int, Any] = {404: NOT_FOUND}


def body() -> Any:
    data = request.get_json(silent=True)
    if data is None and request.get_data():
        raise APIError(400, "invalid_json", "the body is not valid JSON")
    return {} if data is None else data


@bp.get("/v1/endpoints")
@declare(ok=(200, "The endpoints.", obj(endpoints=arr(ENDPOINT))))
@require("admin")
def list_endpoints() -> Any:
    """List the event-feed endpoints."""
    return jsonify({"endpoints": [view(e) for e in all_endpoints()]})


@bp.post("/v1/endpoints")
@declare(ok=(201, "Created; the answer holds the secret, once.", CREATED), body=FIELDS,
    errors={400: "The body is not a JSON object.", 422: INVALID,
            503: "HUB_SECRET_KEY is not set or invalid."})
@require("admin")
def create_endpoint() -> Any:
    """Create an endpoint; the answer holds its signing secret, once."""
    return jsonify(create(body())), 201


@bp.get("/v1/endpoints/<endpoint_id>")
@declare(ok=(200, "The endpoint.", ENDPOINT), errors=ERRORS)
@require("admin")
def show_endpoint(endpoint_id: str) -> Any:
    """Show an endpoint and its delivery figures."""
    return jsonify(view(load(endpoint_id)))


@bp.patch("/v1/endpoints/<endpoint_id>")
@declare(ok=(200, "The endpoint.", ENDPOINT), body=FIELDS,
    errors={400: "The body is not a JSON object.", 404: NOT_FOUND, 422: INVALID})
@require("admin")
def update_endpoint(endpoint_id: str) -> Any:
    """Change an endpoint's URL, event types, description, batch mode or in-flight cap."""
    return jsonify(update(endpoint_id, body()))


@bp.delete("/v1/endpoints/<endpoint_id>")
@declare(ok=(200, "Deleted.", obj(id=t("string"), deleted=t("boolean"))), errors=ERRORS)
@require("admin")
def delete_endpoint(endpoint_id: str) -> Any:
    """Delete an endpoint and its queue."""
    return jsonify(delete(endpoint_id))


@bp.post("/v1/endpoints/<endpoint_id>/rotate-secret")
@declare(ok=(200, "The new secret, once.", obj(
    id=t("string"), secret=t("string"), previous_valid_until=t("string", nullable=True), secret_note=t("string"))),
    body=obj(overlap_seconds=t("number", "How long the old secret still signs (default HUB_FEED_ROTATION_OVERLAP).",
                               minimum=0, maximum=604800)),
    errors={400: "The body is not JSON.", 404: NOT_FOUND, 422: INVALID})
@require("admin")
def rotate_secret(endpoint_id: str) -> Any:
    """Make a new signing secret; the old one signs too until the overlap ends."""
    data = body()
    overlap = data.get("overlap_seconds") if isinstance(data, dict) else None
    if overlap is not None and (not isinstance(overlap, (int, float)) or isinstance(overlap, bool)):
        raise problem("overlap_seconds", "must be a number of seconds")
    return jsonify(rotate(endpoint_id, overlap))


@bp.post("/v1/endpoints/<endpoint_id>/disable")
@declare(ok=(200, "The endpoint.", ENDPOINT), body=obj(reason=t("string", maxLength=500)),
    errors={400: "The body is not JSON.", 404: NOT_FOUND, 422: INVALID})
@require("admin")
def disable_endpoint(endpoint_id: str) -> Any:
    """Stop sending to an endpoint."""
    data = body()
    reason = data.get("reason") if isinstance(data, dict) else None
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        raise problem("reason", "must be text of at most 500 characters")
    return jsonify(view(set_disabled(endpoint_id, True, reason)))


@bp.post("/v1/endpoints/<endpoint_id>/enable")
@declare(ok=(200, "The endpoint.", ENDPOINT), errors=ERRORS)
@require("admin")
def enable_endpoint(endpoint_id: str) -> Any:
    """Resume sending to an endpoint."""
    return jsonify(view(set_disabled(endpoint_id, False)))


@bp.post("/v1/endpoints/<endpoint_id>/test")
@declare(ok=(200, "The attempt, and whether the endpoint accepted it.", {
    **ATTEMPT, "properties": {**ATTEMPT["properties"], "delivered": t("boolean")}}), errors=ERRORS)
@require("admin")
def test_endpoint(endpoint_id: str) -> Any:
    """Send a signed hub.test message now; answers with the attempt."""
    return jsonify(send_test(endpoint_id))


@bp.post("/v1/endpoints/<endpoint_id>/replay")
@declare(ok=(202, "Queued again.", obj(endpoint=t("string"), queued=t("integer"),
                                   message_ids=arr(t("string")), not_found=arr(t("string")))),
    body=obj(message_ids=arr(t("string"), maxItems=10000),
             since=t("string", "ISO 8601: messages accepted from here."),
             until=t("string", "ISO 8601: up to here.")),
    errors={400: "The body is not a JSON object.", 404: NOT_FOUND, 422: INVALID})
@require("admin")
def replay_messages(endpoint_id: str) -> Any:
    """Queue stored messages again for one endpoint: a time range or a list of ids."""
    return jsonify(replay(endpoint_id, body())), 202


@bp.get("/v1/endpoints/<endpoint_id>/attempts")
@declare(ok=(200, "Newest first.", obj(attempts=arr(ATTEMPT))),
    params=(query("limit", "At most this many.", "integer", minimum=1, maximum=1000,
                  default=50),),
    errors={404: NOT_FOUND, 422: "limit is not an integer from 1 to 1000."})
@require("admin")
def list_attempts(endpoint_id: str) -> Any:
    """The endpoint's latest delivery attempts, newest first."""
    try:
        limit = int(request.args.get("limit", 50))
    except ValueError:
        raise problem("limit", "must be an integer") from None
    if not 1 <= limit <= 1000:
        raise problem("limit", "must be from 1 to 1000")
    return jsonify({"attempts": attempts(endpoint_id, limit)})

"""POST /v1/events: authenticate, validate all or nothing, apply, queue the flushes."""
from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask_smorest import Blueprint

from hub.core import admission, metrics
from hub.http import logs as logs_http
from hub.http.auth import authenticate_ingest
from hub.core.errors import APIError, checked_json
from hub.core.ledger import LedgerRefused, get_ledger
from hub.http.openapi import arr, declare, header, ref
from hub.core.queue import get_queues
from hub.core.schemas import load_events
from hub.core import services

bp = Blueprint("ingest", __name__)


def parse_body() -> bytes:
    config = services.current().config
    if request.content_length is not None and request.content_length > config["MAX_BODY"]:
        raise APIError(413, "payload_too_large", f"the body is larger than {config['MAX_BODY']} bytes")
    body = request.get_data(cache=True)
    if len(body) > config["MAX_BODY"]:
        raise APIError(413, "payload_too_large", f"the body is larger than {config['MAX_BODY']} bytes")
    return body


def parse_json(body: bytes | str) -> Any:
    """The body as JSON the hub can store, else a 400 naming the problem (see errors.checked_json)."""
    try:
        return checked_json(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None


def decode(body: bytes) -> Any:
    if request.mimetype != "application/json":
        raise APIError(415, "unsupported_media_type", "send Content-Type: application/json")
    return parse_json(body)


def refused(exc: LedgerRefused) -> APIError:
    """A ledger refusal as the 422 a sender can act on (nothing of the batch was applied)."""
    return APIError(422, "invalid_events", f"event {exc.index}: {exc.field} {exc.message}",
                    [{"index": exc.index, "field": exc.field, "message": exc.message}])


def accept(items: list[Any]) -> tuple[int, int]:
    """Validate every event, then apply them and queue one flush per connector."""
    config = services.current().config
    if len(items) > config["MAX_EVENTS"]:
        raise APIError(413, "too_many_events", f"at most {config['MAX_EVENTS']} events per request, got {len(items)}")
    events, errors = load_events(items, checked=True)    # the body went through checked_json (decode)
    if errors:
        metrics.count_rejected(services.current().redis, "api", len(items))
        raise APIError(422, "invalid_events", f"{len({e['index'] for e in errors})} of {len(items)} events are invalid; nothing was accepted", errors)
    admission.admit()      # 503 before anything is written when Redis is nearly full
    queues = get_queues()
    # One round trip: the ledger step also counts the events and sets the flush flags.
    try:
        outcomes, fresh = get_ledger().apply_each(events, queues.connectors, "api", queues.flags())
    except LedgerRefused as exc:
        metrics.count_rejected(services.current().redis, "api", len(items))
        raise refused(exc) from None
    queues.enqueue_flushes([queues.connectors[i] for i in fresh])
    logs_http.note(event_ids=[e["id"] for e in events])
    admission.settle()     # duplicates too: a 202 means the replicas have it
    accepted = sum(outcomes)
    return accepted, len(outcomes) - accepted


@bp.post("/v1/events")
@declare(
    "Receive referral events", (202, "Every event is valid; new ones are applied and syncs queued.", ref("Accepted")),
    {"oneOf": [ref("Event"), ref("EventBatch")]},
    (header("webhook-id", "Message id (Standard Webhooks signing)."),
     header("webhook-timestamp", "Unix seconds; at most HUB_SIGNATURE_TOLERANCE (300) from now.")),
    {400: "The body is not valid JSON, nests deeper than 32 levels or holds a lone UTF-16 surrogate.", 413: "The body is over 1 MiB, or more than 500 events.",
     415: "Content-Type is not application/json.",
     422: ("At least one event is invalid, or applying the batch would overflow a running total (the "
           "ledger checks every bound before its first write); nothing was accepted (all or nothing).",
           arr(ref("Problem")))},
    description="One event, or {\"events\": [...]}. Signed like Standard Webhooks, or with a bearer "
                "ingest token.", auth="ingest")
def receive_events():  # type: ignore[no-untyped-def]
    body = parse_body()
    authenticate_ingest(body)
    payload = decode(body)
    if isinstance(payload, dict) and "events" in payload:
        items = payload["events"]
        if not isinstance(items, list):
            raise APIError(422, "invalid_events", "events must be a list", [{"index": None, "field": "events", "message": "must be a list"}])
        if not items:
            raise APIError(422, "invalid_events", "events is empty", [{"index": None, "field": "events", "message": "at least one event"}])
    else:
        items = [payload]
    accepted, duplicates = accept(items)
    return jsonify({"accepted": accepted, "duplicates": duplicates}), 202

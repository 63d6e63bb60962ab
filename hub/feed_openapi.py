"""The OpenAPI entries of the event-feed routes (/v1/endpoints), merged into hub.openapi's ROUTES."""
from __future__ import annotations

from typing import Any

from .endpoints import EVENT_TYPES
from .openapi import arr, obj, op, query, t

NOT_FOUND = "No such endpoint."
INVALID = ("A field is invalid (named in details), e.g. a URL that resolves to a private address.", arr(t("object")))
BATCH = obj(max_events=t("integer", "Up to this many messages per request.", minimum=1, maximum=1000),
            max_seconds=t("number", "Or whatever is due after this many seconds.", minimum=0, maximum=3600))
BATCH["nullable"] = True
TYPES = arr(t("string", enum=list(EVENT_TYPES)), minItems=1)
STATS = obj(sent=t("integer"), failed=t("integer"), pending=t("integer"), mean_latency_seconds=t("number", nullable=True),
            lag_seconds=t("number", "Age of the oldest message still waiting for this endpoint."),
            failing_since=t("string", nullable=True), retry_at=t("string", nullable=True),
            last_success_at=t("string", nullable=True), recovered_at=t("string", nullable=True))
ENDPOINT = obj(id=t("string"), url=t("string"), description=t("string"), event_types=TYPES, batch=BATCH,
               max_in_flight=t("integer"), disabled=t("boolean"),
               disabled_reason=t("string", "Why it was disabled (by an operator, a 410, or continuous failure).",
                                 nullable=True),
               disabled_at=t("string", nullable=True), created_at=t("string"), updated_at=t("string"), stats=STATS)
FIELDS = obj(url=t("string", "http(s); must resolve to public addresses unless HUB_FEED_ALLOW lists it."),
             description=t("string", maxLength=500), event_types=TYPES, batch=BATCH,
             max_in_flight=t("integer", minimum=1, maximum=32, default=4))
CREATED = {**ENDPOINT, "properties": {**ENDPOINT["properties"], "secret": t("string", "whsec_...: shown only here."),
                                      "secret_note": t("string")}}
ATTEMPT = obj(at=t("string"), status=t("integer", nullable=True), latency=t("number"),
              answer=t("string", "The first bytes of the answer."), error=t("string", nullable=True),
              webhook_id=t("string"), message_ids=arr(t("string")), note=t("string"), retry_in=t("number"))
ERRORS: dict[int, Any] = {404: NOT_FOUND}

FEED_ROUTES: dict[str, dict[str, Any]] = {
    "endpoints.list_route": op(ok=(200, "The endpoints.", obj(endpoints=arr(ENDPOINT)))),
    "endpoints.create_route": op(ok=(201, "Created; the answer holds the secret, once.", CREATED), body=FIELDS,
                                 errors={400: "The body is not a JSON object.", 422: INVALID,
                                         503: "HUB_SECRET_KEY is not set or invalid."}),
    "endpoints.show_route": op(ok=(200, "The endpoint.", ENDPOINT), errors=ERRORS),
    "endpoints.update_route": op(ok=(200, "The endpoint.", ENDPOINT), body=FIELDS,
                                 errors={400: "The body is not a JSON object.", 404: NOT_FOUND, 422: INVALID}),
    "endpoints.delete_route": op(ok=(200, "Deleted.", obj(id=t("string"), deleted=t("boolean"))), errors=ERRORS),
    "endpoints.rotate_route": op(ok=(200, "The new secret, once.", obj(
        id=t("string"), secret=t("string"), previous_valid_until=t("string", nullable=True), secret_note=t("string"))),
        body=obj(overlap_seconds=t("number", "How long the old secret still signs (default HUB_FEED_ROTATION_OVERLAP).",
                                   minimum=0, maximum=604800)),
        errors={400: "The body is not JSON.", 404: NOT_FOUND, 422: INVALID}),
    "endpoints.disable_route": op(ok=(200, "The endpoint.", ENDPOINT), body=obj(reason=t("string", maxLength=500)),
                                  errors={400: "The body is not JSON.", 404: NOT_FOUND, 422: INVALID}),
    "endpoints.enable_route": op(ok=(200, "The endpoint.", ENDPOINT), errors=ERRORS),
    "endpoints.test_route": op(ok=(200, "The attempt, and whether the endpoint accepted it.", {
        **ATTEMPT, "properties": {**ATTEMPT["properties"], "delivered": t("boolean")}}), errors=ERRORS),
    "endpoints.replay_route": op(ok=(202, "Queued again.", obj(endpoint=t("string"), queued=t("integer"),
                                                                message_ids=arr(t("string")), not_found=arr(t("string")))),
                                 body=obj(message_ids=arr(t("string"), maxItems=10000),
                                          since=t("string", "ISO 8601: messages accepted from here."),
                                          until=t("string", "ISO 8601: up to here.")),
                                 errors={400: "The body is not a JSON object.", 404: NOT_FOUND, 422: INVALID}),
    "endpoints.attempts_route": op(ok=(200, "Newest first.", obj(attempts=arr(ATTEMPT))),
                                   params=(query("limit", "At most this many.", "integer", minimum=1, maximum=1000,
                                                 default=50),),
                                   errors={404: NOT_FOUND, 422: "limit is not an integer from 1 to 1000."}),
}

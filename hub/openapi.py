"""GET /openapi.json: the HTTP surface as OpenAPI 3.0, walked from the app's own url_map so a new
route can never be missing from it (it is then described only from its docstring, its path and its
auth, and tests/hub/test_openapi.py names it until it gets an entry in ROUTES)."""
from __future__ import annotations

import inspect
import re
import sys
from importlib import metadata
from typing import Any, Callable

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app, jsonify
from marshmallow import Schema, fields

from connectors import CONNECTORS
from mappings.schema import MappingSchema

from .auth import ROLES
from .schemas import MAX_AMOUNT, NEEDS, Event, Money
from .sources import SOURCES

bp = Blueprint("openapi", __name__)
JSON = "application/json"
CONVERTERS: dict[str, dict[str, Any]] = {"int": {"type": "integer", "minimum": 0}, "float": {"type": "number"}}
RULE_ARG = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
# What each platform's webhook carries (webhook-sources.md section 3); the header name comes from
# the adapter module's SIGNATURE, Talon.One's from its settings (it signs nothing).
SIGNATURES = {
    "mention_me": "`sha256=<hex HMAC-SHA256 of the raw body>` keyed by the Connections Hub secret.",
    "voucherify": "hex HMAC-SHA256 of the body keyed by the project secret; distribution webhooks may "
                  "send a static header instead (HUB_SOURCE_VOUCHERIFY_HEADER_NAME / _VALUE).",
    "talon_one": "no signature: the static header and value the Talon.One admin defines "
                 "(HUB_SOURCE_TALON_ONE_HEADER_NAME / _VALUE).",
    "friendbuy": "base64 HMAC-SHA256 of the raw body keyed by the merchant secret (reward-validation "
                 "callbacks too).",
    "growsurf": "`ts=<unix milliseconds>,v=<hex HMAC-SHA256 of ts.body>` keyed by the webhook secret.",
    "saasquatch": "detached RS256 JWS `<header>..<signature>` over the body; keys from the tenant's JWKS.",
}


# -- bodies ------------------------------------------------------------------------------------

class ErrorBody(Schema):
    code = fields.String(required=True, metadata={"example": "invalid_events"})
    message = fields.String(required=True, metadata={"description": "What is wrong, for a person."})
    details = fields.Raw(metadata={"description": "Present when there is more to say: for validation "
                                   "errors a list naming each field."})


class Error(Schema):
    """The one error shape every answer of 400 or more has."""

    error = fields.Nested(ErrorBody, required=True)


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: tuple[str, ...] = (), **props: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    return out


def t(kind: str, description: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": kind, **({"description": description} if description else {}), **extra}


def arr(items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, **extra}


STRINGS = arr(t("string"))
CHANGES = obj(fields=t("object"), lists=t("object"), identity_changed=t("boolean"))
SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": obj(("index", "field", "message"), index=t("integer", "Position of the event in the request.",
                                                          nullable=True),
                   field=t("string", "Dotted path in the event, `$` for the whole event."), message=t("string")),
    "PathProblem": obj(("path", "message"), path=t("string", "Dotted path in the document."), message=t("string")),
    "Accepted": obj(("accepted", "duplicates"), accepted=t("integer", "Events applied."),
                    duplicates=t("integer", "Events whose id (or order id) was already counted.")),
    "WebhookOutcome": obj(("accepted", "duplicates", "parked", "rejected", "ignored"),
                          accepted=t("integer"), duplicates=t("integer"),
                          parked=t("integer", "Waiting for an identity the platform has not sent yet."),
                          rejected=t("integer", "Kept for ops at GET /v1/webhooks/rejected."),
                          ignored=t("integer", "Event types the hub does not use.")),
    "FailedSync": obj(id=t("string"), connector=t("string"), kind=t("string", "sync_contacts or flush"),
                      contacts=STRINGS, status=t("integer", "Vendor HTTP status.", nullable=True),
                      code=t("string", nullable=True), message=t("string", nullable=True),
                      retriable=t("boolean", nullable=True), attempts=t("integer"), retries=t("integer"),
                      first_attempt=t("string", nullable=True), last_attempt=t("string", nullable=True)),
    "ConnectorStatus": obj(connector=t("string"),
                           paused=obj(by=t("string"), at=t("string"), reason=t("string")) | {"nullable": True},
                           backing_off_until=t("string", format="date-time", nullable=True), attempt=t("integer"),
                           dirty=t("integer"), erase_pending=t("integer"), queued=t("integer"), failed=t("integer")),
    "MappingVersion": obj(connector=t("string"), version=t("integer"), etag=t("string"), author=t("string"),
                          at=t("string", "When it was saved; null for version 0, the shipped default.",
                               nullable=True),
                          comment=t("string"), action=t("string"), document=ref("Mapping")),
    "MappingSaved": obj(connector=t("string"), saved=t("boolean"), version=t("integer"), etag=t("string"),
                        previous=t("integer"), author=t("string"), at=t("string"), live_check=t("string"),
                        changes=CHANGES, resync=t("object")),
    "MappingEdit": {"oneOf": [ref("Mapping"), obj(("document",), document=ref("Mapping"), comment=t("string"))]},
    "Connector": obj(name=t("string"), label=t("string"), enabled=t("boolean"),
                     settings=t("object", "Settings with every secret shown as ****."), base_url=t("string"),
                     max_batch=t("integer"), paused=t("object", nullable=True),
                     mapping=obj(version=t("integer"), etag=t("string"))),
    "ContactView": obj(email=t("string"), contact_id=t("string"), erased=t("boolean"),
                       state=t("object", "Referral state; money as strings.", nullable=True),
                       connectors=t("object", "Per enabled connector: last_push, pending, erase_pending, "
                                    "paused, failed.", additionalProperties=t("object")),
                       audit=arr(t("object", "One anti-entropy audit finding (at, connector, event "
                                             "mismatch or repaired, what differed: names, never values)."),
                                 description="Newest first, at most HUB_AUDIT_HISTORY.")),
    "Selection": obj(ids=STRINGS, connector=t("string"), code=t("string"), since=t("string"),
                     contact=t("string"), all=t("boolean", "Every failed sync.")),
}


def attribute_extras(self: Any, field: fields.Field, ret: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """apispec writes a nullable nested part as anyOf [any object, $ref] under 3.0, which accepts any
    object at all; a null-only branch keeps the part's own schema in force. Money reads as a string."""
    if isinstance(field, fields.Nested) and field.allow_none and "anyOf" in ret:
        target = next(item for item in ret["anyOf"] if "$ref" in item)
        return {"anyOf": [target, {"type": "object", "nullable": True, "enum": [None]}]}
    if isinstance(field, Money):
        return {"pattern": r"^[0-9]+(\.[0-9]{1,4})?$", "example": "59.90",
                "description": "A decimal amount as a string (a JSON number is read exactly too), at most "
                               f"{MAX_AMOUNT:,} (schemas.MAX_AMOUNT)."}
    return {}


def event_rules() -> dict[str, Any]:
    """schemas.Event's per-type checks (NEEDS and the reward's recipient) as anyOf branches."""
    def branch(kinds: list[str], parts: tuple[str, ...], **props: Any) -> dict[str, Any]:
        return {"required": list(parts),
                "properties": {"type": {"enum": kinds}, **{p: {"type": "object"} for p in parts}, **props}}

    grouped: dict[tuple[str, ...], list[str]] = {}
    for kind, parts in NEEDS.items():
        if kind != "reward.granted":
            grouped.setdefault(parts, []).append(kind)
    branches = [branch(kinds, parts) for parts, kinds in grouped.items()]
    branches += [branch(["reward.granted"], ("reward", who),
                        reward={"type": "object", "properties": {"recipient": {"enum": [who]}}})
                 for who in ("referrer", "friend")]
    return {"anyOf": branches, "description": "A canonical referral event. Which parts it must carry "
            "depends on its type; unknown keys are ignored; emails are trimmed and lower-cased.",
            "example": {"id": "evt_008", "type": "friend.converted", "occurred_at": "2026-11-21T10:00:08Z",
                        "referrer": {"email": "anna@example.com"}, "friend": {"email": "cleo@example.com"},
                        "order": {"id": "ord_1", "total": "59.90", "currency": "GBP"}}}


# -- operations --------------------------------------------------------------------------------

def query(name: str, description: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    return {"in": "query", "name": name, "required": False, "description": description,
            "schema": {"type": kind, **extra}}


def header(name: str, description: str, required: bool = False) -> dict[str, Any]:
    return {"in": "header", "name": name, "required": required, "description": description,
            "schema": {"type": "string"}}


def op(summary: str = "", ok: Any = (200, "OK", None), body: Any = None, params: tuple[dict[str, Any], ...] = (),
       errors: dict[int, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """One route's documentation: `ok` a (status, description, schema) or a list of them, `errors`
    status -> description or (description, details schema)."""
    return {"summary": summary, "ok": ok if isinstance(ok, list) else [ok], "body": body,
            "params": list(params), "errors": errors or {}, **extra}


FLAGS = (query("live", "Check the fields against the live account.", "boolean", default=True),
         query("resync", "Re-push the contacts the change affects.", "boolean", default=True))
FILTERS = (query("connector", "Only this connector."), query("code", "Vendor error code or HTTP status."),
           query("since", "Last attempt at or after (ISO 8601, or 30m / 2h / 1d)."),
           query("contact", "Only failures that include this email."))
LISTING = (query("source", "Only this webhook source."),
           query("limit", "At most this many entries.", "integer", minimum=1, maximum=1000, default=100))
LIMIT_422 = "limit is not a whole number from 1 to 1000 (details name `limit`)."
JOB_ID_422 = "The job id is malformed: RQ ids are letters, digits, - and _ (code invalid_filter)."
IF_MATCH = header("If-Match", "The ETag of the version you edited, or * to overwrite whatever is current.")
MAPPING_422 = ("The document is invalid; nothing was saved.", arr(ref("PathProblem")))
VENDOR_502 = "The vendor answered an error; details carry its status, code and whether it is retriable."
NOT_ENABLED = "The connector has no credentials."
BAD_JSON = ("The body is not JSON, not a JSON object, nests deeper than 32 levels or holds a lone UTF-16 "
            "surrogate (such as \\ud800).")
CONNECTOR_404 = "No such connector."

ROUTES: dict[str, dict[str, Any]] = {
    "health.healthz": op("The process is up.", (200, "Up.", obj(status=t("string", enum=["ok"])))),
    "health.readyz": op("The hub can reach Redis.", (200, "Ready.", obj(status=t("string"), connectors=STRINGS)),
                        errors={503: "Redis cannot be reached (code not_ready)."}),
    "metrics.metrics": op(ok=(200, "Prometheus text exposition format.", "metrics")),
    "openapi.document": op(ok=(200, "This document.", t("object"))),
    "ingest.post_events": op(
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
                    "ingest token."),
    "webhooks.receive": op(
        "Receive a referral platform's own webhook",
        [(202, "Acknowledged: accepted, parked, rejected or ignored, as counted.", ref("WebhookOutcome")),
         (200, "Friendbuy reward-validation callbacks (200 approves the reward).", ref("WebhookOutcome"))],
        {"type": "object", "description": "The platform's own payload."}, (),
        {400: "The body is not the platform's shape (never sent to Friendbuy).",
         404: "Unknown source, or the source is not configured.", 413: "The body is over 1 MiB.",
         503: "The source's settings are unusable, or Redis cannot be reached (Retry-After)."},
        description="Unknown event types and events the hub cannot use (invalid dates, amounts over the cap, "
                    "bodies nested deeper than 32 levels or holding a lone surrogate) are acknowledged (2xx), "
                    "counted and kept at GET /v1/webhooks/rejected, so the platform never retries them forever."),
    "webhooks.list_parked": op(ok=(200, "Parked events by handle.", obj(total=t("integer"), parked=arr(t("object")))),
                               params=LISTING, errors={422: LIMIT_422}),
    "webhooks.list_rejected": op(ok=(200, "Newest first.", obj(total=t("integer"), rejected=arr(t("object")))),
                                 params=LISTING, errors={422: LIMIT_422}),
    "webhooks.stats": op(ok=(200, "source -> outcome -> type -> count.", t("object"))),
    "admin.get_mapping": op("The connector's current mapping", (200, "The current version (ETag header).",
                                                                 ref("MappingVersion")), errors={404: CONNECTOR_404}),
    "admin.get_version": op("One saved version of the mapping", (200, "The version.", ref("MappingVersion")),
                            errors={404: "No such connector or version."}),
    "admin.put_mapping": op(
        "Save a new mapping version", (200, "Saved (or, with dry_run, what would change).", ref("MappingSaved")),
        ref("MappingEdit"), (IF_MATCH, *FLAGS, query("dry_run", "Validate and report only.", "boolean", default=False),
                             query("comment", "Why (when the body is the bare document)."),
                             header("X-Hub-Author", "Who makes the change (else a token fingerprint).")),
        {400: BAD_JSON, 404: CONNECTOR_404, 412: "If-Match is not the current version.", 422: MAPPING_422,
         428: "If-Match is missing.", 502: VENDOR_502}),
    "admin.validate_mapping_route": op(
        "Validate a mapping document", (200, "Errors, live check, and what saving would change.", obj(
            connector=t("string"), valid=t("boolean"), errors=arr(ref("PathProblem")), live_check=t("string"),
            changes=CHANGES, resync=t("object"))), ref("MappingEdit"), FLAGS[:1],
        {400: BAD_JSON, 404: CONNECTOR_404, 502: VENDOR_502}),
    "admin.preview_route": op(
        "The exact vendor requests a sync would send", (200, "Requests with secrets masked; nothing is sent.", obj(
            connector=t("string"), mapping=t("object"), sent=t("boolean"), contacts=arr(t("object")),
            requests=arr(t("object")), event=t("object"), failed=t("object"))),
        obj(email=t("string"), emails=STRINGS, event=ref("Event"), document=ref("Mapping"), force=t("boolean")),
        errors={400: BAD_JSON, 404: CONNECTOR_404,
                422: ("Neither email(s) nor event, or the event or draft is invalid.", arr(t("object")))}),
    "admin.history_route": op("The mapping's versions, newest first", (200, "Versions without documents.", obj(
        connector=t("string"), versions=arr(t("object")))),
        params=(query("limit", "At most.", "integer", minimum=1, maximum=1000, default=100),),
        errors={404: CONNECTOR_404, 422: LIMIT_422}),
    "admin.rollback_route": op(
        "Make an old version current again", (200, "Saved as a new version.", ref("MappingSaved")),
        obj(("version",), version=t("integer", minimum=0), comment=t("string")), (IF_MATCH, *FLAGS),
        {400: BAD_JSON, 404: "No such connector or version.", 412: "If-Match is not the current version.",
         422: MAPPING_422}),
    "admin.export_route": op("Every connector's current mapping, as one file", (200, "An attachment.", obj(
        format=t("string"), exported_at=t("string"), mappings=t("object")))),
    "admin.import_route": op(
        "Import an export file, all or nothing", (200, "Imported and unchanged connectors.", obj(
            imported=t("object"), unchanged=STRINGS, dry_run=t("boolean"))),
        obj(("mappings",), format=t("string"), mappings=t("object")),
        (query("comment", "Why."), query("force", "Ignore the exported ETags.", "boolean", default=False), *FLAGS,
         query("dry_run", "Validate and report only.", "boolean", default=False)),
        {400: BAD_JSON, 412: ("A connector changed since the export.", arr(ref("PathProblem"))),
         422: ("Problems in the import; nothing was saved.", arr(ref("PathProblem")))}),
    "admin.connectors_route": op("Every connector, with masked settings", (200, "The connectors.", obj(
        connectors=arr(ref("Connector"))))),
    "admin.check_route": op("Check the connector's credentials against the vendor", (200, "ok, or the vendor's error.",
                            t("object")), errors={404: CONNECTOR_404, 409: NOT_ENABLED}),
    "admin.fields_route": op("The fields the vendor account has", (200, "The fields.", obj(
        connector=t("string"), free_form=t("boolean"), fields=arr(t("object")))),
        errors={404: CONNECTOR_404, 409: NOT_ENABLED, 502: VENDOR_502}),
    "ops.list_failed": op("Failed syncs, newest first", (200, "The failed syncs.", obj(
        count=t("integer"), failed=arr(ref("FailedSync")))), params=FILTERS,
        errors={404: "connector names no enabled connector.", 422: "A filter is invalid."}),
    "ops.show_failed": op("One failed sync", (200, "Everything about it.", ref("FailedSync")),
                          errors={404: "No such failed sync.", 422: JOB_ID_422}),
    "ops.retry_one": op("Retry one failed sync with the contacts' current state", (202, "Queued again.", obj(
        retried=STRINGS)), errors={404: "No such failed sync.", 422: JOB_ID_422}),
    "ops.retry_many": op("Retry failed syncs by ids, filter or all", (202, "Queued again.", obj(
        retried=STRINGS, count=t("integer"))), ref("Selection"),
        errors={400: BAD_JSON, 404: "No such failed sync.", 422: "A filter or a job id is invalid."}),
    "ops.discard_one": op("Forget one failed sync", (200, "Discarded.", obj(discarded=STRINGS)),
                          errors={404: "No such failed sync.", 422: JOB_ID_422}),
    "ops.discard_many": op("Forget failed syncs by ids, filter or all", (200, "Discarded.", obj(
        discarded=STRINGS, count=t("integer"))), ref("Selection"),
        errors={400: BAD_JSON, 404: "No such failed sync.", 422: "A filter or a job id is invalid."}),
    "ops.pause_state": op(ok=(200, "The status.", ref("ConnectorStatus")), errors={404: NOT_ENABLED}),
    "ops.pause": op("Stop pushing to a connector until resumed", (200, "The status.", ref("ConnectorStatus")),
                    obj(reason=t("string", maxLength=300)), errors={400: BAD_JSON, 404: NOT_ENABLED}),
    "ops.resume": op("Resume a paused connector", (200, "The status.", ref("ConnectorStatus")),
                     errors={404: NOT_ENABLED}),
    "contacts.show": op("A contact's state and sync status per connector", (200, "The contact.", ref("ContactView")),
                        errors={404: "The hub holds no state for this contact.", 422: "Not an email address."}),
    "contacts.resync_view": op(
        "Push the contact's current state again", (202, "Queued.", obj(resync=STRINGS)),
        obj(connectors=arr(t("string"), description="Only these (default: every enabled connector).")),
        errors={400: BAD_JSON, 404: "No state for this contact, or no such enabled connector.",
                422: "Not an email address."}),
    "audit.run_view": op(
        "Run the anti-entropy audit for one connector now", (200, "What it read back and found.", obj(
            connector=t("string"), at=t("string"), checked=t("integer"), in_step=t("integer"),
            out_of_step=t("integer"), repairs_queued=t("integer"), changed_meanwhile=t("integer"),
            skipped=t("string", "Why it did not run (paused, backing off, no read API).", nullable=True),
            stopped=t("string", "Why it stopped early (budget, rate_share, rate_limited, vendor_error).",
                      nullable=True),
            error=obj(status=t("integer", nullable=True), code=t("string", nullable=True), message=t("string")),
            findings=arr(t("object", "email, repair, and what differs: missing, fields, lists_lost, "
                                     "lists_other, consent.")))),
        obj(sample=t("integer", "Contacts to read back (default HUB_AUDIT_SAMPLE).", minimum=1, maximum=1000),
            contacts=arr(t("string", format="email"), description="Audit these instead of a sample.",
                         minItems=1, maxItems=1000)),
        errors={400: BAD_JSON, 404: NOT_ENABLED, 422: "sample or contacts out of range."}),
    "contacts.erase_view": op("Erase the contact here and at every connector (irreversible)", (202, "Queued.", obj(
        erased=t("boolean"), event_id=t("string"), connectors=STRINGS)),
        errors={404: "The hub holds no state for this contact.", 422: "Not an email address."}),
}
from .feed_openapi import FEED_ROUTES  # noqa: E402 - built from the helpers above

ROUTES.update(FEED_ROUTES)
PATH_PARAMS: dict[str, tuple[str, dict[str, Any]]] = {
    "endpoint_id": ("An event-feed endpoint (ep_...).", {}),
    "connector": ("A connector.", {"enum": sorted(CONNECTORS)}),
    "name": ("An enabled connector.", {"enum": sorted(CONNECTORS)}),
    "source": ("A referral platform.", {"enum": sorted(SOURCES)}),
    "email": ("The contact's email address.", {"format": "email"}),
    "job_id": ("A failed sync's id (GET /v1/failed).", {"pattern": "^[A-Za-z0-9_-]+$"}),
    "number": ("A version number from the history.", {}),
}


# -- building ------------------------------------------------------------------------------------

def role_of(view: Callable[..., Any]) -> str | None:
    """The role auth.require(role) closed over (its wrapper keeps the view in __wrapped__)."""
    if getattr(view, "hub_role", None):
        return str(view.hub_role)  # type: ignore[attr-defined]
    if not hasattr(view, "__wrapped__") or not view.__closure__:
        return None
    role = inspect.getclosurevars(view).nonlocals.get("role")
    return role if role in ROLES else None


def security(endpoint: str, role: str | None) -> tuple[list[dict[str, list[str]]], dict[int, str]]:
    """(security requirement, the auth errors it adds)."""
    if endpoint == "ingest.post_events":
        return [{"standardWebhooks": []}, {"ingestToken": []}], {401: "Missing, stale or wrong signature or token."}
    if endpoint == "webhooks.receive":
        return [{f"webhook_{name}": []} for name in SOURCES], {401: "The platform's signature does not verify."}
    if role:
        return [{f"{role}Token": []}], {401: f"No valid bearer token with the {role} role.",
                                        403: f"The token is valid but lacks the {role} role."}
    return [], {}


def schemes(app: Flask) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {
        f"{role}Token": {"type": "http", "scheme": "bearer", "x-hub-role": role,
                         "description": f"Role {role}: a token from " + " or ".join(f"HUB_{k}" for k in keys) + "."}
        for role, keys in ROLES.items()}
    out["standardWebhooks"] = {
        "type": "apiKey", "in": "header", "name": "webhook-signature",
        "description": "Standard Webhooks: `v1,<base64 HMAC-SHA256 of webhook-id.webhook-timestamp.body>` keyed by "
                       "a `whsec_<base64>` secret from HUB_INGEST_SECRETS (several for rotation; space separated "
                       "signatures accepted); with webhook-id and webhook-timestamp headers, 5 minute tolerance."}
    for name, adapter in SOURCES.items():
        module = sys.modules[type(adapter).__module__]
        configured = app.config["HUB"].get(f"SOURCE_{name.upper()}_HEADER_NAME")
        out[f"webhook_{name}"] = {
            "type": "apiKey", "in": "header", "name": getattr(module, "SIGNATURE", None) or configured or "Authorization",
            "description": f"{adapter.label} (POST /v1/webhooks/{name}): "
                           + SIGNATURES.get(name, f"the scheme in hub/sources/{name}.py.")}
    return out


def error_response(description: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = ref("Error")
    if details is not None:
        schema = {"allOf": [ref("Error"), obj(error=obj(details=details))]}
    return {"description": description, "content": {JSON: {"schema": schema}}}


def responses(doc: dict[str, Any], auth_errors: dict[int, str], endpoint: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, description, schema in doc["ok"]:
        if schema == "metrics":
            out[str(status)] = {"description": description,
                                "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}}}
        else:
            out[str(status)] = {"description": description,
                                **({"content": {JSON: {"schema": schema}}} if schema else {})}
    errors: dict[int, Any] = {**auth_errors, **doc["errors"]}
    if endpoint not in ("health.healthz", "openapi.document"):
        errors.setdefault(503, "Redis cannot be reached; retry later (Retry-After).")
    for status, text in sorted(errors.items()):
        out[str(status)] = error_response(*text) if isinstance(text, tuple) else error_response(text)
    return out


def path_of(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """`/v1/x/<int:n>` as `/v1/x/{n}` with its path parameters."""
    params = []
    for converter, name in RULE_ARG.findall(rule):
        description, extra = PATH_PARAMS.get(name, ("", {}))
        schema = dict(CONVERTERS.get(converter, {"type": "string"}))
        if schema["type"] == "string":
            schema.update(extra)
        params.append({"in": "path", "name": name, "required": True, "schema": schema,
                       **({"description": description} if description else {})})
    return RULE_ARG.sub(lambda m: "{" + m.group(2) + "}", rule), params


def operation(app: Flask, endpoint: str, method: str, params: list[dict[str, Any]], op_id: str) -> dict[str, Any]:
    view = app.view_functions[endpoint]
    doc = ROUTES.get(endpoint) or op(ok=(200, "OK", None))
    lines = (inspect.getdoc(view) or "").strip().split("\n", 1)
    role = role_of(view)
    requirement, auth_errors = security(endpoint, role)
    out: dict[str, Any] = {
        "operationId": op_id, "tags": [endpoint.split(".", 1)[0]],
        "summary": lines[0] or doc["summary"] or endpoint.rsplit(".", 1)[-1].replace("_", " "),
        "security": requirement, "parameters": params + doc["params"],
        "responses": responses(doc, auth_errors, endpoint)}
    description = " ".join(part for part in (lines[1].strip() if len(lines) > 1 else "", doc.get("description", ""),
                                             f"Needs a bearer token with the {role} role." if role else "") if part)
    if lines[0] and doc["summary"] and doc["summary"] != lines[0]:
        description = f"{doc['summary']}. {description}".strip()
    if description:
        out["description"] = description
    if role:
        out["x-hub-role"] = role
    if doc["body"] is not None and method in ("POST", "PUT", "PATCH"):
        out["requestBody"] = {"required": endpoint not in ("ops.pause", "audit.run_view"), "content": {JSON: {"schema": doc["body"]}}}
    if endpoint not in ROUTES:
        out["x-undocumented"] = True
    return out


def tags(app: Flask) -> list[dict[str, str]]:
    out = []
    for name, blueprint in app.blueprints.items():
        doc = (sys.modules[blueprint.import_name].__doc__ or "").strip().split("\n")[0]
        out.append({"name": name, **({"description": doc} if doc else {})})
    return out


def build(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.0 document of every route `app` registers (static files and the console's
    browser pages aside)."""
    try:
        version = metadata.version("referral-sync-hub")
    except metadata.PackageNotFoundError:
        version = "0.0.0"
    plugin = MarshmallowPlugin()
    spec = APISpec("Referral Sync Hub", version, "3.0.3", plugins=[plugin], info={"description": (
        "Receives referral events and platform webhooks, keeps each person's referral state and keeps "
        "Klaviyo, Emarsys, Salesforce, Ometria and Splio in step. Every error answer has one shape: "
        "{\"error\": {\"code\", \"message\", \"details\"}}.")})
    plugin.converter.add_attribute_function(attribute_extras)  # type: ignore[union-attr]
    spec.components.schema("Error", schema=Error)
    spec.components.schema("Event", event_rules(), schema=Event)
    spec.components.schema("Mapping", schema=MappingSchema)
    batch = app.config["HUB"]["MAX_EVENTS"]
    spec.components.schema("EventBatch", obj(("events",), events=arr(ref("Event"), minItems=1, maxItems=batch)))
    for name, schema in SCHEMAS.items():
        spec.components.schema(name, schema)
    for name, scheme in schemes(app).items():
        spec.components.security_scheme(name, scheme)
    used: set[str] = set()
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static" or rule.endpoint.endswith(".static") or rule.endpoint.startswith("console."):
            continue                    # files, and the console's browser pages: not the API
        path, params = path_of(rule.rule)
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        operations = {}
        for method in methods:
            op_id = rule.endpoint.replace(".", "_") + (f"_{method.lower()}" if len(methods) > 1 else "")
            while op_id in used:
                op_id += "_"
            used.add(op_id)
            operations[method.lower()] = operation(app, rule.endpoint, method, params, op_id)
        spec.path(path, operations=operations)
    document = spec.to_dict()
    document["tags"] = tags(app)
    return document


@bp.get("/openapi.json")
def document():  # type: ignore[no-untyped-def]
    """This OpenAPI 3.0 document (no token: it describes the API, it holds no data)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if "openapi" not in app.extensions:
        app.extensions["openapi"] = build(app)
    return jsonify(app.extensions["openapi"])

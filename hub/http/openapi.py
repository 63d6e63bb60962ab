"""GET /openapi.json: the HTTP surface as OpenAPI 3.0, built by flask-smorest from each view's declaration.

Each view declares its answers, body and parameters with `@declare(...)` (flask-smorest's
`Blueprint.doc`), and flask-smorest builds the document from the blueprints; what every route
shares (auth, path parameters, 503, operation ids) is added here from the app's url_map, so a route without a declaration still appears, marked
`x-undocumented` (tests/hub/test_openapi.py names it)."""
from __future__ import annotations

import inspect
import re
import sys
from importlib import metadata
from typing import Any, Callable

import msgspec
from flask import Flask, current_app, jsonify
from flask_smorest import Api, Blueprint
from marshmallow import Schema, fields

from connectors import CONNECTORS
from mappings.schema import MappingSchema

from hub.core.auth import ROLES
from hub.core.schemas import CURRENCY, Currency, Email, Event, MAX_AMOUNT, MAX_EMAIL, Money, NEEDS, OptIn, Timestamp, Url
from sources import SOURCES

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
                           last_success=t("string", "When a push last succeeded; null: never.", format="date-time",
                                          nullable=True),
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
    object at all; a null-only branch keeps the part's own schema in force."""
    if isinstance(field, fields.Nested) and field.allow_none and "anyOf" in ret:
        target = next(item for item in ret["anyOf"] if "$ref" in item)
        return {"anyOf": [target, NULL]}
    return {}


NULL = {"type": "object", "nullable": True, "enum": [None]}
VALUES: dict[type, dict[str, Any]] = {
    Email: {"type": "string", "format": "email", "maxLength": MAX_EMAIL},
    Url: {"type": "string", "format": "uri"},
    Currency: {"type": "string", "pattern": CURRENCY.pattern},
    Timestamp: {"type": "string", "format": "date-time"},
    OptIn: {"type": "boolean"},
    Money: {"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,4})?$", "example": "59.90",
            "description": "A decimal amount as a string (a JSON number is read exactly too), at most "
                           f"{MAX_AMOUNT:,} (schemas.MAX_AMOUNT)."},
}


def openapi30(schema: Any) -> Any:
    """msgspec's JSON Schema as OpenAPI 3.0 reads it: `anyOf [X, null]` becomes a nullable X."""
    if isinstance(schema, list):
        return [openapi30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: openapi30(value) for key, value in schema.items() if key not in ("title", "default")}
    branches = out.get("anyOf", [])
    if {"type": "null"} in branches:
        rest = [item for item in branches if item != {"type": "null"}]
        del out["anyOf"]
        if len(rest) == 1 and "$ref" in rest[0]:
            out["anyOf"] = [rest[0], NULL]
        elif len(rest) == 1:
            out.update({**rest[0], "nullable": True})
        else:
            out.update({"anyOf": rest, "nullable": True})
    return out


def event_components() -> dict[str, dict[str, Any]]:
    """The JSON Schema of schemas.Event (and its parts) as components, from the msgspec declaration."""
    _, components = msgspec.json.schema_components(
        [Event], schema_hook=lambda kind: dict(VALUES[kind]), ref_template="#/components/schemas/{name}")
    out = {name: openapi30(schema) for name, schema in components.items()}
    out["Event"].update(event_rules())
    return out


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

PATH_PARAMS: dict[str, tuple[str, dict[str, Any]]] = {
    "job": ("A long job's id (job_..., from POST /v1/jobs).", {"pattern": "^[A-Za-z0-9_-]+$"}),
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


def security(auth: str | None, role: str | None) -> tuple[list[dict[str, list[str]]], dict[int, str]]:
    """(security requirement, the auth errors it adds)."""
    if auth == "ingest":
        return [{"standardWebhooks": []}, {"ingestToken": []}], {401: "Missing, stale or wrong signature or token."}
    if auth == "webhook":
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
                           + SIGNATURES.get(name, f"the scheme in sources/{name}.py.")}
    return out


def error_response(description: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = ref("Error")
    if details is not None:
        schema = {"allOf": [ref("Error"), obj(error=obj(details=details))]}
    return {"description": description, "content": {JSON: {"schema": schema}}}


def responses(doc: dict[str, Any], auth_errors: dict[int, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, description, schema in doc["ok"]:
        if schema == "metrics":
            out[str(status)] = {"description": description,
                                "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}}}
        else:
            out[str(status)] = {"description": description,
                                **({"content": {JSON: {"schema": schema}}} if schema else {})}
    errors: dict[int, Any] = {**auth_errors, **doc["errors"]}
    if doc.get("redis", True):
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


def operation(view: Callable[..., Any], doc: dict[str, Any]) -> dict[str, Any]:
    """One operation from the view (docstring, role) and its declaration."""
    lines = (inspect.getdoc(view) or "").strip().split("\n", 1)
    role = role_of(view)
    requirement, auth_errors = security(doc.get("auth"), role)
    out: dict[str, Any] = {
        "summary": lines[0] or doc["summary"] or view.__name__.replace("_", " "),
        "security": requirement, "parameters": doc["params"], "responses": responses(doc, auth_errors)}
    description = " ".join(part for part in (lines[1].strip() if len(lines) > 1 else "", doc.get("description", ""),
                                             f"Needs a bearer token with the {role} role." if role else "") if part)
    if lines[0] and doc["summary"] and doc["summary"] != lines[0]:
        description = f"{doc['summary']}. {description}".strip()
    out["description"] = description
    if role:
        out["x-hub-role"] = role
    if doc["body"] is not None:
        out["requestBody"] = {"required": doc.get("body_required", True), "content": {JSON: {"schema": doc["body"]}}}
    return out


def declare(summary: str = "", ok: Any = (200, "OK", None), body: Any = None, params: tuple[dict[str, Any], ...] = (),
            errors: dict[int, Any] | None = None, **extra: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A view's answers, body and parameters, declared beside it (below its route, above its auth):
    `ok` a (status, description, schema) or a list of them, `errors` status -> description or
    (description, details schema); `auth` "ingest" or "webhook" for those routes' own signatures,
    `redis=False` for the two routes that answer without Redis."""
    doc = op(summary, ok, body, params, errors, **extra)

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        return Blueprint.doc(**operation(view, doc))(view)  # type: ignore[no-any-return]
    return decorator


def tags(app: Flask) -> list[dict[str, str]]:
    out = []
    for name, blueprint in app.blueprints.items():
        doc = (sys.modules[blueprint.import_name].__doc__ or "").strip().split("\n")[0]
        out.append({"name": name, **({"description": doc} if doc else {})})
    return out


class HubApi(Api):
    """flask-smorest's Api with the hub's one error shape; every route declares its own errors, so
    no catch-all `default` answer."""

    ERROR_SCHEMA = Error
    DEFAULT_ERROR_RESPONSE_NAME = None


def documenting_api(app: Flask) -> Api:
    """flask-smorest's Api over the declared blueprints of `app`, with the components the
    declarations refer to. It documents them on a bare Flask app of its own, so the hub's app
    gains nothing (no error handlers, no cost) until the document is first asked for."""
    try:
        version = metadata.version("referral-sync-hub")
    except metadata.PackageNotFoundError:
        version = "0.0.0"
    documenting = Flask(app.import_name)
    documenting.config.update(HUB=app.config["HUB"], API_TITLE="Referral Sync Hub", API_VERSION=version,
                              OPENAPI_VERSION="3.0.3")
    api = HubApi(documenting, spec_kwargs={"info": {"description": (
        "Receives referral events and platform webhooks, keeps each person's referral state and keeps "
        "Klaviyo, Emarsys, Salesforce, Ometria and Splio in step. Every error answer has one shape: "
        "{\"error\": {\"code\", \"message\", \"details\"}}.")}})
    api.ma_plugin.converter.add_attribute_function(attribute_extras)
    spec = api.spec
    if "Error" not in spec.components.schemas:
        spec.components.schema("Error", schema=Error)
    for name, schema in event_components().items():
        spec.components.schema(name, schema)
    spec.components.schema("Mapping", schema=MappingSchema)
    batch = app.config["HUB"]["MAX_EVENTS"]
    spec.components.schema("EventBatch", obj(("events",), events=arr(ref("Event"), minItems=1, maxItems=batch)))
    for name, schema in SCHEMAS.items():
        spec.components.schema(name, schema)
    for name, scheme in schemes(app).items():
        spec.components.security_scheme(name, scheme)
    for blueprint in app.blueprints.values():
        if isinstance(blueprint, Blueprint):
            api.register_blueprint(blueprint)
    return api


def build(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.0 document of every route `app` registers (static files aside): flask-smorest's
    document of the declared blueprints, each operation given its path parameters and id; a route
    nobody declared gets an entry from its docstring and auth, marked x-undocumented."""
    document = documenting_api(app).spec.to_dict()
    paths = document.setdefault("paths", {})
    used: set[str] = set()
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static" or rule.endpoint.endswith(".static") or rule.endpoint.startswith("console."):
            continue                    # files, and the console's browser pages: not the API
        path, params = path_of(rule.rule)
        item = paths.setdefault(path, {})
        item.pop("parameters", None)  # flask-smorest's bare path parameters: described per operation below
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        for method in methods:
            op_id = rule.endpoint.replace(".", "_") + (f"_{method.lower()}" if len(methods) > 1 else "")
            while op_id in used:
                op_id += "_"
            used.add(op_id)
            declared = item.get(method.lower())
            if declared is None:
                declared = {**operation(app.view_functions[rule.endpoint], op()), "x-undocumented": True}
            if not declared.get("description"):
                declared.pop("description", None)
            item[method.lower()] = {"operationId": op_id, "tags": [rule.endpoint.split(".", 1)[0]], **declared,
                                    "parameters": params + declared.get("parameters", [])}
    document["paths"] = dict(sorted(paths.items()))
    document["components"]["schemas"].pop("PaginationMetadata", None)  # flask-smorest's; no hub route pages
    document["tags"] = tags(app)
    return document


@bp.get("/openapi.json")
@declare(ok=(200, "This document.", t("object")), redis=False)
def show_document():  # type: ignore[no-untyped-def]
    """This OpenAPI 3.0 document (no token: it describes the API, it holds no data)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if "openapi" not in app.extensions:
        app.extensions["openapi"] = build(app)
    return jsonify(app.extensions["openapi"])

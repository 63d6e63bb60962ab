"""HTTP: /v1/mappings and /v1/connectors (the admin API) over hub.core.admin."""
from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask_smorest import Blueprint

from hub.core import mappingstore as store
from hub.core.admin import (apply, connector_check, connector_fields, connector_lists, connectors_list, export_all, import_all, known, mapping_table, preview, redis, rollback, validate, versions_diff, view)
from hub.http.auth import actor, require
from hub.core.errors import APIError
from hub.http.errors import int_arg
from hub.core.mappingstore import UnknownVersion
from hub.http.openapi import (BAD_JSON, CHANGES, CONNECTOR_404, FLAGS, IF_MATCH, LIMIT_422, MAPPING_422, NOT_ENABLED, STRINGS,
                      VENDOR_502, arr, declare, header, obj, query, ref, t)

bp = Blueprint("admin", __name__)


def author() -> str:
    """X-Hub-Author names the person; without it, a fingerprint of the token (never the token)."""
    given = (request.headers.get("X-Hub-Author") or "").strip()
    if given:
        return given[:120]
    return actor()


def payload() -> Any:
    data = request.get_json(silent=True)
    if data is None:
        raise APIError(400, "invalid_json", "send a JSON body with Content-Type: application/json")
    return data


def flag(name: str, default: bool) -> bool:
    value = request.args.get(name)
    return default if value is None else value.lower() in ("1", "true", "yes", "on")


def unwrap(data: Any) -> tuple[Any, str]:
    """{"document": {...}, "comment": "..."} or the bare document (comment from ?comment=)."""
    if isinstance(data, dict) and "document" in data:
        return data["document"], str(data.get("comment") or "")
    return data, request.args.get("comment", "")


def with_etag(body: dict[str, Any], status: int = 200) -> Any:
    response = jsonify(body)
    response.status_code = status
    if body.get("etag"):
        response.headers["ETag"] = body["etag"]
    return response


@bp.get("/v1/mappings/<connector>")
@declare("The connector's current mapping", (200, "The current version (ETag header).",
    ref("MappingVersion")), errors={404: CONNECTOR_404})
@require("admin")
def get_mapping(connector: str) -> Any:
    return with_etag(view(connector, store.current(redis(), known(connector))))


@bp.get("/v1/mappings/<connector>/versions/<int:number>")
@declare("One saved version of the mapping", (200, "The version.", ref("MappingVersion")),
    errors={404: "No such connector or version."})
@require("admin")
def get_version(connector: str, number: int) -> Any:
    try:
        record = store.version(redis(), known(connector), number)
    except UnknownVersion:
        raise APIError(404, "unknown_version", f"the {connector} mapping has no version {number}") from None
    return jsonify(view(connector, record))


@bp.put("/v1/mappings/<connector>")
@declare(
    "Save a new mapping version", (200, "Saved (or, with dry_run, what would change).", ref("MappingSaved")),
    ref("MappingEdit"), (IF_MATCH, *FLAGS, query("dry_run", "Validate and report only.", "boolean", default=False),
                         query("comment", "Why (when the body is the bare document)."),
                         header("X-Hub-Author", "Who makes the change (else a token fingerprint).")),
    {400: BAD_JSON, 404: CONNECTOR_404, 412: "If-Match is not the current version.", 422: MAPPING_422,
     428: "If-Match is missing.", 502: VENDOR_502})
@require("admin")
def put_mapping(connector: str) -> Any:
    document, comment = unwrap(payload())
    return with_etag(apply(connector, document, author=author(), comment=comment,
                           if_match=request.headers.get("If-Match"), live=flag("live", True),
                           do_resync=flag("resync", True), dry_run=flag("dry_run", False)))


@bp.post("/v1/mappings/<connector>/validate")
@declare(
    "Validate a mapping document", (200, "Errors, live check, and what saving would change.", obj(
        connector=t("string"), valid=t("boolean"), errors=arr(ref("PathProblem")), live_check=t("string"),
        changes=CHANGES, resync=t("object"))), ref("MappingEdit"), FLAGS[:1],
    {400: BAD_JSON, 404: CONNECTOR_404, 502: VENDOR_502})
@require("admin")
def validate_mapping(connector: str) -> Any:
    document, _ = unwrap(payload())
    return jsonify(validate(connector, document, live=flag("live", True)))


@bp.post("/v1/mappings/<connector>/preview")
@declare(
    "The exact vendor requests a sync would send", (200, "Requests with secrets masked; nothing is sent.", obj(
        connector=t("string"), mapping=t("object"), sent=t("boolean"), contacts=arr(t("object")),
        requests=arr(t("object")), event=t("object"), failed=t("object"))),
    obj(email=t("string"), emails=STRINGS, event=ref("Event"), document=ref("Mapping"), force=t("boolean"),
        diff=t("boolean", description="Also answer `diff`: per contact, each field, list and consent at the "
                                      "vendor now and after the push (now from the sandbox's inspection view, "
                                      "else the vendor's read API, else \"unknown\").")),
    errors={400: BAD_JSON, 404: CONNECTOR_404,
            422: ("Neither email(s) nor event, or the event or draft is invalid.", arr(t("object")))})
@require("admin")
def preview_mapping(connector: str) -> Any:
    data = payload()
    if not isinstance(data, dict):
        raise APIError(422, "invalid_request", "send {\"email\": ...}, {\"emails\": [...]} or {\"event\": {...}}")
    emails = data.get("emails") or ([data["email"]] if data.get("email") else None)
    if emails is not None and not (isinstance(emails, list) and all(isinstance(e, str) for e in emails)):
        raise APIError(422, "invalid_request", "email must be a string and emails a list of strings")
    return jsonify(preview(connector, emails=emails, event=data.get("event"), document=data.get("document"),
                           force=bool(data.get("force")), diff=bool(data.get("diff"))))


@bp.get("/v1/mappings/<connector>/table")
@declare("The mapping as a readable table", (200, "Vendor field <- hub stat (transform), lists with their "
                                                  "conditions.", obj(
    connector=t("string"), version=t("integer"), etag=t("string"), table=t("object"))),
    params=(query("version", "A version from the history (default: the current one).", "integer", minimum=0),
            FLAGS[0]),
    errors={404: "No such connector or version.", 422: "version is not a number."})
@require("admin")
def show_mapping_table(connector: str) -> Any:
    number = request.args.get("version")
    if number is not None and not number.isdigit():
        raise APIError(422, "invalid_request", "version must be a version number from the history")
    return jsonify({"connector": connector, **mapping_table(connector, None if number is None else int(number),
                                                            live=flag("live", True))})


@bp.get("/v1/mappings/<connector>/diff")
@declare("What changed between two versions", (200, "Fields and lists added, removed, renamed or changed.", obj(
    connector=t("string"), fields=arr(t("object")), lists=arr(t("object")), other=arr(t("object")),
    same=t("boolean"))),
    params=(query("from", "A version number.", "integer", minimum=0),
            query("to", "A version number.", "integer", minimum=0)),
    errors={404: "No such connector or version.", 422: "from or to is not a number."})
@require("admin")
def diff_mapping_versions(connector: str) -> Any:
    older, newer = request.args.get("from", ""), request.args.get("to", "")
    if not (older.isdigit() and newer.isdigit()):
        raise APIError(422, "invalid_request", "send ?from=<version>&to=<version>, numbers from the history")
    return jsonify(versions_diff(known(connector), int(older), int(newer)))


@bp.get("/v1/mappings/<connector>/history")
@declare("The mapping's versions, newest first", (200, "Versions without documents.", obj(
    connector=t("string"), versions=arr(t("object")))),
    params=(query("limit", "At most.", "integer", minimum=1, maximum=1000, default=100),),
    errors={404: CONNECTOR_404, 422: LIMIT_422})
@require("admin")
def list_versions(connector: str) -> Any:
    limit = int_arg("limit", 100, 1, 1000)
    return jsonify({"connector": connector, "versions": store.history(redis(), known(connector), limit)})


@bp.post("/v1/mappings/<connector>/rollback")
@declare(
    "Make an old version current again", (200, "Saved as a new version.", ref("MappingSaved")),
    obj(("version",), version=t("integer", minimum=0), comment=t("string")), (IF_MATCH, *FLAGS),
    {400: BAD_JSON, 404: "No such connector or version.", 412: "If-Match is not the current version.",
     422: MAPPING_422})
@require("admin")
def rollback_mapping(connector: str) -> Any:
    data = payload()
    number = data.get("version") if isinstance(data, dict) else None
    if not isinstance(number, int) or isinstance(number, bool) or number < 0:
        raise APIError(422, "invalid_request", "send {\"version\": <a version number from the history>}")
    return with_etag(rollback(connector, number, author=author(), comment=str(data.get("comment") or ""),
                              if_match=request.headers.get("If-Match"), live=flag("live", True),
                              do_resync=flag("resync", True)))


@bp.get("/v1/mappings/export")
@declare("Every connector's current mapping, as one file", (200, "An attachment.", obj(
    format=t("string"), exported_at=t("string"), mappings=t("object"))))
@require("admin")
def export_mappings() -> Any:
    response = jsonify(export_all())
    response.headers["Content-Disposition"] = 'attachment; filename="mappings.json"'
    return response


@bp.post("/v1/mappings/import")
@declare(
    "Import an export file, all or nothing", (200, "Imported and unchanged connectors.", obj(
        imported=t("object"), unchanged=STRINGS, dry_run=t("boolean"))),
    obj(("mappings",), format=t("string"), mappings=t("object")),
    (query("comment", "Why."), query("force", "Ignore the exported ETags.", "boolean", default=False), *FLAGS,
     query("dry_run", "Validate and report only.", "boolean", default=False)),
    {400: BAD_JSON, 412: ("A connector changed since the export.", arr(ref("PathProblem"))),
     422: ("Problems in the import; nothing was saved.", arr(ref("PathProblem")))})
@require("admin")
def import_mappings() -> Any:
    data = payload()
    return jsonify(import_all(data, author=author(), comment=request.args.get("comment", ""),
                              force=flag("force", False), live=flag("live", True),
                              do_resync=flag("resync", True), dry_run=flag("dry_run", False)))


@bp.get("/v1/connectors")
@declare("Every connector, with masked settings", (200, "The connectors.", obj(
    connectors=arr(ref("Connector")))))
@require("admin")
def list_connectors() -> Any:
    return jsonify({"connectors": connectors_list()})


@bp.route("/v1/connectors/<connector>/check", methods=["GET", "POST"])
@declare("Check the connector's credentials against the vendor", (200, "ok, or the vendor's error.",
    t("object")), errors={404: CONNECTOR_404, 409: NOT_ENABLED})
@require("admin")
def check_connector(connector: str) -> Any:
    return jsonify(connector_check(connector))


@bp.get("/v1/connectors/<connector>/fields")
@declare("The fields the vendor account has", (200, "The fields.", obj(
    connector=t("string"), free_form=t("boolean"), fields=arr(t("object")))),
    errors={404: CONNECTOR_404, 409: NOT_ENABLED, 502: VENDOR_502})
@require("admin")
def list_fields(connector: str) -> Any:
    return jsonify(connector_fields(connector))


@bp.get("/v1/connectors/<connector>/lists")
@declare("The lists the vendor account has", (200, "The lists (listable false where the vendor cannot list "
                                                   "them).", obj(
    connector=t("string"), listable=t("boolean"), lists=arr(t("object")))),
    errors={404: CONNECTOR_404, 409: NOT_ENABLED, 502: VENDOR_502})
@require("admin")
def list_lists(connector: str) -> Any:
    return jsonify(connector_lists(connector))

"""HTTP: the admin API (mappings, their versions and previews, connectors) over hub.admin."""
from __future__ import annotations

import hashlib
from typing import Any
from flask import Blueprint, jsonify, request
from . import mappingstore as store
from .auth_http import bearer, require
from .errors import APIError
from .errors_http import int_arg
from .mappingstore import UnknownVersion
from .admin import apply, connector_check, connector_fields, connectors_list, export_all, import_all, known, preview, redis, rollback, validate, view


bp = Blueprint("admin", __name__)


# -- HTTP -----------------------------------------------------------------------------------------
def author() -> str:
    """X-Hub-Author names the person; without it, a fingerprint of the token (never the token)."""
    given = (request.headers.get("X-Hub-Author") or "").strip()
    if given:
        return given[:120]
    token = bearer() or ""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:8]


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
@require("admin")
def get_mapping(connector: str) -> Any:
    return with_etag(view(connector, store.current(redis(), known(connector))))


@bp.get("/v1/mappings/<connector>/versions/<int:number>")
@require("admin")
def get_version(connector: str, number: int) -> Any:
    try:
        record = store.version(redis(), known(connector), number)
    except UnknownVersion:
        raise APIError(404, "unknown_version", f"the {connector} mapping has no version {number}") from None
    return jsonify(view(connector, record))


@bp.put("/v1/mappings/<connector>")
@require("admin")
def put_mapping(connector: str) -> Any:
    document, comment = unwrap(payload())
    return with_etag(apply(connector, document, author=author(), comment=comment,
                           if_match=request.headers.get("If-Match"), live=flag("live", True),
                           do_resync=flag("resync", True), dry_run=flag("dry_run", False)))


@bp.post("/v1/mappings/<connector>/validate")
@require("admin")
def validate_mapping_route(connector: str) -> Any:
    document, _ = unwrap(payload())
    return jsonify(validate(connector, document, live=flag("live", True)))


@bp.post("/v1/mappings/<connector>/preview")
@require("admin")
def preview_route(connector: str) -> Any:
    data = payload()
    if not isinstance(data, dict):
        raise APIError(422, "invalid_request", "send {\"email\": ...}, {\"emails\": [...]} or {\"event\": {...}}")
    emails = data.get("emails") or ([data["email"]] if data.get("email") else None)
    if emails is not None and not (isinstance(emails, list) and all(isinstance(e, str) for e in emails)):
        raise APIError(422, "invalid_request", "email must be a string and emails a list of strings")
    return jsonify(preview(connector, emails=emails, event=data.get("event"), document=data.get("document"),
                           force=bool(data.get("force"))))


@bp.get("/v1/mappings/<connector>/history")
@require("admin")
def history_route(connector: str) -> Any:
    limit = int_arg("limit", 100, 1, 1000)
    return jsonify({"connector": connector, "versions": store.history(redis(), known(connector), limit)})


@bp.post("/v1/mappings/<connector>/rollback")
@require("admin")
def rollback_route(connector: str) -> Any:
    data = payload()
    number = data.get("version") if isinstance(data, dict) else None
    if not isinstance(number, int) or isinstance(number, bool) or number < 0:
        raise APIError(422, "invalid_request", "send {\"version\": <a version number from the history>}")
    return with_etag(rollback(connector, number, author=author(), comment=str(data.get("comment") or ""),
                              if_match=request.headers.get("If-Match"), live=flag("live", True),
                              do_resync=flag("resync", True)))


@bp.get("/v1/mappings/export")
@require("admin")
def export_route() -> Any:
    response = jsonify(export_all())
    response.headers["Content-Disposition"] = 'attachment; filename="mappings.json"'
    return response


@bp.post("/v1/mappings/import")
@require("admin")
def import_route() -> Any:
    data = payload()
    return jsonify(import_all(data, author=author(), comment=request.args.get("comment", ""),
                              force=flag("force", False), live=flag("live", True),
                              do_resync=flag("resync", True), dry_run=flag("dry_run", False)))


@bp.get("/v1/connectors")
@require("admin")
def connectors_route() -> Any:
    return jsonify({"connectors": connectors_list()})


@bp.route("/v1/connectors/<connector>/check", methods=["GET", "POST"])
@require("admin")
def check_route(connector: str) -> Any:
    return jsonify(connector_check(connector))


@bp.get("/v1/connectors/<connector>/fields")
@require("admin")
def fields_route(connector: str) -> Any:
    return jsonify(connector_fields(connector))

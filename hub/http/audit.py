"""HTTP: POST /v1/connectors/<name>/audit over hub.core.audit."""
from __future__ import annotations

from flask import jsonify, request
from flask_smorest import Blueprint

from hub.http.openapi import BAD_JSON, NOT_ENABLED, arr, declare, obj, t
from hub.http.auth import require
from hub.core.errors import APIError
from hub.core.queue import get_queues
from hub.core.audit import address, audit


bp = Blueprint("audit", __name__)


@bp.post("/v1/connectors/<name>/audit")
@declare(
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
    errors={400: BAD_JSON, 404: NOT_ENABLED, 422: "sample or contacts out of range."}, body_required=False)
@require("ops")
def run_audit(name: str):  # type: ignore[no-untyped-def]
    """Run the anti-entropy audit for one connector now and answer what it found."""
    data = request.get_json(silent=True) if request.data else {}
    if not isinstance(data, dict):
        raise APIError(400, "invalid_json", "send a JSON object")
    size, contacts = data.get("sample"), data.get("contacts")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 1000):
        raise APIError(422, "invalid_sample", "sample must be an integer from 1 to 1000", {"field": "sample"})
    if contacts is not None and (not isinstance(contacts, list) or not 1 <= len(contacts) <= 1000
                                 or not all(address(c) for c in contacts)):
        raise APIError(422, "invalid_contacts", "contacts must be 1 to 1000 email addresses", {"field": "contacts"})
    if name not in get_queues().connectors:
        raise APIError(404, "unknown_connector", f"no enabled connector named {name!r}")
    return jsonify(audit(name, size, contacts))

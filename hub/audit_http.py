"""HTTP: POST /v1/connectors/<name>/audit over hub.audit."""
from __future__ import annotations

from flask import Blueprint, jsonify, request
from .auth_http import require
from .errors import APIError
from .queue import get_queues
from .audit import address, audit


bp = Blueprint("audit", __name__)


@bp.post("/v1/connectors/<name>/audit")
@require("ops")
def run_view(name: str):  # type: ignore[no-untyped-def]
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
        raise APIError(404, "not_found", f"no enabled connector named {name!r}")
    return jsonify(audit(name, size, contacts))

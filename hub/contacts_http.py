"""HTTP: /v1/contacts/<email> (show, resync, erase) over hub.contacts."""
from __future__ import annotations

from flask import Blueprint, jsonify, request
from .auth_http import require
from .contacts import erase, normal, resync, view


bp = Blueprint("contacts", __name__)


@bp.get("/v1/contacts/<path:email>")
@require("ops")
def show(email: str):  # type: ignore[no-untyped-def]
    return jsonify(view(normal(email)))


@bp.post("/v1/contacts/<path:email>/resync")
@require("ops")
def resync_view(email: str):  # type: ignore[no-untyped-def]
    data = request.get_json(silent=True) or {}
    names = data.get("connectors") if isinstance(data, dict) else None
    return jsonify({"resync": resync(normal(email), names)}), 202


@bp.post("/v1/contacts/<path:email>/erase")
@require("admin")
def erase_view(email: str):  # type: ignore[no-untyped-def]
    return jsonify(erase(normal(email))), 202

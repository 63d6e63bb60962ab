"""HTTP: /v1/contacts/<email> (show, resync, erase) over hub.core.contacts."""
from __future__ import annotations

from flask import jsonify, request
from flask_smorest import Blueprint

from hub.http.auth import actor, require
from hub.core.contacts import erase, normal, resync, view
from hub.http.openapi import BAD_JSON, STRINGS, arr, declare, obj, ref, t

bp = Blueprint("contacts", __name__)
@bp.get("/v1/contacts/<path:email>")
@declare("A contact's state and sync status per connector", (200, "The contact.", ref("ContactView")),
    errors={404: "The hub holds no state for this contact.", 422: "Not an email address."})
@require("ops")
def show_contact(email: str):  # type: ignore[no-untyped-def]
    return jsonify(view(normal(email)))


@bp.post("/v1/contacts/<path:email>/resync")
@declare(
    "Push the contact's current state again", (202, "Queued.", obj(resync=STRINGS)),
    obj(connectors=arr(t("string"), description="Only these (default: every enabled connector).")),
    errors={400: BAD_JSON, 404: "No state for this contact, or no such enabled connector.",
            422: "Not an email address."})
@require("ops")
def resync_contact(email: str):  # type: ignore[no-untyped-def]
    data = request.get_json(silent=True) or {}
    names = data.get("connectors") if isinstance(data, dict) else None
    return jsonify({"resync": resync(normal(email), names)}), 202


@bp.post("/v1/contacts/<path:email>/erase")
@declare("Erase the contact here and at every connector (irreversible)", (202, "Queued.", obj(
    erased=t("boolean"), event_id=t("string"), connectors=STRINGS)),
    errors={404: "The hub holds no state for this contact.", 422: "Not an email address."})
@require("admin")
def erase_contact(email: str):  # type: ignore[no-untyped-def]
    return jsonify(erase(normal(email), actor())), 202

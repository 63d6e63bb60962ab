"""Ometria emulation: the push endpoint, lists and consent on the record, GDPR deletion requests."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, jsonify, request

from .core import Person, admit, store

VENDOR = "ometria"
API_KEY = "om_sandbox_demo"
LISTS = {"8400": "Referral friends - marketing", "8401": "Referral friends - customers"}
PUSH_MAX = 100
RECORD_BYTES = 60 * 1024
QUEUE_CAP = 50_000
# Published per-account limits: push 8/s, data API 4/s, GDPR 6/min.
LIMITS = {"push": ((8, 1.0),), "data": ((4, 1.0),), "gdpr": ((6, 60.0),)}
CONTACT_KEYS = {"id", "@collection", "customer_id", "firstname", "lastname", "middlename", "prefix",
                "phone_number", "date_of_birth", "country_id", "timezone", "gender", "store_ids",
                "timestamp_acquired", "timestamp_subscribed", "timestamp_unsubscribed"}
OPTIN = {"EXPLICITLY_OPTEDIN": True, "EXPLICITLY_OPTEDOUT": False}
OPTIN_VALUES = {*OPTIN, "NOT_SPECIFIED"}
# Every top-level key a contact record may carry (RudderStack's OmetriaContact.json and Ometria's
# contact docs); custom fields belong in `properties`. Whether Ometria itself refuses other keys is
# unconfirmed: the sandbox is the stricter, so a custom field sent top-level cannot pass.
RECORD_KEYS = CONTACT_KEYS | {"@type", "email", "properties", "marketing_optin", "@add_to_lists",
                              "@remove_from_lists", "@force_optin", "@merge", "channels"}
COUNTS_ONLY = "counts_only"

bp = Blueprint("ometria", __name__)


def error(status: int, message: str) -> Response:
    # Ometria's error body is not documented; a plain message is the plausible shape.
    response = jsonify({"status": status, "message": message})
    response.status_code = status
    return response


def bucket_of(path: str) -> str:
    """`path` is the full request path, mount prefix included."""
    if "/v2/push" in path:
        return "push"
    if "/v2/data-deletion-requests" in path:
        return "gdpr"
    return "data"


@bp.before_request
def guard() -> Response | None:
    bucket = bucket_of(request.path)
    answer = admit(VENDOR, bucket, request.path)
    if answer is not None:
        return answer
    if request.headers.get("X-Ometria-Auth") != API_KEY:
        # 403: the key is not authorised for the resource (docs.ometria.com data_api_v2).
        return error(403, "Forbidden: API key not authorised for this resource")
    if store().over_limit(f"{VENDOR}:{bucket}", LIMITS[bucket]) is not None:
        # Ometria sends no Retry-After (as far as its docs say): a bare 429.
        return error(429, "Too many requests")
    return None


def reject_reason(record: Any) -> str | None:
    if len(json.dumps(record).encode()) > RECORD_BYTES:
        return "Payload invalid: Record is too large."
    if not record.get("id"):
        return "Payload invalid: id is required."
    unknown = sorted(set(record) - RECORD_KEYS)
    if unknown:
        return f"Payload invalid: unknown field {unknown[0]!r}; custom fields go in properties."
    if not isinstance(record.get("properties", {}), dict):
        return "Payload invalid: properties must be an object."
    if record.get("marketing_optin", "NOT_SPECIFIED") not in OPTIN_VALUES:
        return f"Payload invalid: marketing_optin {record['marketing_optin']!r} is not a valid value."
    lists = [*record.get("@add_to_lists", []), *record.get("@remove_from_lists", [])]
    if any(not isinstance(i, int) or isinstance(i, bool) for i in lists):
        return "Payload invalid: list ids must be integers."
    email = str(record.get("email") or "").strip().lower()
    if "@" not in email or email.startswith("reject-"):
        # Deterministic per-record failure: a local part starting "reject-" is an invalid email.
        return f"Payload invalid: invalid email address {email!r}."
    missing = [i for i in lists if str(i) not in LISTS]
    if missing:
        return f"Payload invalid: list {missing[0]} does not exist."
    return None


def apply(record: dict[str, Any]) -> None:
    person: Person = store().person(VENDOR, record["email"])
    for key, value in record.items():
        if key in CONTACT_KEYS:
            person.fields[key] = value
    person.fields.update(record.get("properties") or {})
    # One source here (the API), so the latest explicit value stands. Real Ometria resolves
    # conflicting sources by priority with opt-out winning unless "@force_optin" is set.
    if record.get("marketing_optin") in OPTIN:
        person.marketing_consent = OPTIN[record["marketing_optin"]]
    person.lists.update(str(i) for i in record.get("@add_to_lists", []))
    person.lists.difference_update(str(i) for i in record.get("@remove_from_lists", []))


@bp.post("/v2/push")
def push() -> Response:
    records = request.get_json(force=True, silent=True)
    if not isinstance(records, list) or not records:
        return error(400, "Payload invalid: expected a non-empty JSON array of records.")
    if len(records) > PUSH_MAX:
        return error(400, f"Payload invalid: at most {PUSH_MAX} records per request.")
    if any(not isinstance(r, dict) or r.get("@type") != "contact" for r in records):
        return error(400, "Payload invalid: all records must be of one type (contact).")
    errors = []
    with store().lock:
        for index, record in enumerate(records):
            reason = reject_reason(record)
            if reason:
                errors.append({"index": index, "message": reason})
            else:
                apply(record)
    answer: dict[str, Any] = {"success": True, "accepted": len(records) - len(errors), "rejected": len(errors)}
    if store().modes.get(VENDOR) != COUNTS_ONLY:
        # Which record each rejection is: not in any published description. In "counts_only" mode
        # the sandbox answers as the one second opinion (RudderStack's handler) reads Ometria.
        answer["errors"] = errors
    response = jsonify(answer)
    response.status_code = 202
    response.headers.update({"X-QueueSize-Limit": str(QUEUE_CAP), "X-QueueSize-Remaining": str(QUEUE_CAP)})
    return response


@bp.post("/v2/data-deletion-requests")
def deletion_request() -> Response:
    # The body is UNCONFIRMED: Ometria's page says only that the request takes "the email address".
    body = request.get_json(force=True, silent=True)
    email = str((body or {}).get("email") or "").strip().lower() if isinstance(body, dict) else ""
    if "@" not in email:
        return error(400, "An email address is required.")
    # Real Ometria anonymises the person within 14 days of the request; the sandbox marks them
    # deleted at once so a test can see the outcome.
    with store().lock:
        store().delete(VENDOR, email)
        request_id = store().next_id("odr")
        store().jobs[request_id] = {
            "id": request_id, "action": "delete", "identities": [{"type": "email", "value": email}],
            "summary": {"status": "accepted"},
            "timestamp_created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        answer = store().jobs[request_id]
    response = jsonify(answer)
    response.status_code = 202
    return response


@bp.get("/v2/data-deletion-requests")
def deletion_requests() -> Response:
    with store().lock:
        return jsonify([job for key, job in store().jobs.items() if key.startswith("odr")])

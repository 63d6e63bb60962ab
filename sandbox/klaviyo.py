"""Klaviyo emulation: the endpoints the connector uses, with key, scopes, revision, limits and errors.

Strict where Klaviyo is strict: every request body is checked against `klaviyo_fields` (closed
objects, the spec's types) and refused with Klaviyo's 400 and JSON:API error; a key lacks the
scopes it was not given (403); an address whose local part starts `reject-` is invalid. Import
jobs can stay `processing` for a set number of status reads and page their errors; suppressions
(a person's unsubscribe, spam complaint, or a suppression by the account) are kept per profile.
Sandbox-only controls live under /_sandbox/klaviyo/ (`control`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, jsonify, request

from .core import Person, admit, store
from .klaviyo_fields import BODIES, PROFILE_ATTRIBUTES, Refusal, check

VENDOR = "klaviyo"
API_KEY = "pk_sandbox_demo"
LISTS = {"RfMkt1": "Referral friends - marketing", "RfTxn1": "Referral friends - customers",
         "RfMkt2": "Referral friends - newsletter"}
REVISION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.pre)?$")
# (burst per second, steady per minute), from the spec's x-klaviyo-ratelimit.
LIMITS = {
    "profile-import": ((75, 1.0), (750, 60.0)),
    "bulk-import": ((10, 1.0), (150, 60.0)),
    "subscribe": ((75, 1.0), (750, 60.0)),
    "unsubscribe": ((75, 1.0), (750, 60.0)),
    "lists": ((10, 1.0), (150, 60.0)),
    "profiles": ((75, 1.0), (750, 60.0)),
    "deletion": ((3, 1.0), (60, 60.0)),
    "accounts": ((1, 1.0), (15, 60.0)),
    "profile-lists": ((3, 1.0), (60, 60.0)),
}
ALL_SCOPES = frozenset({"accounts:read", "lists:read", "lists:write", "profiles:read", "profiles:write",
                        "subscriptions:read", "subscriptions:write", "data-privacy:write"})
# The scopes each route needs: the spec's x-klaviyo-scopes of its operation.
NEEDS = {
    "klaviyo.profile_import": ("profiles:write",),
    "klaviyo.bulk_import": ("lists:write", "profiles:write"),
    "klaviyo.bulk_import_status": ("lists:read", "profiles:read"),
    "klaviyo.bulk_import_errors": ("profiles:read",),
    "klaviyo.subscribe": ("lists:write", "profiles:write", "subscriptions:write"),
    "klaviyo.unsubscribe": ("lists:write", "profiles:write", "subscriptions:write"),
    "klaviyo.list_members": ("lists:write", "profiles:write"),
    "klaviyo.lists": ("lists:read",),
    "klaviyo.profiles": ("profiles:read",),
    "klaviyo.deletion": ("data-privacy:write",),
    "klaviyo.accounts": ("accounts:read",),
    "klaviyo.profile_lists": ("lists:read", "profiles:read"),
}
# The body schema (klaviyo_fields.BODIES) of each route that takes one.
BODY_OF = {"klaviyo.profile_import": "profile-import", "klaviyo.bulk_import": "bulk-import",
           "klaviyo.subscribe": "subscribe", "klaviyo.unsubscribe": "unsubscribe",
           "klaviyo.list_members": "list-members", "klaviyo.deletion": "deletion"}
# The suppressions a subscription lifts (bulk_subscribe_profiles' description says UNSUBSCRIBE,
# SPAM_REPORT and USER_SUPPRESSED; the EmailMarketingSuppression enum spells it SPAM_COMPLAINT).
LIFTED = {"UNSUBSCRIBE", "SPAM_COMPLAINT", "USER_SUPPRESSED"}
REASONS = ("HARD_BOUNCE", "INVALID_EMAIL", "SPAM_COMPLAINT", "UNSUBSCRIBE", "USER_SUPPRESSED")
CONSENT = {True: "SUBSCRIBED", False: "UNSUBSCRIBED", None: "NEVER_SUBSCRIBED"}
# Standard profile attributes (location included); every other stored field is a custom property.
STANDARD = frozenset(PROFILE_ATTRIBUTES.fields) - {"properties"}

bp = Blueprint("klaviyo", __name__)
control = Blueprint("klaviyo_sandbox", __name__)


@dataclass
class Account:
    """What the emulated account holds beyond profiles: keys and their scopes, knobs, suppressions."""

    keys: dict[str, frozenset[str]] = field(default_factory=lambda: {API_KEY: ALL_SCOPES})
    processing_polls: int = 0
    suppressions: dict[str, list[dict[str, str]]] = field(default_factory=dict)


def account() -> Account:
    with store().lock:
        return store().vendor_state.setdefault(VENDOR, Account())  # type: ignore[no-any-return]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def error(status: int, code: str, title: str, detail: str, pointer: str | None = None,
          headers: dict[str, str] | None = None) -> Response:
    item: dict[str, Any] = {"id": store().next_id("err"), "status": status, "code": code,
                            "title": title, "detail": detail, "links": {}, "meta": {}}
    if pointer:
        item["source"] = {"pointer": pointer}
    response = jsonify({"errors": [item]})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def invalid(detail: str, pointer: str | None = None) -> Response:
    return error(400, "invalid", "Invalid input.", detail, pointer)


def endpoint_of(path: str, method: str) -> str:
    if path.startswith("/api/profile-import"):
        return "profile-import"
    if path.startswith("/api/profile-bulk-import-jobs"):
        return "bulk-import"
    if path.startswith("/api/profile-subscription-bulk-create-jobs"):
        return "subscribe"
    if path.startswith("/api/profile-subscription-bulk-delete-jobs"):
        return "unsubscribe"
    if path.startswith("/api/lists"):
        return "lists"
    if path.startswith("/api/data-privacy-deletion-jobs"):
        return "deletion"
    if path.startswith("/api/accounts"):
        return "accounts"
    if path.startswith("/api/profiles/") and path.endswith("/relationships/lists"):
        return "profile-lists"
    return "profiles"


@bp.before_request
def guard() -> Response | None:
    path = request.path.removeprefix(f"/{VENDOR}")
    endpoint = endpoint_of(path, request.method)
    answer = admit(VENDOR, endpoint, path)
    if answer is not None:
        return answer
    auth = request.headers.get("Authorization", "")
    scopes = account().keys.get(auth.removeprefix("Klaviyo-API-Key ")) if auth.startswith("Klaviyo-API-Key ") else None
    if scopes is None:
        return error(401, "not_authenticated", "Authentication credentials were not provided.",
                     "Missing or invalid private key.")
    if not REVISION.match(request.headers.get("revision", "")):
        return error(400, "invalid", "Invalid input.", "The revision header is missing or invalid.")
    missing = [s for s in NEEDS.get(request.endpoint or "", ()) if s not in scopes]
    if missing:
        # 403 for a key without the operation's scope; the wording is the sandbox's own.
        return error(403, "permission_denied", "You do not have permission to perform this action.",
                     f"This API key is missing required scopes: {', '.join(missing)}.")
    wait = store().over_limit(f"{VENDOR}:{endpoint}", LIMITS[endpoint])
    if wait is not None:
        return error(429, "throttled", "Request was throttled.",
                     f"Request was throttled. Expected available in {int(wait) + 1} seconds.",
                     headers={"Retry-After": str(int(wait) + 1)})
    if request.method in ("POST", "PATCH", "DELETE") and request.content_length:
        if not request.mimetype.endswith("json"):
            return error(415, "unsupported_media_type", "Unsupported media type", request.mimetype)
    return refusal()


def refusal() -> Response | None:
    """Klaviyo's 400 for a body it does not take: bad JSON, an unknown or misplaced field, a wrong type."""
    schema = BODIES.get((request.method, BODY_OF.get(request.endpoint or "", "")))
    if schema is None:
        return None
    data = request.get_json(force=True, silent=True)
    if data is None:
        return invalid("The payload provided in the request is invalid.", "/data")
    try:
        check(data, schema)
    except Refusal as refused:
        return invalid(refused.detail, refused.pointer)
    return None


def body() -> dict[str, Any]:
    data = request.get_json(force=True, silent=True)
    return data if isinstance(data, dict) else {}


def bad_email(email: str) -> bool:
    """Invalid at Klaviyo: no @, or (the sandbox's rule for a per-record failure) a local part
    starting `reject-`."""
    return "@" not in email or email.startswith("reject-")


def upsert(attributes: dict[str, Any]) -> tuple[Person, bool]:
    email = (attributes.get("email") or "").strip().lower()
    existed = store().find(VENDOR, email) is not None and not store().find(VENDOR, email).deleted  # type: ignore[union-attr]
    person = store().person(VENDOR, email)
    for key, value in attributes.items():
        if key == "properties":
            for name, v in (value or {}).items():
                if v is None:
                    person.fields.pop(name, None)
                else:
                    person.fields[name] = v
        elif key != "email" and value is not None:
            person.fields[key] = value
    return person, existed


def subscriptions_json(email: str, person: Person) -> dict[str, Any]:
    """subscriptions.email.marketing as get_profiles answers it with additional-fields[profile]."""
    suppressed = account().suppressions.get(email, [])
    return {"email": {"marketing": {
        "can_receive_email_marketing": person.marketing_consent is not False and not suppressed,
        "consent": CONSENT[person.marketing_consent], "suppression": list(suppressed), "list_suppressions": []}}}


def profile_json(email: str, person: Person) -> dict[str, Any]:
    """A profile as Klaviyo answers it: standard attributes at the top, custom ones nested under
    `properties`, and `subscriptions` only when additional-fields[profile] asks for it."""
    attributes: dict[str, Any] = {"email": email, **{k: v for k, v in person.fields.items() if k in STANDARD}}
    attributes["properties"] = {k: v for k, v in person.fields.items() if k not in STANDARD}
    if "subscriptions" in request.args.get("additional-fields[profile]", "").split(","):
        attributes["subscriptions"] = subscriptions_json(email, person)
    return {"type": "profile", "id": person.vendor_id, "attributes": attributes}


@bp.post("/api/profile-import")
def profile_import() -> Response:
    attributes = body()["data"]["attributes"]
    email = (attributes.get("email") or "").strip().lower()
    if not email:
        return invalid("A profile identifier is required.", "/data/attributes/email")
    if bad_email(email):
        return invalid("Invalid email address.", "/data/attributes/email")
    with store().lock:
        person, existed = upsert(attributes)
    response = jsonify({"data": profile_json(email, person)})
    response.status_code = 200 if existed else 201
    return response


@bp.post("/api/profile-bulk-import-jobs")
def bulk_import() -> Response:
    data = body()["data"]
    profiles = data["attributes"]["profiles"]["data"]
    if not profiles:
        return invalid("profiles.data is required.", "/data/attributes/profiles")
    if len(profiles) > 10_000 or (request.content_length or 0) > 5_000_000:
        return error(413, "too_large", "Payload too large.", "At most 10,000 profiles and 5 MB per job.")
    lists = [item["id"] for item in (data.get("relationships") or {}).get("lists", {}).get("data", [])]
    unknown = [i for i in lists if i not in LISTS]
    if unknown:
        return error(404, "not_found", "Not found.", f"List {unknown[0]} does not exist.")
    job_id = store().next_id("imp")
    errors, good = [], []
    for index, item in enumerate(profiles):
        attributes = item["attributes"]
        if bad_email((attributes.get("email") or "").strip().lower()):
            errors.append({"type": "import-error", "id": store().next_id("ie"), "attributes": {
                "code": "invalid", "title": "Invalid input.", "detail": "Invalid email address.",
                "source": {"pointer": f"/data/attributes/profiles/data/{index}/attributes/email"},
                "original_payload": attributes}})
        else:
            good.append(attributes)
    with store().lock:
        store().jobs[job_id] = {"total": len(profiles), "failed": len(errors), "errors": errors, "profiles": good,
                                "lists": lists, "polls_left": account().processing_polls, "done": False,
                                "created_at": now_iso()}
        if not account().processing_polls:
            finish_import(job_id)
    return job_response(job_id, 202)


def finish_import(job_id: str) -> None:
    """The job's profiles land (and join its lists) only when it completes."""
    job = store().jobs[job_id]
    for attributes in job["profiles"]:
        person, _ = upsert(attributes)
        person.lists.update(job["lists"])
    job["done"] = True


def job_response(job_id: str, status: int) -> Response:
    job = store().jobs[job_id]
    state = "complete" if job["done"] else ("queued" if status == 202 else "processing")
    response = jsonify({"data": {"type": "profile-bulk-import-job", "id": job_id, "attributes": {
        "status": state, "created_at": job["created_at"], "total_count": job["total"],
        "completed_count": job["total"] - job["failed"] if job["done"] else 0,
        "failed_count": job["failed"] if job["done"] else 0}}})
    response.status_code = status
    return response


@bp.get("/api/profile-bulk-import-jobs/<job_id>")
def bulk_import_status(job_id: str) -> Response:
    """A job set to stay processing answers so for that many reads, then completes."""
    with store().lock:
        job = store().jobs.get(job_id)
        if job is None:
            return error(404, "not_found", "Not found.", f"Job {job_id} does not exist.")
        if not job["done"]:
            if job["polls_left"] > 0:
                job["polls_left"] -= 1
            else:
                finish_import(job_id)
    return job_response(job_id, 200)


@bp.get("/api/profile-bulk-import-jobs/<job_id>/import-errors")
def bulk_import_errors(job_id: str) -> Response:
    """Cursor-paginated: page[size] 1-100, 20 by default; `links.next` while more remain."""
    job = store().jobs.get(job_id)
    if job is None:
        return error(404, "not_found", "Not found.", f"Job {job_id} does not exist.")
    size_arg = request.args.get("page[size]", "20")
    if not size_arg.isdigit() or not 1 <= int(size_arg) <= 100:
        return error(400, "invalid", "Invalid input.", "page[size] must be between 1 and 100.",
                     None)
    size, cursor = int(size_arg), request.args.get("page[cursor]", "c0")
    if not re.fullmatch(r"c\d+", cursor):
        return error(400, "invalid", "Invalid input.", "Invalid page cursor.")
    start = int(cursor[1:])
    errors = job["errors"] if job["done"] else []
    links = {"self": request.url}
    if start + size < len(errors):
        links["next"] = f"{request.base_url}?page[size]={size}&page[cursor]=c{start + size}"
    return jsonify({"data": errors[start:start + size], "links": links})


def subscription_job(consent: bool) -> Response:
    data = body()["data"]
    profiles = data["attributes"]["profiles"]["data"]
    cap = 1000 if consent else 100
    if not profiles or len(profiles) > cap:
        return invalid(f"Between 1 and {cap} profiles per job.", "/data/attributes/profiles/data")
    list_id = (((data.get("relationships") or {}).get("list") or {}).get("data") or {}).get("id")
    if list_id and list_id not in LISTS:
        return error(404, "not_found", "Not found.", f"List {list_id} does not exist.")
    with store().lock:
        for item in profiles:
            email = (item["attributes"].get("email") or "").strip().lower()
            if bad_email(email):
                continue   # the job is asynchronous: an invalid profile is skipped, not reported
            if consent:
                subscribe_one(email, list_id)
            else:
                unsubscribe_one(email, list_id)
    return Response(status=202)


def subscribe_one(email: str, list_id: str | None) -> None:
    """SUBSCRIBED, and (as the spec says of this endpoint) any UNSUBSCRIBE, SPAM_COMPLAINT or
    USER_SUPPRESSED suppression is lifted."""
    person = store().person(VENDOR, email)
    person.marketing_consent = True
    kept = [s for s in account().suppressions.get(email, []) if s["reason"] not in LIFTED]
    account().suppressions[email] = kept
    if list_id:
        person.lists.add(list_id)


def unsubscribe_one(email: str, list_id: str | None) -> None:
    """A profile in the given list leaves it; one not in it (or with no list given) is
    unsubscribed globally (bulk_unsubscribe_profiles' warning)."""
    person = store().person(VENDOR, email)
    if list_id and list_id in person.lists:
        person.lists.discard(list_id)
        return
    person.marketing_consent = False
    suppress(email, "UNSUBSCRIBE")


def suppress(email: str, reason: str) -> None:
    entries = account().suppressions.setdefault(email, [])
    if all(s["reason"] != reason for s in entries):
        entries.append({"reason": reason, "timestamp": now_iso()})


@bp.post("/api/profile-subscription-bulk-create-jobs")
def subscribe() -> Response:
    return subscription_job(True)


@bp.post("/api/profile-subscription-bulk-delete-jobs")
def unsubscribe() -> Response:
    return subscription_job(False)


@bp.route("/api/lists/<list_id>/relationships/profiles", methods=["POST", "DELETE"])
def list_members(list_id: str) -> Response:
    """Plain membership: no consent changes either way."""
    if list_id not in LISTS:
        return error(404, "not_found", "Not found.", f"List {list_id} does not exist.")
    ids = {item["id"] for item in body()["data"]}
    if len(ids) > 1000:
        return invalid("At most 1000 profiles per call.", "/data")
    with store().lock:
        for person in store().people[VENDOR].values():
            if person.vendor_id in ids:
                (person.lists.add if request.method == "POST" else person.lists.discard)(list_id)
    return Response(status=204)


@bp.get("/api/lists")
def lists() -> Response:
    return jsonify({"data": [{"type": "list", "id": i, "attributes": {"name": n}} for i, n in LISTS.items()],
                    "links": {"self": request.url}})


@bp.get("/api/profiles")
def profiles() -> Response:
    size = request.args.get("page[size]", "20")
    if not size.isdigit() or not 1 <= int(size) <= 100:
        return invalid("page[size] must be between 1 and 100.")
    wanted = re.findall(r'"([^"]+)"', request.args.get("filter", ""))
    found = [profile_json(e, p) for e in wanted if (p := store().find(VENDOR, e)) and not p.deleted]
    return jsonify({"data": found, "links": {"self": request.url}})


@bp.post("/api/data-privacy-deletion-jobs")
def deletion() -> Response:
    profile = body()["data"]["attributes"]["profile"]["data"]
    attributes = profile.get("attributes") or {}
    given = [k for k in ("email", "phone_number") if attributes.get(k)] + (["id"] if profile.get("id") else [])
    if len(given) != 1:
        return invalid("Exactly one of email, phone_number or id is required.", "/data/attributes/profile/data")
    if attributes.get("email"):
        store().delete(VENDOR, attributes["email"])
        account().suppressions.pop(attributes["email"].strip().lower(), None)
    return Response(status=202)


@bp.get("/api/accounts")
def accounts() -> Response:
    return jsonify({"data": [{"type": "account", "id": "SANDBOX", "attributes": {}}]})


# -- sandbox-only controls, mounted at /_sandbox/klaviyo -------------------------------------------
def bad_control(message: str) -> Response:
    response = jsonify({"error": {"code": "bad_request", "message": message}})
    response.status_code = 400
    return response


@control.post("/keys")
def add_key() -> Response:
    """A further private key with only the given scopes: {"key": "pk_...", "scopes": [...]}."""
    spec = body()
    scopes = spec.get("scopes")
    if not str(spec.get("key", "")).startswith("pk_") or not isinstance(scopes, list):
        return bad_control('give {"key": "pk_...", "scopes": [...]}')
    unknown = sorted(set(scopes) - ALL_SCOPES)
    if unknown:
        return bad_control(f"unknown scopes {unknown}")
    account().keys[spec["key"]] = frozenset(scopes)
    return jsonify({"key": spec["key"], "scopes": sorted(scopes)})


@control.post("/jobs")
def job_knobs() -> Response:
    """{"processing_polls": n}: each new import job answers `processing` to n status reads first."""
    polls = body().get("processing_polls")
    if not isinstance(polls, int) or polls < 0:
        return bad_control("processing_polls: a whole number >= 0")
    account().processing_polls = polls
    return jsonify({"processing_polls": polls})


@control.post("/suppressions")
def add_suppression() -> Response:
    """What a person (or the account) does inside Klaviyo: {"email", "reason"}. UNSUBSCRIBE and
    SPAM_COMPLAINT also set the consent to UNSUBSCRIBED."""
    spec = body()
    email, reason = str(spec.get("email") or "").strip().lower(), spec.get("reason")
    if "@" not in email or reason not in REASONS:
        return bad_control(f"give an email and a reason in {list(REASONS)}")
    with store().lock:
        person = store().person(VENDOR, email)
        if reason in ("UNSUBSCRIBE", "SPAM_COMPLAINT"):
            person.marketing_consent = False
        suppress(email, reason)
    return jsonify({"email": email, "suppression": account().suppressions[email]})


@control.get("/suppressions/<path:email>")
def suppressions(email: str) -> Response:
    return jsonify({"email": email.lower(), "suppression": account().suppressions.get(email.strip().lower(), [])})


# -- reading profiles back (the hub's anti-entropy audit) ----------------------------------------
@bp.get("/api/profiles/<profile_id>/relationships/lists")
def profile_lists(profile_id: str) -> Response:
    """get_list_ids_for_profile: the ids of the lists the profile is in; 404 for no such profile."""
    with store().lock:
        person = next((p for p in store().people[VENDOR].values() if p.vendor_id == profile_id and not p.deleted), None)
        if person is None:
            return error(404, "not_found", "Not found.", f"Profile {profile_id} does not exist.")
        ids = sorted(person.lists)
    return jsonify({"data": [{"type": "list", "id": i} for i in ids], "links": {"self": request.url}})

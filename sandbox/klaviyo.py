"""Klaviyo emulation: the endpoints the connector uses, with key, revision, limits and errors."""
from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, jsonify, request

from .core import Person, admit, store

VENDOR = "klaviyo"
API_KEY = "pk_sandbox_demo"
LISTS = {"RfMkt1": "Referral friends - marketing", "RfTxn1": "Referral friends - customers"}
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

bp = Blueprint("klaviyo", __name__)


def error(status: int, code: str, title: str, detail: str, pointer: str | None = None,
          headers: dict[str, str] | None = None) -> Response:
    item: dict[str, Any] = {"id": store().next_id("err"), "status": status, "code": code,
                            "title": title, "detail": detail}
    if pointer:
        item["source"] = {"pointer": pointer}
    response = jsonify({"errors": [item]})
    response.status_code = status
    response.headers.update(headers or {})
    return response


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
    if auth != f"Klaviyo-API-Key {API_KEY}":
        return error(401, "not_authenticated", "Authentication credentials were not provided.",
                     "Missing or invalid private key.")
    if not REVISION.match(request.headers.get("revision", "")):
        return error(400, "invalid", "Invalid input.", "The revision header is missing or invalid.")
    wait = store().over_limit(f"{VENDOR}:{endpoint}", LIMITS[endpoint])
    if wait is not None:
        return error(429, "throttled", "Request was throttled.",
                     f"Request was throttled. Expected available in {int(wait) + 1} seconds.",
                     headers={"Retry-After": str(int(wait) + 1)})
    if request.method in ("POST", "PATCH", "DELETE") and request.content_length:
        if not request.mimetype.endswith("json"):
            return error(415, "unsupported_media_type", "Unsupported media type", request.mimetype)
    return None


def body() -> dict[str, Any]:
    data = request.get_json(force=True, silent=True)
    return data if isinstance(data, dict) else {}


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


def profile_json(email: str, person: Person) -> dict[str, Any]:
    return {"type": "profile", "id": person.vendor_id, "attributes": {"email": email, **person.fields}}


@bp.post("/api/profile-import")
def profile_import() -> Response:
    attributes = body().get("data", {}).get("attributes") or {}
    if not attributes.get("email"):
        return error(400, "invalid", "Invalid input.", "A profile identifier is required.", "/data/attributes/email")
    with store().lock:
        person, existed = upsert(attributes)
    response = jsonify({"data": profile_json(attributes["email"].lower(), person)})
    response.status_code = 200 if existed else 201
    return response


@bp.post("/api/profile-bulk-import-jobs")
def bulk_import() -> Response:
    data = body().get("data", {})
    profiles = ((data.get("attributes") or {}).get("profiles") or {}).get("data") or []
    if not profiles:
        return error(400, "invalid", "Invalid input.", "profiles.data is required.", "/data/attributes/profiles")
    if len(profiles) > 10_000 or (request.content_length or 0) > 5_000_000:
        return error(413, "too_large", "Payload too large.", "At most 10,000 profiles and 5 MB per job.")
    lists = [item["id"] for item in (data.get("relationships") or {}).get("lists", {}).get("data", [])]
    unknown = [i for i in lists if i not in LISTS]
    if unknown:
        return error(404, "not_found", "Not found.", f"List {unknown[0]} does not exist.")
    job_id = store().next_id("imp")
    errors = []
    with store().lock:
        for index, item in enumerate(profiles):
            attributes = item.get("attributes") or {}
            email = (attributes.get("email") or "").strip().lower()
            if "@" not in email:
                errors.append({"type": "import-error", "id": store().next_id("ie"), "attributes": {
                    "code": "invalid", "title": "Invalid input.", "detail": "Invalid email address.",
                    "source": {"pointer": f"/data/attributes/profiles/data/{index}/attributes/email"},
                    "original_payload": attributes}})
                continue
            person, _ = upsert(attributes)
            person.lists.update(lists)
        store().jobs[job_id] = {"total": len(profiles), "failed": len(errors), "errors": errors}
    return job_response(job_id, 202)


def job_response(job_id: str, status: int) -> Response:
    job = store().jobs[job_id]
    response = jsonify({"data": {"type": "profile-bulk-import-job", "id": job_id, "attributes": {
        "status": "complete", "total_count": job["total"], "completed_count": job["total"] - job["failed"],
        "failed_count": job["failed"]}}})
    response.status_code = status
    return response


@bp.get("/api/profile-bulk-import-jobs/<job_id>")
def bulk_import_status(job_id: str) -> Response:
    if job_id not in store().jobs:
        return error(404, "not_found", "Not found.", f"Job {job_id} does not exist.")
    return job_response(job_id, 200)


@bp.get("/api/profile-bulk-import-jobs/<job_id>/import-errors")
def bulk_import_errors(job_id: str) -> Response:
    if job_id not in store().jobs:
        return error(404, "not_found", "Not found.", f"Job {job_id} does not exist.")
    return jsonify({"data": store().jobs[job_id]["errors"], "links": {"self": request.url}})


def subscription_job(consent: bool) -> Response:
    data = body().get("data", {})
    profiles = ((data.get("attributes") or {}).get("profiles") or {}).get("data") or []
    cap = 1000 if consent else 100
    if not profiles or len(profiles) > cap:
        return error(400, "invalid", "Invalid input.", f"Between 1 and {cap} profiles per job.")
    list_id = (((data.get("relationships") or {}).get("list") or {}).get("data") or {}).get("id")
    if list_id and list_id not in LISTS:
        return error(404, "not_found", "Not found.", f"List {list_id} does not exist.")
    with store().lock:
        for item in profiles:
            email = (item.get("attributes") or {}).get("email") or ""
            person = store().person(VENDOR, email)
            if consent:
                person.marketing_consent = True
                if list_id:
                    person.lists.add(list_id)
            else:
                if list_id:
                    person.lists.discard(list_id)
                else:
                    person.marketing_consent = False
    return Response(status=202)


@bp.post("/api/profile-subscription-bulk-create-jobs")
def subscribe() -> Response:
    return subscription_job(True)


@bp.post("/api/profile-subscription-bulk-delete-jobs")
def unsubscribe() -> Response:
    return subscription_job(False)


@bp.route("/api/lists/<list_id>/relationships/profiles", methods=["POST", "DELETE"])
def list_members(list_id: str) -> Response:
    if list_id not in LISTS:
        return error(404, "not_found", "Not found.", f"List {list_id} does not exist.")
    ids = {item.get("id") for item in body().get("data", [])}
    if len(ids) > 1000:
        return error(400, "invalid", "Invalid input.", "At most 1000 profiles per call.")
    with store().lock:
        for person in store().people[VENDOR].values():
            if person.vendor_id in ids:
                (person.lists.add if request.method == "POST" else person.lists.discard)(list_id)
    return Response(status=204)


@bp.get("/api/profiles")
def profiles() -> Response:
    wanted = re.findall(r'"([^"]+)"', request.args.get("filter", ""))
    found = [profile_resource(e, p) for e in wanted if (p := store().find(VENDOR, e)) and not p.deleted]
    return jsonify({"data": found, "links": {"self": request.url}})


@bp.post("/api/data-privacy-deletion-jobs")
def deletion() -> Response:
    profile = (((body().get("data") or {}).get("attributes") or {}).get("profile") or {}).get("data") or {}
    attributes = profile.get("attributes") or {}
    given = [k for k in ("email", "phone_number") if attributes.get(k)] + (["id"] if profile.get("id") else [])
    if len(given) != 1:
        return error(400, "invalid", "Invalid input.", "Exactly one of email, phone_number or id is required.")
    if attributes.get("email"):
        store().delete(VENDOR, attributes["email"])
    return Response(status=202)


@bp.get("/api/accounts")
def accounts() -> Response:
    return jsonify({"data": [{"type": "account", "id": "SANDBOX", "attributes": {}}]})


# -- reading profiles back (the hub's anti-entropy audit) ----------------------------------------
# Standard profile attributes; every other stored field is a custom property.
ATTRIBUTES = {"email", "phone_number", "external_id", "first_name", "last_name", "organization",
              "locale", "title", "image"}
CONSENT = {True: "SUBSCRIBED", False: "UNSUBSCRIBED", None: "NEVER_SUBSCRIBED"}


def profile_resource(email: str, person: Person) -> dict[str, Any]:
    """A profile as GET /api/profiles returns it: standard attributes at the top, custom ones in
    `properties`, and `subscriptions` only when additional-fields[profile] asks for it."""
    attributes: dict[str, Any] = {"email": email, **{k: v for k, v in person.fields.items() if k in ATTRIBUTES}}
    attributes["properties"] = {k: v for k, v in person.fields.items() if k not in ATTRIBUTES}
    if "subscriptions" in request.args.get("additional-fields[profile]", "").split(","):
        attributes["subscriptions"] = {"email": {"marketing": {
            "can_receive_email_marketing": person.marketing_consent is not False,
            "consent": CONSENT[person.marketing_consent]}}}
    return {"type": "profile", "id": person.vendor_id, "attributes": attributes}


@bp.get("/api/profiles/<profile_id>/relationships/lists")
def profile_lists(profile_id: str) -> Response:
    """get_list_ids_for_profile: the ids of the lists the profile is in; 404 for no such profile."""
    with store().lock:
        person = next((p for p in store().people[VENDOR].values() if p.vendor_id == profile_id and not p.deleted), None)
        if person is None:
            return error(404, "not_found", "Not found.", f"Profile {profile_id} does not exist.")
        ids = sorted(person.lists)
    return jsonify({"data": [{"type": "list", "id": i} for i in ids], "links": {"self": request.url}})

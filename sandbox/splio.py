"""Splio emulation: JWT auth, contacts (bulk create, PATCH), list subscriptions, fields, bulk delete."""
from __future__ import annotations

import math
import time
from typing import Any

import jwt
from flask import Blueprint, Response, jsonify, request

from .core import Person, admit, store

VENDOR = "splio"
API_KEY = "splio_sandbox_demo"
JWT_SECRET = "splio-sandbox-signing-secret-not-for-production"
TOKEN_TTL = 24 * 3600
BULK_MAX = 1_000
# In Splio every list is a subscription; list 25 is the newsletter the marketing opt-in feeds.
LISTS = {"25": "Referral friends - newsletter", "26": "Referral friends - customers"}
NEWSLETTERS = {"25"}
STANDARD = ("email", "cellphone", "firstname", "lastname", "language", "creation_date")
# The demo universe's contact custom fields (created with POST /data/fields).
FIELDS = [
    {"id": 1, "name": "referral_nb_potential_referred", "data_type": "int"},
    {"id": 2, "name": "referral_nb_converted_prospects", "data_type": "int"},
    {"id": 3, "name": "referral_nb_converted_customers", "data_type": "int"},
    {"id": 4, "name": "referral_turnover_generated", "data_type": "double"},
    {"id": 5, "name": "referral_referrer_id", "data_type": "text"},
    {"id": 6, "name": "referral_promocode", "data_type": "text"},
    {"id": 7, "name": "referral_share_url", "data_type": "text"},
    {"id": 8, "name": "referral_referred_by", "data_type": "text"},
    {"id": 9, "name": "referral_last_activity", "data_type": "date"},
]
SYSTEM_FIELDS = [{"id": 0, "name": "ext_id", "data_type": "text", "is_system": True}]
# Per client IP: data/contacts 20/s, everything else 10/s.
LIMITS = {"contacts": 20, "default": 10}
CASTS = {"int": int, "double": float, "text": str, "date": str}
# The keys the contact API describes for create and PATCH; the sandbox refuses any other.
CONTACT_KEYS = {"email", "cellphone", "unique_key", "firstname", "lastname", "language", "creation_date",
                "lists", "double_optin", "custom_fields", "tracking_consent"}

bp = Blueprint("splio", __name__)


class Invalid(Exception):
    def __init__(self, status: int, key: str, description: str) -> None:
        super().__init__(description)
        self.status, self.key, self.description = status, key, description


def error(status: int, key: str, description: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"status": status, "errors": [
        {"error_key": key, "error": "wrong_value" if status < 500 else "error", "error_description": description}]})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def throttled(limit: int, wait: float) -> Response:
    # Splio's gateway answers 429 with RateLimit-* headers and no Retry-After.
    response = jsonify({"message": "API rate limit exceeded"})
    response.status_code = 429
    response.headers.update({"RateLimit-Limit": str(limit), "RateLimit-Remaining": "0",
                             "RateLimit-Reset": str(max(1, math.ceil(wait)))})
    return response


@bp.before_request
def guard() -> Response | None:
    bucket = "contacts" if "/data/contacts" in request.path else "default"
    answer = admit(VENDOR, bucket, request.path)
    if answer is not None:
        return answer
    wait = store().over_limit(f"{VENDOR}:{request.remote_addr}:{bucket}", ((LIMITS[bucket], 1.0),))
    if wait is not None:
        return throttled(LIMITS[bucket], wait)
    if request.path.endswith("/authenticate"):
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    try:
        if scheme != "Bearer":
            raise jwt.InvalidTokenError("no bearer token")
        jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
    except jwt.InvalidTokenError:
        return error(401, "authorization", "Authentication failed: missing, invalid or expired token.")
    return None


def body() -> dict[str, Any]:
    data = request.get_json(force=True, silent=True)
    return data if isinstance(data, dict) else {}


@bp.post("/authenticate")
def authenticate() -> Response:
    if body().get("api_key") != API_KEY:
        return error(401, "api_key", "Authentication failed.")
    now = int(time.time())
    return jsonify({"token": jwt.encode({"sub": "sandbox-universe", "iat": now, "exp": now + TOKEN_TTL},
                                        JWT_SECRET, algorithm="HS256")})


# -- contacts ---------------------------------------------------------------------------------
def live(key: str) -> Person | None:
    person = store().find(VENDOR, key)
    return person if person is not None and not person.deleted else None


def unknown_keys(data: dict[str, Any]) -> None:
    unknown = sorted(set(data) - CONTACT_KEYS)
    if unknown:
        raise Invalid(400, unknown[0], f"Field {unknown[0]} is not a contact field.")


def custom_values(items: Any) -> dict[str, Any]:
    """Check custom fields against the universe's and cast values as Splio stores them."""
    values: dict[str, Any] = {}
    for item in items or []:
        field = next((f for f in FIELDS if f["id"] == item.get("id") or f["name"] == item.get("name")), None)
        if field is None:
            raise Invalid(400, "custom_fields", f"Custom field {item.get('name') or item.get('id')} does not exist.")
        if not isinstance(item.get("value"), str):
            # The contact API types custom_fields[].value as a string whatever the field's type.
            raise Invalid(400, f"custom_fields.{field['name']}",
                          f"Value {item.get('value')!r} must be a string.")
        try:
            values[str(field["name"])] = CASTS[str(field["data_type"])](item.get("value"))
        except (TypeError, ValueError):
            raise Invalid(400, f"custom_fields.{field['name']}",
                          f"Value {item.get('value')!r} is not a valid {field['data_type']}.") from None
    return values


def list_set(items: Any) -> set[str]:
    ids = {str(i.get("id") if isinstance(i, dict) else i) for i in items or []}
    unknown = sorted(ids - set(LISTS))
    if unknown:
        raise Invalid(400, "lists", f"List {unknown[0]} does not exist.")
    return ids


def write(person: Person, data: dict[str, Any], custom: dict[str, Any]) -> None:
    person.fields.update({k: data[k] for k in STANDARD if k in data and k != "email"})
    person.fields.update(custom)


def set_lists(person: Person, lists: set[str]) -> None:
    """In Splio a newsletter list IS the marketing subscription, so consent follows membership."""
    person.lists = set(lists)
    if person.lists & NEWSLETTERS:
        person.marketing_consent = True
    elif person.marketing_consent is True:
        person.marketing_consent = False


def create_one(data: dict[str, Any]) -> str:
    key = str(data.get("unique_key") or data.get("email") or "").strip().lower()
    if "@" not in str(data.get("email") or "") or key.startswith("reject-"):
        # Deterministic per-record failure: a local part starting "reject-" is an invalid email.
        raise Invalid(400, "email", f"Invalid email address {key}.")
    if live(key):
        raise Invalid(400, "email", f"Contact with unique key {key} already exists")
    unknown_keys(data)
    custom, lists = custom_values(data.get("custom_fields")), list_set(data.get("lists"))
    person = store().person(VENDOR, key)
    write(person, data, custom)
    set_lists(person, lists)
    return key


def contact_json(key: str, person: Person) -> dict[str, Any]:
    types = {f["name"]: f for f in FIELDS}
    return {"email": key, **{k: v for k, v in person.fields.items() if k in STANDARD},
            "custom_fields": [{"id": types[n]["id"], "name": n, "value": v, "data_type": types[n]["data_type"]}
                              for n, v in person.fields.items() if n in types],
            "lists": [{"id": int(i), "name": LISTS[i]} for i in sorted(person.lists)]}


@bp.post("/data/contacts")
def create() -> Response:
    try:
        with store().lock:
            key = create_one(body())
            person = live(key)
    except Invalid as exc:
        return error(exc.status, exc.key, exc.description)
    response = jsonify(contact_json(key, person))  # type: ignore[arg-type]
    response.status_code = 201
    return response


def multi_status(items: list[dict[str, Any]], started: float) -> Response:
    response = jsonify({"time": int((time.monotonic() - started) * 1000),
                        "errors": sum(1 for i in items if i["code"] >= 300), "items": items})
    response.status_code = 207
    return response


def batch(name: str) -> list[Any] | Response:
    items = body().get(name)
    if not isinstance(items, list) or not 1 <= len(items) <= BULK_MAX:
        return error(400, name, f"Between 1 and {BULK_MAX} {name} are accepted.")
    return items


@bp.post("/data/contacts/bulk")
def bulk_create() -> Response:
    started, contacts = time.monotonic(), batch("contacts")
    if isinstance(contacts, Response):
        return contacts
    items = []
    with store().lock:
        for data in contacts:
            data = data if isinstance(data, dict) else {}
            try:
                items.append({"contact_id": create_one(data), "code": 201, "description": ""})
            except Invalid as exc:
                items.append({"contact_id": str(data.get("email") or ""), "code": exc.status,
                              "description": exc.description})
    return multi_status(items, started)


@bp.delete("/data/contacts/bulk")
def bulk_delete() -> Response:
    """Asynchronous at Splio; the sandbox deletes at once and answers per key as Splio does."""
    started, keys = time.monotonic(), batch("contacts")
    if isinstance(keys, Response):
        return keys
    items = []
    with store().lock:
        for key in keys:
            if store().delete(VENDOR, str(key)):
                items.append({"contact_id": key, "code": 204, "description": ""})
            else:
                items.append({"contact_id": key, "code": 404, "description": f"Contact not found for id {key}."})
    return multi_status(items, started)


@bp.patch("/data/contacts/<key>")
def update(key: str) -> Response:
    data = body()
    try:
        with store().lock:
            person = live(key)
            if person is None:
                # Splio's PATCH documents only 400/401/403; 404 here is the plausible answer.
                raise Invalid(404, "id", "Contact not found for given identifier.")
            unknown_keys(data)
            custom = custom_values(data.get("custom_fields"))
            lists = list_set(data.get("lists")) if "lists" in data else None
            write(person, data, custom)
            if lists is not None:
                set_lists(person, lists)  # `lists` on PATCH REPLACES every membership, as at Splio
            answer = contact_json(key.lower(), person)
    except Invalid as exc:
        return error(exc.status, exc.key, exc.description)
    return jsonify(answer)


@bp.delete("/data/contacts/<key>")
def delete(key: str) -> Response:
    if not store().delete(VENDOR, key):
        return error(404, "id", "Contact not found for given identifier.")
    return Response(status=204)


@bp.post("/data/contacts/<key>/lists/<action>")
def subscription(key: str, action: str) -> Response:
    if action not in ("subscribe", "unsubscribe"):
        return error(404, "action", "Not found.")
    try:
        with store().lock:
            person = live(key)
            if person is None:
                raise Invalid(404, "id", "Contact not found for given identifier.")
            ids = list_set(body().get("list_ids"))
            if not ids:
                raise Invalid(400, "list_ids", "list_ids is required.")
            set_lists(person, person.lists | ids if action == "subscribe" else person.lists - ids)
            answer = contact_json(key.lower(), person)
    except Invalid as exc:
        return error(exc.status, exc.key, exc.description)
    return jsonify(answer)


# -- fields and lists -------------------------------------------------------------------------
def page(elements: list[dict[str, Any]]) -> Response:
    per_page = min(max(request.args.get("per_page", 50, type=int), 1), 1000)
    number = max(request.args.get("page_number", 1, type=int), 1)
    return jsonify({"count_element": len(elements), "current_page": number, "per_page": per_page,
                    "sort": {"id": "DESC"}, "elements": elements[(number - 1) * per_page:number * per_page]})


@bp.get("/data/fields/contacts")
def fields() -> Response:
    return page([{**f, "is_system": f.get("is_system", False), "label": f["name"], "field_key": f["name"]}
                 for f in SYSTEM_FIELDS + FIELDS])


@bp.get("/data/v1/lists")
def lists() -> Response:
    with store().lock:
        members = {i: sum(1 for p in store().people[VENDOR].values() if i in p.lists) for i in LISTS}
    return page([{"id": int(i), "name": name, "members": members[i]} for i, name in LISTS.items()])


# -- reading contacts back (the hub's anti-entropy audit) ----------------------------------------
@bp.get("/data/contacts/<key>")
def read(key: str) -> Response:
    """Get a contact by its unique key: standard keys, custom_fields with their data_type, lists.
    Splio documents no 404 for this route; "Contact not found for given identifier." is what its
    other contact routes answer, so the sandbox answers that."""
    with store().lock:
        person = live(key)
        if person is None:
            return error(404, "id", "Contact not found for given identifier.")
        return jsonify(contact_json(key.strip().lower(), person))

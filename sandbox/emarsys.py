"""Emarsys emulation: WSSE digest and clock checks (or OAuth on v3), contacts, lists, fields, limits."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Blueprint, Response, jsonify, request

from .core import Person, admit, store

VENDOR = "emarsys"
USERNAME = "referral_demo001"
SECRET = "sandbox-emarsys-secret"
CLIENT_ID = "referral-demo-oauth"
CLIENT_SECRET = "sandbox-emarsys-oauth-secret"
CLOCK_SKEW = 300.0                    # Created must be within ±5 minutes of server time
TOKEN_SECONDS = 3600
LIMIT = ((1000, 60.0),)               # per API user, per minute
# field id -> (name, application_type, string_id): the demo account's fields.
FIELDS: dict[int, tuple[str, str, str]] = {
    1: ("First Name", "shorttext", "first_name"),
    2: ("Last Name", "shorttext", "last_name"),
    3: ("E-Mail", "longtext", "email"),
    31: ("Opt-in", "singlechoice", "optin"),
    12001: ("Referral invites sent", "numeric", "referral_invites_sent"),
    12002: ("Referral friends registered", "numeric", "referral_friends_registered"),
    12003: ("Referral friends converted", "numeric", "referral_friends_converted"),
    12004: ("Referral referrer id", "shorttext", "referral_referrer_id"),
    12005: ("Referral turnover", "numeric", "referral_turnover"),
    12006: ("Referral share URL", "url", "referral_share_url"),
    12007: ("Referral referred by", "shorttext", "referral_referred_by"),
    12008: ("Referral promo code", "shorttext", "referral_promo_code"),
    12009: ("Referral turnover currency", "shorttext", "referral_turnover_currency"),
    12010: ("Referral last activity", "date", "referral_last_activity"),
}
LISTS = {"740001": "Referral friends - marketing", "740002": "Referral friends - customers"}
NOT_FOUND = {"2008": "No contact found with the external ID: 3"}

bp = Blueprint("emarsys", __name__)


def reply(data: Any, status: int = 200, code: int = 0, text: str = "OK") -> Response:
    response = jsonify({"replyCode": code, "replyText": text, "data": data})
    response.status_code = status
    return response


def wsse_problem(header: str) -> str | None:
    """Why an X-WSSE header fails, or None: username, clock (±5 min, GMT+1 when no zone), digest."""
    if not header.startswith("UsernameToken "):
        return "missing X-WSSE header"
    params = dict(re.findall(r'(\w+)="([^"]*)"', header))
    if params.get("Username") != USERNAME or not params.get("Nonce"):
        return "unknown user"
    try:
        created = datetime.fromisoformat(params.get("Created", ""))
    except ValueError:
        return "bad Created"
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone(timedelta(hours=1)))
    if abs(time.time() - created.timestamp()) > CLOCK_SKEW:
        return "Created too far from server time"
    expected = base64.b64encode(hashlib.sha1(
        (params["Nonce"] + params["Created"] + SECRET).encode()).hexdigest().encode()).decode()
    if not hmac.compare_digest(expected, params.get("PasswordDigest", "")):
        return "bad digest"
    return None


def tokens() -> dict[str, float]:
    return store().jobs.setdefault(f"{VENDOR}:tokens", {})


def bearer_problem(header: str) -> str | None:
    token = header.removeprefix("Bearer ")
    return None if tokens().get(token, 0) > time.time() else "invalid or expired token"


def endpoint_of(path: str) -> str:
    for name in ("contactlist", "contact/delete", "contact", "field", "settings", "oauth2"):
        if f"/{name}" in path:
            return name
    return "other"


@bp.before_request
def guard() -> Response | None:
    answer = admit(VENDOR, endpoint_of(request.path), request.path)
    if answer is not None:
        return answer
    if request.path.endswith("/oauth2/token"):
        return None
    if "/api/v3/" in request.path:
        problem = bearer_problem(request.headers.get("Authorization", ""))
    else:
        problem = wsse_problem(request.headers.get("X-WSSE", ""))
    if problem:
        return reply("", 401, 1, "Unauthorized")
    if store().over_limit(f"{VENDOR}:api", LIMIT) is not None:
        # Emarsys sends X-RateLimit-* (added below) and no Retry-After.
        return reply("", 429, 429, "Too Many Requests")
    return None


@bp.after_request
def rate_headers(response: Response) -> Response:
    count, period = LIMIT[0]
    window = int(time.time() // period)
    start, used = store().windows.get(f"{VENDOR}:api:{count}/{period}", (window, 0))
    used = used if start == window else 0
    response.headers["X-RateLimit-Limit"] = str(count)
    response.headers["X-Ratelimit-Remaining"] = str(max(0, count - used))
    response.headers["X-RateLimit-Reset"] = str(int((window + 1) * period))
    return response


@bp.post("/oauth2/token")
def token() -> Response:
    auth = request.authorization
    if not auth or auth.username != CLIENT_ID or not hmac.compare_digest(auth.password or "", CLIENT_SECRET):
        response = jsonify({"error": "invalid_client", "error_description": "Client authentication failed"})
        response.status_code = 401
        return response
    if request.form.get("grant_type") != "client_credentials":
        response = jsonify({"error": "unsupported_grant_type"})
        response.status_code = 400
        return response
    value = secrets.token_urlsafe(32)
    tokens()[value] = time.time() + TOKEN_SECONDS
    return jsonify({"access_token": value, "token_type": "bearer", "expires_in": TOKEN_SECONDS})


def body() -> dict[str, Any]:
    data = request.get_json(force=True, silent=True)
    return data if isinstance(data, dict) else {}


def field_problem(field_id: str, value: Any) -> tuple[str, str] | None:
    """Refuse what the demo account would: unknown field ids, bad emails, choices, numbers, dates."""
    if not field_id.isdigit() or int(field_id) not in FIELDS:
        return "2007", f"Invalid field id: {field_id}"
    kind = FIELDS[int(field_id)][1]
    if value is None or value == "":
        return None
    if field_id == "3" and ("@" not in str(value) or str(value).lower().startswith("reject-")):
        return "2005", "Invalid key field value: invalid email address"
    if field_id == "31" and str(value) not in ("1", "2"):
        return "2007", f"Invalid choice id for field id: {field_id}"
    if kind == "numeric" and not re.fullmatch(r"-?\d+(\.\d+)?", str(value)):
        return "2007", f"Invalid data format for field id: {field_id}"
    if kind == "date" and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(value)):
        return "2007", f"Invalid date format for field id: {field_id}"
    return None


def save(person: Person, contact: dict[str, Any]) -> None:
    for field_id, value in contact.items():
        if value is None or value == "":
            person.fields.pop(field_id, None)
        else:
            person.fields[field_id] = value
        if field_id == "31":
            person.marketing_consent = {"1": True, "2": False}.get(str(value))


@bp.put("/api/<version>/contact/", strict_slashes=False)
def upsert(version: str) -> Response:
    data = body()
    key_id = str(data.get("key_id", "3"))
    if key_id != "3":
        return reply("", 400, 2004, f"Invalid key field id: {key_id}")
    contacts = data.get("contacts")
    if not isinstance(contacts, list):
        contacts = [{k: v for k, v in data.items() if k not in ("key_id", "contact_list_id", "source_id")}]
    if len(contacts) > 1000:
        return reply("", 400, 1000, "The number of contacts exceeds the limit of 1000")
    create = request.args.get("create_if_not_exists") == "1"
    ids, errors = [], {}
    with store().lock:
        for contact in contacts:
            key = str(contact.get(key_id) or "").strip().lower()
            if not key:
                errors["<NO_KEY_ID>"] = {"2005": f"No value provided for key field: {key_id}"}
                continue
            problem = next((p for f, v in contact.items() if (p := field_problem(str(f), v))), None)
            if problem:
                errors[key] = {problem[0]: problem[1]}
                continue
            known = store().find(VENDOR, key)
            if (known is None or known.deleted) and not create:
                errors[key] = NOT_FOUND
                continue
            person = store().person(VENDOR, key)
            save(person, {str(f): v for f, v in contact.items()} | {"3": key})
            ids.append(int(person.vendor_id[2:]))
    return reply({"ids": ids, "errors": errors} if errors else {"ids": ids})


def members(list_id: str) -> tuple[list[str], Response | None]:
    data = body()
    if list_id not in LISTS:
        # As PUT /contact reports an unknown contact_list_id.
        return [], reply("", 400, 2020, f"Invalid contact list id: {list_id}")
    if str(data.get("key_id", "3")) != "3":
        return [], reply("", 400, 2004, f"Invalid key field id: {data.get('key_id')}")
    external_ids = [str(e).strip().lower() for e in data.get("external_ids") or []]
    if len(external_ids) > 10_000:
        return [], reply("", 400, 3002, "Too many external ids, the limit is 10000")
    return external_ids, None


@bp.post("/api/<version>/contactlist/<list_id>/add")
def list_add(version: str, list_id: str) -> Response:
    external_ids, refused = members(list_id)
    if refused:
        return refused
    inserted, errors = 0, {}
    with store().lock:
        for key in external_ids:
            person = store().find(VENDOR, key)
            if person is None or person.deleted:
                errors[key] = NOT_FOUND
            elif list_id not in person.lists:
                person.lists.add(list_id)
                inserted += 1
    return reply({"inserted_contacts": inserted, "errors": errors})


@bp.post("/api/<version>/contactlist/<list_id>/delete")
def list_delete(version: str, list_id: str) -> Response:
    external_ids, refused = members(list_id)
    if refused:
        return refused
    deleted, errors = 0, {}
    with store().lock:
        for key in external_ids:
            person = store().find(VENDOR, key)
            if person is None or person.deleted or list_id not in person.lists:
                errors[key] = NOT_FOUND
            else:
                person.lists.discard(list_id)
                deleted += 1
    return reply({"deleted_contacts": deleted, "errors": errors})


@bp.post("/api/<version>/contact/delete")
def delete(version: str) -> Response:
    data = body()
    key_id = str(data.get("key_id", "3"))
    if key_id != "3":
        return reply("", 400, 2004, f"Invalid key field id: {key_id}")
    keys = data.get(key_id) or []
    keys = [keys] if isinstance(keys, str) else list(keys)
    if len(keys) > 1000:
        return reply("", 400, 1000, "The number of contacts exceeds the limit of 1000")
    errors = {str(k): NOT_FOUND for k in keys if not store().delete(VENDOR, str(k))}
    if keys and len(errors) == len(keys):
        return reply("", 400, 2008, "No contact found with the external ID: 3")
    return reply({"deleted_contacts": len(keys) - len(errors), "errors": errors})


@bp.get("/api/<version>/field/translate/<language>")
def fields(version: str, language: str) -> Response:
    return reply([{"id": i, "name": name, "application_type": kind, "string_id": string_id}
                  for i, (name, kind, string_id) in FIELDS.items()])


@bp.get("/api/<version>/contactlist")
def contact_lists(version: str) -> Response:
    return reply([{"id": i, "name": name, "created": "2026-01-05 09:00:00", "type": 0} for i, name in LISTS.items()])


@bp.get("/api/<version>/settings")
def settings(version: str) -> Response:
    return reply({"id": 900001, "environment": "sandbox.emarsys.local", "timezone": "Europe/London",
                  "name": "Referral demo account", "password_history_queue_size": 0,
                  "country": "United Kingdom"})


# -- reading contacts back (the hub's anti-entropy audit) ----------------------------------------
@bp.post("/api/<version>/contact/getdata")
def getdata(version: str) -> Response:
    """POST contact/getdata {"keyId", "keyValues", "fields"}: the values (as strings) of the asked
    fields per contact found; keys not found come back in data.errors as 2008, and `result` is
    false when none was found (Emarsys Suite API docs, "Querying Contact Data")."""
    data = body()
    key_id, values, wanted = str(data.get("keyId") or "3"), data.get("keyValues"), data.get("fields") or []
    if key_id != "3":
        return reply("", 400, 2004, f"Invalid key field id: {key_id}")
    if not isinstance(values, list) or not values:
        return reply("", 400, 10001, "Missing parameter: keyValues" if values is None else "keyValues must be an array")
    if not isinstance(wanted, list):
        return reply("", 400, 10001, "Fields must be an array")
    if len(values) > 1000:
        return reply("", 400, 10001, "Max. number of contacts: 1000")
    unknown = [f for f in wanted if not str(f).isdigit() or int(f) not in FIELDS]
    if unknown:
        return reply("", 400, 2007, f"Invalid field id: {unknown[0]}")
    fields = [str(f) for f in wanted] or [str(f) for f in FIELDS]
    result, errors = [], []
    with store().lock:
        for value in values:
            key = str(value).strip().lower()
            person = store().find(VENDOR, key)
            if person is None or person.deleted:
                errors.append({"key": str(value), "errorCode": "2008",
                               "errorMsg": "No contact found with the external id: 3"})
                continue
            row = {f: (None if (v := person.fields.get(f)) is None else str(v)) for f in fields}
            row.update({"id": person.vendor_id[2:].lstrip("0") or "0", "uid": person.vendor_id.lower(), "3": key})
            result.append(row)
    return reply({"errors": errors, "result": result or False})

"""Salesforce emulation: the OAuth token flows, Contact upsert, CampaignMember, delete, query, describe."""
from __future__ import annotations

import base64
import hmac
import re
import secrets
import time
from functools import cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from flask import Blueprint, Response, jsonify, request

from .core import Person, admit, store

VENDOR = "salesforce"
CLIENT_ID = "3MVG9Rf.referral.demo.consumer.key"
CLIENT_SECRET = "sandbox-salesforce-secret"
REFRESH_TOKEN = "5Aep861Rf.sandbox.refresh.token"
USERNAME = "integration@referral-demo.example"
AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
SESSION_SECONDS = 7200                # the default session timeout
DAILY_REQUESTS = 15_000               # a Developer Edition org's 24 h allocation
VERSIONS = (31, 68)                   # the API versions the demo org answers
COLLECTION_MAX = 200
TOO_MANY = "record limit reached. cannot submit more than 200 records in this operation"
ORG_ID = "00DRf0000000001AAA"
# Sandbox-only demo key for the JWT bearer flow: its certificate is "uploaded" to the demo
# connected app below and it opens nothing but this sandbox.
DEMO_PRIVATE_KEY = """-----BEGIN PRIVATE KEY-----
MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQCSNUp4lAxfJUoe
lAsrlrsqNqEAkG9TRPsgT9FiGTkaZXXWyxQH86e96spUYOqu3dnlXRZogU5XF3eu
MbDhfVb8oNWDrv0toAdOqvcWy9hVIcOAHkRKNT0uygdbXNKz4plJgM5LwRo5IdSH
nQZ/mJFKWY0xOOUkuzEMhv4fta8LitlLr0YZcTaqzc9A5TihdFd6/Q7MAlqEPOQb
/7f3fJw9VOfJXjdaRm1R+XHpVKE4dHSIKLj4BcWOk+cZxF1eEz6pbLHE6JnvGRKi
aqh8+eCfGMB1IpyW5fZQ6WFH45F29lEPnDUvVLx+mY+U5SqoMyiNqOm1C8wY7klM
RxVQsbKBAgMBAAECggEAAwLjjg91ivBKjM3thiKtp5ahCFu72+i7LTI7p061RIAJ
C5PFQuMqW1DhRS2K/oTtopSBMZqSgvHF/8xV9BT36aOEi5i7GJltIRoyv9v9BbGD
Sb7wgYtDv57pWcuUADYMmcJpgqRUjmSYxcjEBson2ZKgg/Oj04winDCRE2qIvgmg
dy0MXY6WCguvIVfbuWnAMGe/9imr17aniVIf0xaq+8HV7xnJuwEI+2v4W/55ko11
8CVPvkP/kzHNT1ITXiVks/yBAOS+h8L++ei1vDQRYJAxKkmB3ZdAbGypj0BCJAih
ug05pm2SvT3pB0N1c4uweKaOfowO6lkAMwslNz2oeQKBgQDCKY3kEBPE13cVhHfv
fNf000+BGOGOTjVqzkgo07N4wCD3A5JRTQnePsIltrWNyL4zfpANigMMLdky0sjE
udaELfWZOyatIwkT+kSRGcQHinDzB1bokTPsazi9PeZXw4N6w/TR0Q55Om7lcBos
wyJ0/XqVWUrzd8oq5SuJ9hzY+QKBgQDAxfAQVDXf5cW4vjkRviT91GC+QtUvnTpX
ioUG6JT6B/0NpwGEZqhj96tQybdU7TxyiLklZbsABVRDjJn3GNf+LH8KLNM422t7
14En1UvBDFQ24hhT+x2Ul2ZgZQdCIf/o4wbNut1bicZUy74cCrOfg2/aVzUTIB4o
xzcPFerPyQKBgQCTeuTgOqYJenBl070WGAohWPCm6rNJWHaSriV5fXRxX96qQfg9
8Ppx6dGmu+Wj0LtIefYJkq9F7P1x8VG2vEIJHK/UuG1kTZxzpEG4xY10/N9Weli1
RrXd+oOamw3/0+5mrbmkNdt8kbnyZPg8z+u4WWFnV+/qhy707iXoIR1AYQKBgQCj
LGkCSWW4+dOdh1bjT+IcAZNKOWQfA6WIyDXGHUVNR0nKLp04J3VN+SzIG5bVimJq
SJT/tNbPM7OZ4f/Jivv5qEx4nmzEaebXUxl+UCvpYrg+JK+XFq55QpZj7eBw+DqY
NONjbVNF0p9Q040+S0i0MxuQ49SHNd6Rgd93I4Q5EQKBgQC0+mt4n56Zl5Pu5GLc
z5s9dgvUZ3XUKuiX6hjcha8alhNT3VnfAzOv/QbJUunrVpOMIpoU6IBCD4BPQoFw
UJQ7W6KT6o0AWisdCx6mSvtEunEhH0Nbg1FGN8mSXRdRi3BByAOiDAGwrcMBP+tJ
AGKv2l1O8cAHNA+Zb62Ol4e7eQ==
-----END PRIVATE KEY-----
"""
# The demo org's Contact fields: name -> (type, extra describe attributes).
FIELDS: dict[str, tuple[str, dict[str, Any]]] = {
    "Id": ("id", {}),
    "FirstName": ("string", {}),
    "LastName": ("string", {"nillable": False}),
    "Email": ("email", {}),
    "HasOptedOutOfEmail": ("boolean", {}),
    "Referral_Hub_Email__c": ("email", {"externalId": True, "unique": True}),
    "Referral_Referrer_Id__c": ("string", {}),
    "Referral_Share_URL__c": ("url", {}),
    "Referral_Friends_Invited__c": ("double", {}),
    "Referral_Friends_Registered__c": ("double", {}),
    "Referral_Friends_Converted__c": ("double", {}),
    "Referral_Turnover__c": ("currency", {}),
    "Referral_Turnover_Currency__c": ("string", {}),
    "Referral_Rewards_Earned__c": ("double", {}),
    "Referral_Referred_By__c": ("string", {}),
    "Referral_Promo_Code__c": ("string", {}),
    "Referral_Last_Activity__c": ("datetime", {}),
}
NUMERIC = ("double", "currency", "int", "percent")
# What the demo org lets the connector write on a CampaignMember.
MEMBER_FIELDS = ("CampaignId", "ContactId", "LeadId", "Status")
SOBJECTS = ("Contact", "CampaignMember")
CAMPAIGNS = {"701Rf000000Mkt1AAA": "Referral - marketing opt-in", "701Rf000000Txn1AAA": "Referral - customers"}

bp = Blueprint("salesforce", __name__)


@cache
def demo_public_key() -> Any:
    return serialization.load_pem_private_key(DEMO_PRIVATE_KEY.encode(), password=None).public_key()


def errors(status: int, code: str, message: str, fields: list[str] | None = None) -> Response:
    """Salesforce's REST error shape: a JSON array of {message, errorCode[, fields]}."""
    item: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        item["fields"] = fields
    response = jsonify([item])
    response.status_code = status
    return response


def oauth_error(error: str, description: str, status: int = 400) -> Response:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    return response


def sessions() -> dict[str, float]:
    return store().jobs.setdefault(f"{VENDOR}:sessions", {})


def endpoint_of(path: str) -> str:
    for name in ("oauth2/token", "composite/sobjects", "query", "describe", "limits"):
        if name in path:
            return name
    return "other"


def api_usage() -> int:
    window = int(time.time() // 86400.0)
    start, used = store().windows.get(f"{VENDOR}:daily:{DAILY_REQUESTS}/86400.0", (window, 0))
    return used if start == window else 0


@bp.before_request
def guard() -> Response | None:
    answer = admit(VENDOR, endpoint_of(request.path), request.path)
    if answer is not None:
        return answer
    if request.path.endswith("/services/oauth2/token"):
        return None
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if sessions().get(token, 0) < time.time():
        return errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
    version = re.search(r"/services/data/v(\d+)\.0(/|$)", request.path)
    if not version or not VERSIONS[0] <= int(version.group(1)) <= VERSIONS[1]:
        return errors(404, "NOT_FOUND", "The requested resource does not exist")
    if store().over_limit(f"{VENDOR}:daily", ((DAILY_REQUESTS, 86400.0),)) is not None:
        return errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
    return None


@bp.after_request
def limit_info(response: Response) -> Response:
    if "/services/data/" in request.path:
        response.headers["Sforce-Limit-Info"] = f"api-usage={api_usage()}/{DAILY_REQUESTS}"
    return response


# -- OAuth ---------------------------------------------------------------------------------------
def client_problem(client_id: str | None, client_secret: str | None) -> Response | None:
    if client_id != CLIENT_ID:
        return oauth_error("invalid_client_id", "client identifier invalid")
    if not hmac.compare_digest(client_secret or "", CLIENT_SECRET):
        return oauth_error("invalid_client", "invalid client credentials")
    return None


def jwt_problem(assertion: str) -> Response | None:
    try:
        claims = jwt.decode(assertion, demo_public_key(), algorithms=["RS256"], audience=list(AUDIENCES),
                            options={"require": ["exp", "iss", "sub", "aud"]})
    except jwt.PyJWTError:
        return oauth_error("invalid_grant", "invalid assertion")
    if claims["iss"] != CLIENT_ID:
        return oauth_error("invalid_client_id", "client identifier invalid")
    if claims["sub"] != USERNAME:
        return oauth_error("invalid_grant", "user hasn't approved this consumer")
    return None


@bp.post("/services/oauth2/token")
def token() -> Response:
    form = request.form
    grant = form.get("grant_type")
    if grant == "refresh_token":
        problem = client_problem(form.get("client_id"), form.get("client_secret"))
        if problem is None and form.get("refresh_token") != REFRESH_TOKEN:
            problem = oauth_error("invalid_grant", "expired access/refresh token")
    elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
        problem = jwt_problem(form.get("assertion", ""))
    elif grant == "client_credentials":
        auth = request.authorization
        problem = client_problem(auth.username if auth else form.get("client_id"),
                                 auth.password if auth else form.get("client_secret"))
    else:
        problem = oauth_error("unsupported_grant_type", "grant type not supported")
    if problem is not None:
        return problem
    access = f"{ORG_ID[:15]}!{secrets.token_urlsafe(48)}"
    sessions()[access] = time.time() + SESSION_SECONDS
    issued = str(int(time.time() * 1000))
    base = request.url_root.rstrip("/") + f"/{VENDOR}"
    return jsonify({"access_token": access, "instance_url": base, "id": f"{base}/id/{ORG_ID}/005Rf000000Usr1AAA",
                    "token_type": "Bearer", "issued_at": issued, "scope": "api refresh_token",
                    "signature": base64.b64encode(secrets.token_bytes(32)).decode()})


# -- data ----------------------------------------------------------------------------------------
def body() -> Any:
    return request.get_json(force=True, silent=True)


def new_id(prefix: str) -> str:
    return f"{prefix}Rf{store().next_id('')}AAA"[:18]


def ids() -> dict[str, str]:
    """Contact id -> email, kept by upsert_one, so a lookup is not a scan of every contact."""
    return store().jobs.setdefault(f"{VENDOR}:ids", {})


def by_id(record_id: str) -> tuple[str, Person] | None:
    """The Contact with this id, noted as reached by the request (for the sandbox's write log)."""
    found: tuple[str, Person] | None = None
    email = ids().get(record_id)
    person = store().people[VENDOR].get(email) if email is not None else None
    if email is not None and person is not None and person.vendor_id == record_id:
        found = (email, person)
    else:
        found = next(((e, p) for e, p in store().people[VENDOR].items() if p.vendor_id == record_id), None)
    if found is not None:
        store().touch(VENDOR, found[0])
    return found


def failure(code: str, message: str, fields: list[str]) -> dict[str, Any]:
    return {"success": False, "errors": [{"statusCode": code, "message": message, "fields": fields}]}


def records_problem(data: Any, sobject: str | None = None) -> tuple[list[dict[str, Any]], Response | None]:
    """Whole-request refusals of an sObject collection: no records, too many, a record without
    `attributes.type` (every record must name its type), or of another type than the URI's."""
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        return [], errors(400, "JSON_PARSER_ERROR", "records is required")
    if len(data["records"]) > COLLECTION_MAX:
        return [], errors(400, "EXCEEDED_ID_LIMIT", TOO_MANY)
    for record in data["records"]:
        kind = (record.get("attributes") or {}).get("type") if isinstance(record, dict) else None
        if not kind:
            return [], errors(400, "INVALID_TYPE", "Must specify a type of sObject in attributes")
        if kind not in SOBJECTS or (sobject is not None and kind != sobject):
            return [], errors(400, "INVALID_TYPE", f"sObject type '{kind}' is not supported here")
    return data["records"], None


def contact_problem(record: dict[str, Any]) -> Response | None:
    """Whole-request refusals, as Salesforce deserialises the body: unknown fields, bad numbers."""
    for name, value in record.items():
        if name == "attributes":
            continue
        if name not in FIELDS:
            return errors(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type Contact")
        kind = FIELDS[name][0]
        if value is not None and kind in NUMERIC and not re.fullmatch(r"-?\d+(\.\d+)?", str(value)):
            return errors(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of {kind} from value {value}")
        if value is not None and kind == "boolean" and not isinstance(value, bool):
            return errors(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of boolean from value {value}")
    return None


def upsert_one(record: dict[str, Any], field: str) -> dict[str, Any]:
    key = str(record.get(field) or "").strip().lower()
    if not key:
        return failure("MISSING_ARGUMENT", f"{field} not specified", [field])
    for name in (field, "Email"):
        value = str(record.get(name) or "")
        if value and ("@" not in value or value.lower().startswith("reject-")):
            return failure("INVALID_EMAIL_ADDRESS", f"{name}: invalid email address: {value}", [name])
    known = store().find(VENDOR, key)
    created = known is None or known.deleted
    if ("LastName" in record or created) and not record.get("LastName"):
        return failure("REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]", ["LastName"])
    person = store().person(VENDOR, key)
    if created:
        person.vendor_id = new_id("003")
        ids()[person.vendor_id] = key
    for name, value in record.items():
        if name in ("attributes", "Id"):
            continue
        if value is None:
            person.fields.pop(name, None)
        else:
            person.fields[name] = value
        if name == "HasOptedOutOfEmail":
            person.marketing_consent = None if value is None else not value
    return {"id": person.vendor_id, "success": True, "errors": [], "created": created}


@bp.patch("/services/data/<version>/composite/sobjects/<sobject>/<field>")
def upsert(version: str, sobject: str, field: str) -> Response:
    if int(version[1:].split(".")[0]) < 46:
        return errors(404, "NOT_FOUND", "The requested resource does not exist")
    if sobject != "Contact":
        return errors(404, "NOT_FOUND", f"The requested resource does not exist: {sobject}")
    if not FIELDS.get(field, ("", {}))[1].get("externalId"):
        return errors(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {field}")
    records, refused = records_problem(body(), "Contact")
    refused = refused or next((p for r in records if (p := contact_problem(r))), None)
    if refused:
        return refused
    with store().lock:
        return jsonify([upsert_one(r, field) for r in records])


def members() -> dict[str, tuple[str, str]]:
    """CampaignMember id -> (CampaignId, ContactId)."""
    return store().jobs.setdefault(f"{VENDOR}:members", {})


def member_problem(record: dict[str, Any]) -> Response | None:
    """Whole-request refusals of a CampaignMember: unknown fields, a non-string id."""
    for name, value in record.items():
        if name == "attributes":
            continue
        if name not in MEMBER_FIELDS:
            return errors(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type CampaignMember")
        if value is not None and not isinstance(value, str):
            return errors(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of reference from value {value}")
    return None


def add_member(record: dict[str, Any]) -> dict[str, Any]:
    campaign_id = record.get("CampaignId")
    if campaign_id not in CAMPAIGNS:
        return failure("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["CampaignId"])
    found = by_id(str(record.get("ContactId")))
    if found is None or found[1].deleted:
        return failure("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["ContactId"])
    if campaign_id in found[1].lists:
        # What Salesforce answers here is not in its documentation; the connector looks members
        # up before inserting, so it never relies on this answer.
        return failure("DUPLICATE_VALUE", "Already a campaign member.", [])
    member_id = new_id("00v")
    members()[member_id] = (str(campaign_id), found[1].vendor_id)
    found[1].lists.add(str(campaign_id))
    return {"id": member_id, "success": True, "errors": []}


@bp.post("/services/data/<version>/composite/sobjects")
def create(version: str) -> Response:
    records, refused = records_problem(body())
    refused = refused or next((p for r in records if (p := member_problem(r))), None)
    if refused:
        return refused
    if any(r["attributes"]["type"] != "CampaignMember" for r in records):
        return errors(400, "INVALID_TYPE", "the demo org creates only CampaignMember records this way")
    with store().lock:
        return jsonify([add_member(r) for r in records])


def delete_member(member_id: str) -> dict[str, Any]:
    campaign_id, contact_id = members().pop(member_id)
    found = by_id(contact_id)
    if found is not None:
        found[1].lists.discard(campaign_id)
    return {"id": member_id, "success": True, "errors": []}


def delete_one(record_id: str) -> dict[str, Any]:
    if record_id in members():
        return delete_member(record_id)
    found = by_id(record_id)
    if found is None:
        return {"id": record_id, **failure("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])}
    if found[1].deleted:
        return {"id": record_id, **failure("ENTITY_IS_DELETED", "entity is deleted", [])}
    # Deleting a Contact deletes its campaign memberships with it.
    for member_id in [m for m, (_, contact) in members().items() if contact == record_id]:
        members().pop(member_id)
    store().delete(VENDOR, found[0])
    return {"id": record_id, "success": True, "errors": []}


@bp.delete("/services/data/<version>/composite/sobjects")
def delete(version: str) -> Response:
    ids = [i for i in request.args.get("ids", "").split(",") if i]
    if not ids:
        return errors(400, "MISSING_ARGUMENT", "ids is required")
    if len(ids) > COLLECTION_MAX:
        return errors(400, "EXCEEDED_ID_LIMIT", TOO_MANY)
    with store().lock:
        return jsonify([delete_one(i) for i in ids])


QUERY = re.compile(r"^\s*SELECT\s+(.+?)\s+FROM\s+(\w+)\s+WHERE\s+(.+?)\s*$", re.I | re.S)
CONDITION = re.compile(r"\s*(\w+)\s+IN\s*\(((?:\s*'(?:[^'\\]|\\.)*'\s*,?)*)\s*\)\s*(AND\s+|$)", re.I | re.S)
LITERAL = re.compile(r"'((?:[^'\\]|\\.)*)'")


def conditions(where: str) -> dict[str, set[str]] | None:
    """`a IN ('x','y') AND b IN (...)` -> {a: {x, y}, b: {...}} (lower-cased); None if another shape."""
    found: dict[str, set[str]] = {}
    position = 0
    while position < len(where):
        match = CONDITION.match(where, position)
        if not match:
            return None
        found[match.group(1)] = {re.sub(r"\\(.)", r"\1", v).lower() for v in LITERAL.findall(match.group(2))}
        position = match.end()
    return found or None


def contact_rows(selected: list[str], where: dict[str, set[str]], version: str) -> list[dict[str, Any]]:
    rows = []
    for email, person in list(store().people[VENDOR].items()):
        if not person.deleted and all(str(person.fields.get(f, email)).lower() in v for f, v in where.items()):
            row = {f: person.vendor_id if f == "Id" else person.fields.get(f) for f in selected}
            rows.append({"attributes": {"type": "Contact",
                                        "url": f"/services/data/{version}/sobjects/Contact/{person.vendor_id}"}, **row})
    return rows


def member_rows(selected: list[str], where: dict[str, set[str]], version: str) -> list[dict[str, Any]]:
    rows = []
    for member_id, (campaign_id, contact_id) in list(members().items()):
        values = {"Id": member_id, "CampaignId": campaign_id, "ContactId": contact_id}
        if all(values[f].lower() in v for f, v in where.items()):
            rows.append({"attributes": {"type": "CampaignMember",
                                        "url": f"/services/data/{version}/sobjects/CampaignMember/{member_id}"},
                         **{f: values[f] for f in selected}})
    return rows


@bp.get("/services/data/<version>/query")
def query(version: str) -> Response:
    """The SOQL shapes the connector sends: SELECT <fields> FROM Contact|CampaignMember WHERE
    <field> IN (...) [AND <field> IN (...)]."""
    match = QUERY.match(request.args.get("q", ""))
    where = conditions(match.group(3)) if match else None
    if not match or where is None or match.group(2) not in SOBJECTS:
        return errors(400, "MALFORMED_QUERY", "the sandbox answers SELECT ... FROM Contact|CampaignMember "
                                              "WHERE field IN (...) [AND field IN (...)]")
    selected = [f.strip() for f in match.group(1).split(",")]
    known = FIELDS if match.group(2) == "Contact" else ("Id", "CampaignId", "ContactId")
    unknown = [f for f in [*selected, *where] if f not in known]
    if unknown:
        return errors(400, "INVALID_FIELD", f"No such column '{unknown[0]}' on entity '{match.group(2)}'")
    with store().lock:
        rows = (contact_rows if match.group(2) == "Contact" else member_rows)(selected, where, version)
    return jsonify({"totalSize": len(rows), "done": True, "records": rows})


# The demo integration user's object permissions, as describe reports them.
OBJECT_ACCESS = {"Contact": {"queryable": True, "createable": True, "updateable": True, "deletable": True},
                 "CampaignMember": {"queryable": True, "createable": True, "updateable": True, "deletable": True}}


@bp.get("/services/data/<version>/sobjects/Contact/describe")
def describe(version: str) -> Response:
    fields = [{"name": name, "label": name.removesuffix("__c").replace("_", " "), "type": kind,
               "custom": name.endswith("__c"), "externalId": extra.get("externalId", False),
               "unique": extra.get("unique", False), "nillable": extra.get("nillable", True),
               "createable": name != "Id", "updateable": name != "Id"}
              for name, (kind, extra) in FIELDS.items()]
    return jsonify({"name": "Contact", "label": "Contact", "custom": False, **OBJECT_ACCESS["Contact"],
                    "fields": fields})


@bp.get("/services/data/<version>/sobjects/CampaignMember/describe")
def describe_member(version: str) -> Response:
    fields = [{"name": name, "type": "reference" if name.endswith("Id") else "picklist", "createable": True,
               "updateable": name == "Status"} for name in MEMBER_FIELDS]
    return jsonify({"name": "CampaignMember", "label": "Campaign Member", "custom": False,
                    **OBJECT_ACCESS["CampaignMember"], "fields": [{"name": "Id", "type": "id"}, *fields]})


@bp.get("/services/data/<version>/limits")
def limits(version: str) -> Response:
    return jsonify({"DailyApiRequests": {"Max": DAILY_REQUESTS, "Remaining": DAILY_REQUESTS - api_usage()}})


# -- drift (the hub's anti-entropy audit tests) ---------------------------------------------------
def replace_lists(person: Person, lists: set[str]) -> None:
    """A contact's campaigns changed behind the hub's back: CampaignMember rows follow, so the
    audit's CampaignMember query sees the change."""
    for member_id, (_, contact_id) in list(members().items()):
        if contact_id == person.vendor_id:
            del members()[member_id]
    for campaign_id in sorted(lists):
        members()[new_id("00v")] = (campaign_id, person.vendor_id)
    person.lists = set(lists)

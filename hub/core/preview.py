"""Preview: run a connector's real push() against a recording transport, so an admin sees the exact
vendor requests a sync would send now (secrets masked) while nothing leaves the process."""
from __future__ import annotations

import itertools
import json
import re
import uuid
from typing import Any, Callable
from urllib.parse import parse_qsl, quote_plus, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from connectors import CONNECTORS, ContactUpdate

from hub.core.erasure import seen_id, tag
from hub.core.ledger import get_ledger, key, operation, state_of
from hub.core.sync import plan
from hub.core import keys

MASK = "****"
SENSITIVE_HEADERS = {"authorization", "proxy-authorization", "x-wsse", "x-ometria-auth", "x-api-key",
                     "api-key", "cookie"}
# Headers requests adds on its own; they say nothing about the vendor call.
TRANSPORT_HEADERS = {"user-agent", "accept-encoding", "connection", "content-length"}
PREVIEW_TOKEN = "preview-token"


# -- recording transport ---------------------------------------------------------------------
def mask_text(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        for form in {secret, quote_plus(secret)}:
            text = text.replace(form, MASK)
    return text


def mask_value(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return mask_text(value, secrets)
    if isinstance(value, list):
        return [mask_value(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: mask_value(v, secrets) for k, v in value.items()}
    return value


def mask_header(name: str, value: str, secrets: list[str]) -> str:
    if name.lower() in SENSITIVE_HEADERS:
        scheme, _, rest = value.partition(" ")
        return f"{scheme} {MASK}" if rest else MASK
    return mask_text(value, secrets)


def parse_body(body: bytes | str | None, content_type: str) -> Any:
    if body is None or body == b"" or body == "":
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if "json" in content_type:
        try:
            return json.loads(text)
        except ValueError:
            return text
    if "x-www-form-urlencoded" in content_type:
        return dict(parse_qsl(text, keep_blank_values=True))
    return text


class Recorder(BaseAdapter):
    """A requests transport adapter: records each prepared request and answers like the vendor."""

    def __init__(self, vendor: str, secrets: list[str], answer: Callable[[str, str, dict[str, Any], Any], tuple[int, Any]]) -> None:
        super().__init__()
        self.vendor = vendor
        self.secrets = sorted({s for s in secrets + [PREVIEW_TOKEN] if s}, key=len, reverse=True)
        self.answer = answer
        self.requests: list[dict[str, Any]] = []

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        parts = urlsplit(request.url or "")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        content_type = str(request.headers.get("Content-Type", ""))
        raw = request.body if isinstance(request.body, (bytes, str)) else None
        body = parse_body(raw, content_type)
        self.requests.append({
            "method": request.method,
            "url": mask_text(f"{parts.scheme}://{parts.netloc}{parts.path}", self.secrets),
            "path": parts.path,
            "query": mask_value(query, self.secrets),
            "headers": {k: mask_header(k, str(v), self.secrets) for k, v in request.headers.items()
                        if k.lower() not in TRANSPORT_HEADERS},
            "body": mask_value(body, self.secrets),
        })
        status, payload = self.answer(request.method or "GET", parts.path, query, body)
        response = requests.Response()
        response.status_code = status
        response.reason = "OK" if status < 400 else "Error"
        response._content = b"" if payload is None else json.dumps(payload).encode()
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json"} if payload is not None else {})
        response.encoding = "utf-8"
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


# -- plausible vendor answers (success, as the vendor documents it) --------------------------
def klaviyo_answer(ids: itertools.count, settings: dict[str, Any]) -> Callable[..., tuple[int, Any]]:
    def answer(method: str, path: str, query: dict[str, Any], body: Any) -> tuple[int, Any]:
        if path.endswith("/api/profile-import"):
            return 200, {"data": {"type": "profile", "id": f"PREVIEW{next(ids):06d}", "attributes": {}}}
        if path.endswith("/api/profile-bulk-import-jobs") and method == "POST":
            return 202, {"data": {"type": "profile-bulk-import-job", "id": f"preview-job-{next(ids)}",
                                  "attributes": {"status": "queued"}}}
        if "/api/profile-bulk-import-jobs/" in path:
            return 200, {"data": {"type": "profile-bulk-import-job", "id": path.rsplit("/", 1)[1], "attributes": {
                "status": "complete", "failed_count": 0}}}
        if path.endswith("/api/profiles"):
            emails = re.findall(r'"([^"]+)"', query.get("filter", ""))
            return 200, {"data": [{"type": "profile", "id": f"PREVIEW{next(ids):06d}", "attributes": {"email": e}}
                                  for e in emails]}
        if path.endswith("/api/accounts"):
            return 200, {"data": [{"type": "account", "id": "PREVIEW", "attributes": {}}]}
        return (204 if method == "DELETE" else 202), None
    return answer


def splio_answer(ids: itertools.count, settings: dict[str, Any]) -> Callable[..., tuple[int, Any]]:
    def answer(method: str, path: str, query: dict[str, Any], body: Any) -> tuple[int, Any]:
        if path.endswith("/authenticate"):
            return 200, {"token": PREVIEW_TOKEN}
        if path.endswith("/data/contacts/bulk"):
            contacts = (body or {}).get("contacts", []) if isinstance(body, dict) else []
            return 207, {"items": [{"contact_id": c.get("email"), "code": 201, "description": "created"}
                                   for c in contacts]}
        return 200, {}
    return answer


def ometria_answer(ids: itertools.count, settings: dict[str, Any]) -> Callable[..., tuple[int, Any]]:
    def answer(method: str, path: str, query: dict[str, Any], body: Any) -> tuple[int, Any]:
        if path.endswith("/v2/push"):
            n = len(body) if isinstance(body, list) else 0
            return 202, {"success": True, "accepted": n, "rejected": 0, "errors": []}
        return 200, {}
    return answer


def emarsys_answer(ids: itertools.count, settings: dict[str, Any]) -> Callable[..., tuple[int, Any]]:
    def answer(method: str, path: str, query: dict[str, Any], body: Any) -> tuple[int, Any]:
        if path.endswith("/token"):
            return 200, {"access_token": PREVIEW_TOKEN, "token_type": "bearer", "expires_in": 3600}
        return 200, {"replyCode": 0, "replyText": "OK", "data": {}}
    return answer


def salesforce_answer(ids: itertools.count, settings: dict[str, Any]) -> Callable[..., tuple[int, Any]]:
    # The real instance URL comes back from the login; the preview can only show the configured
    # host (the sandbox serves both, so there the paths match exactly).
    instance = str(settings.get("instance_url") or settings.get("login_url") or settings.get("base_url")
                   or "https://login.salesforce.com")

    def answer(method: str, path: str, query: dict[str, Any], body: Any) -> tuple[int, Any]:
        if path.endswith("/oauth2/token"):
            return 200, {"access_token": PREVIEW_TOKEN, "instance_url": instance, "token_type": "Bearer"}
        if "/composite/sobjects" in path:
            records = (body or {}).get("records", []) if isinstance(body, dict) else []
            prefix = "003" if method == "PATCH" else "00v"
            return 200, [{"id": f"{prefix}PREVIEW{next(ids):08d}", "success": True, "errors": [], "created": False}
                         for _ in records]
        if path.endswith("/query"):
            return 200, {"totalSize": 0, "done": True, "records": []}
        return 200, {}
    return answer


ANSWERS = {"klaviyo": klaviyo_answer, "splio": splio_answer, "ometria": ometria_answer,
           "emarsys": emarsys_answer, "salesforce": salesforce_answer}


def generic_answer(ids: itertools.count, settings: dict[str, Any]) -> Callable[..., tuple[int, Any]]:
    return lambda method, path, query, body: (200, {})


def record_push(connector: str, settings: dict[str, Any], updates: list[ContactUpdate]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Run the connector's push() on a recording session: (requests, failures by email)."""
    cls = CONNECTORS[connector]
    settings = dict(settings)
    for name in cls.required_settings:          # a disabled connector still previews its bodies
        settings.setdefault(name, f"preview-{name}")
    secrets = [str(settings[s]) for s in cls.secret_settings if settings.get(s)]
    recorder = Recorder(connector, secrets, ANSWERS.get(connector, generic_answer)(itertools.count(1), settings))
    session = requests.Session()
    session.mount("http://", recorder)
    session.mount("https://", recorder)
    client = cls(settings, session=session, limiter=None, sleep=lambda s: None)
    result = client.push(updates) if updates else None
    failed = {e: str(err) for e, err in (result.failed.items() if result else [])}
    return recorder.requests, failed


# -- what a sync would push --------------------------------------------------------------------
MESSAGES = {"unknown": "the hub holds no state for this contact",
            "unchanged": "the vendor already holds this; a sync sends nothing"}


def build_updates(connector: str, mapping: dict[str, Any], states: dict[str, dict[str, Any] | None],
                  force: bool = False) -> tuple[list[ContactUpdate], list[dict[str, Any]]]:
    """What hub.core.sync.plan says a sync would send, for any mapping and any states: (updates, report)."""
    updates: list[ContactUpdate] = []
    report: list[dict[str, Any]] = []
    for entry in plan(connector, mapping, states, force=force):
        row: dict[str, Any] = {"email": entry["email"], "status": entry["status"]}
        if "rendered" in entry:
            row.update({k: entry["rendered"][k] for k in ("identity", "fields", "lists", "marketing_consent")})
        if entry["status"] == "mapping_error":
            row["message"] = "; ".join(entry["rendered"]["errors"])
        elif entry["status"] in MESSAGES:
            row["message"] = MESSAGES[entry["status"]]
        else:
            updates.append(entry["update"])
        report.append(row)
    return updates, report


# -- a sample event, applied to a scratch copy of the state ----------------------------------
SUFFIXES = ("", ":n", ":orders")


def simulate_event(redis: Any, event: dict[str, Any], connector: str, currency: str) -> tuple[bool, dict[str, dict[str, Any] | None]]:
    """Apply `event` with the ledger's own Lua step under a throwaway key prefix (the involved
    contacts copied there first), read back the contacts it marks dirty, then delete the copy.
    Returns (applied, {email: state}); applied is False for an event id already seen."""
    scratch = keys.PREVIEW.format(uuid.uuid4().hex)
    ledger = get_ledger()
    emails = {p.get("email") for p in (event.get("referrer"), event.get("friend"), event.get("contact")) if p}
    friend = (event.get("friend") or {}).get("email")
    if friend:
        referrer = redis.hget(key(friend), "referred_by")
        if referrer:
            emails.add(referrer.decode())
    copies = [f"c:{e}{s}" for e in emails if e for s in SUFFIXES] + [f"erased:{tag(e)}" for e in emails if e]
    copies.append(f"seen:{seen_id(event['id']) or event['id']}")
    if event.get("order"):
        copies.append(f"order:{event['order']['id']}")
    try:
        dumps = redis.pipeline(transaction=False)
        for name in copies:
            dumps.dump(keys.in_ledger(name))
        pipe = redis.pipeline(transaction=False)
        for name, blob in zip(copies, dumps.execute()):
            if blob is not None:
                pipe.restore(keys.in_ledger(name, scratch), 120_000, blob, replace=True)
        pipe.execute()
        op = operation(event, [connector], ledger.config, ledger.erasure)
        ops = json.dumps([{**op, "log": json.dumps(event, default=str)}], default=str)
        applied = ledger.script(args=[ops, scratch], client=redis)[0] == [1]
        touched = [e.decode() for e in redis.zrange(f"{scratch}dirty:{connector}", 0, -1)]
        rows = [{k.decode(): v.decode() for k, v in redis.hgetall(f"{scratch}c:{e}").items()} for e in touched]
        return applied, {e: (state_of(e, row, currency) if row else None) for e, row in zip(touched, rows)}
    finally:
        doomed = list(redis.scan_iter(match=f"{scratch}*", count=1000))
        if doomed:
            redis.delete(*doomed)

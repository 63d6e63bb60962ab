"""Event-feed endpoints as data: where the hub sends its signed feed, and what each one wants.

Each endpoint has its own signing secret, generated here, shown once (at creation and on each
rotation) and stored only encrypted with HUB_SECRET_KEY (cryptography's Fernet; several keys,
comma separated, let the key itself rotate: the first encrypts, all decrypt). A rotation keeps
the previous secret valid for HUB_FEED_ROTATION_OVERLAP seconds, and every message sent in that
time carries one signature per valid secret.

The operations are plain functions raising APIError: the `/v1/endpoints` routes and
`hub endpoints` both call them.
"""
from __future__ import annotations

import base64
import json
import secrets
import time
from datetime import datetime, timezone
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from hub.core import netguard
from hub.core.config import split
from hub.core.errors import APIError
from hub.core import feed
from hub.core.endpointstore import ENDPOINTS, load, save
from hub.core.feed import endpoint_stats, recent_attempts, setting, start_cursor
from hub.core.schemas import TYPES
from hub.core import keys
from hub.core import services

SECRETS = keys.FEED_SECRETS            # id -> JSON list of {"secret": <Fernet token>, "expires": ts|null}
DERIVED = ("referrer.totals_changed", "list.membership_changed", "sync.failed")
EVENT_TYPES = TYPES + DERIVED
EDITABLE = ("url", "description", "event_types", "batch", "max_in_flight")
MAX_BATCH = 1000
# The answers and bodies the routes below declare for the OpenAPI document.


def redis() -> Any:
    return services.current().redis


def config() -> dict[str, Any]:
    return services.current().config


def iso_seconds(moment: float | None = None) -> str:
    """A unix time (default now) as ISO 8601 UTC to the second, with +00:00."""
    return datetime.fromtimestamp(time.time() if moment is None else moment, timezone.utc).isoformat(timespec="seconds")


# -- secrets ---------------------------------------------------------------------------------

def cipher(settings: dict[str, Any] | None = None) -> MultiFernet:
    """HUB_SECRET_KEY's Fernet keys; a clear 503 when none is set or one is malformed."""
    fernet_keys = split(str((settings or config()).get("SECRET_KEY") or ""))
    if not fernet_keys:
        raise APIError(503, "secret_key_missing", "set HUB_SECRET_KEY to a Fernet key to store endpoint secrets "
                       "(make one with: python -c \"from cryptography.fernet import Fernet; "
                       "print(Fernet.generate_key().decode())\")")
    try:
        return MultiFernet([Fernet(k) for k in fernet_keys])
    except ValueError:
        raise APIError(503, "secret_key_invalid", "HUB_SECRET_KEY must be Fernet keys (32 url-safe base64 bytes), "
                       "comma separated") from None


def new_secret() -> str:
    """A Standard Webhooks secret: whsec_ and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def store_secrets(endpoint_id: str, items: list[tuple[str, float | None]]) -> None:
    fernet = cipher()
    rows = [{"secret": fernet.encrypt(s.encode()).decode(), "expires": exp} for s, exp in items]
    redis().hset(SECRETS, endpoint_id, json.dumps(rows))


def signing_secrets(endpoint_id: str, settings: dict[str, Any] | None = None, r: Any = None,
                    at: float | None = None) -> list[str]:
    """The endpoint's secrets valid now, newest first: more than one during a rotation overlap."""
    raw = (r or redis()).hget(SECRETS, endpoint_id)
    if not raw:
        return []
    fernet, moment = cipher(settings), time.time() if at is None else at
    out = []
    for row in json.loads(raw):
        if row["expires"] is not None and row["expires"] <= moment:
            continue
        try:
            out.append(fernet.decrypt(row["secret"].encode()).decode())
        except InvalidToken:
            raise APIError(503, "secret_key_invalid", "an endpoint secret cannot be decrypted with HUB_SECRET_KEY "
                           "(was the key changed without keeping the old one?)") from None
    return out


# -- validation ------------------------------------------------------------------------------

def problem(field: str, message: str) -> APIError:
    return APIError(422, "invalid_endpoint", f"{field}: {message}", [{"field": field, "message": message}])


def check_url(url: Any) -> str:
    if not isinstance(url, str):
        raise problem("url", "must be an http or https URL")
    try:
        netguard.check(url, config(), services.current().resolver)
    except netguard.UnsafeURL as exc:
        raise problem("url", str(exc)) from None
    return url


def check_types(value: Any) -> list[str]:
    if value is None:
        return list(EVENT_TYPES)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise problem("event_types", "must be a non-empty list of event types")
    unknown = sorted(set(value) - set(EVENT_TYPES))
    if unknown:
        raise problem("event_types", f"unknown {', '.join(unknown)}; one of: {', '.join(EVENT_TYPES)}")
    return sorted(set(value), key=EVENT_TYPES.index)


def check_batch(value: Any) -> dict[str, Any] | None:
    """None (one message per request) or {"max_events": N, "max_seconds": T}."""
    if value is None or value is False:
        return None
    if not isinstance(value, dict) or set(value) - {"max_events", "max_seconds"}:
        raise problem("batch", "must be null or {\"max_events\": N, \"max_seconds\": T}")
    size, wait = value.get("max_events", 100), value.get("max_seconds", 5)
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_BATCH:
        raise problem("batch.max_events", f"must be an integer from 1 to {MAX_BATCH}")
    if not isinstance(wait, (int, float)) or isinstance(wait, bool) or not 0 <= wait <= 3600:
        raise problem("batch.max_seconds", "must be a number of seconds from 0 to 3600")
    return {"max_events": size, "max_seconds": float(wait)}


def check_fields(data: Any, creating: bool) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise APIError(400, "invalid_json", "the body must be a JSON object")
    unknown = sorted(set(data) - set(EDITABLE))
    if unknown:
        raise problem(unknown[0], f"unknown field; editable fields: {', '.join(EDITABLE)}")
    out: dict[str, Any] = {}
    if creating or "url" in data:
        out["url"] = check_url(data.get("url"))
    if creating or "event_types" in data:
        out["event_types"] = check_types(data.get("event_types"))
    if creating or "description" in data:
        text = data.get("description", "")
        if not isinstance(text, str) or len(text) > 500:
            raise problem("description", "must be text of at most 500 characters")
        out["description"] = text
    if creating or "batch" in data:
        out["batch"] = check_batch(data.get("batch"))
    if creating or "max_in_flight" in data:
        cap = data.get("max_in_flight", 4)
        if not isinstance(cap, int) or isinstance(cap, bool) or not 1 <= cap <= 32:
            raise problem("max_in_flight", "must be an integer from 1 to 32")
        out["max_in_flight"] = cap
    return out


# -- operations ------------------------------------------------------------------------------

def view(record: dict[str, Any]) -> dict[str, Any]:
    """The endpoint as the API and CLI show it, with its delivery figures; never its secret."""
    return {**record, "stats": endpoint_stats(redis(), record["id"])}


def create(data: Any) -> dict[str, Any]:
    fields = check_fields(data, creating=True)
    cipher()        # refuse before anything is stored when no key is set
    stamp = iso_seconds()
    record = {"id": "ep_" + secrets.token_hex(8), **fields, "disabled": False, "disabled_reason": None,
              "disabled_at": None, "created_at": stamp, "updated_at": stamp}
    secret = new_secret()
    store_secrets(record["id"], [(secret, None)])
    save(record)
    start_cursor(redis())
    return {**view(record), "secret": secret,
            "secret_note": "shown once: store it now; `rotate-secret` makes a new one"}


def update(endpoint_id: str, data: Any) -> dict[str, Any]:
    record = load(endpoint_id)
    record.update(check_fields(data, creating=False), updated_at=iso_seconds())
    save(record)
    return view(record)


def rotate(endpoint_id: str, overlap: float | None = None) -> dict[str, Any]:
    """A new secret, shown once; the current ones stay valid for `overlap` seconds."""
    load(endpoint_id)
    keep = float(setting(config(), "FEED_ROTATION_OVERLAP") if overlap is None else overlap)
    if keep < 0 or keep > 7 * 86400:
        raise problem("overlap_seconds", "must be from 0 to 604800 seconds")
    until = time.time() + keep
    current = signing_secrets(endpoint_id)
    secret = new_secret()
    store_secrets(endpoint_id, [(secret, None)] + [(s, until) for s in current if keep > 0])
    return {"id": endpoint_id, "secret": secret, "previous_valid_until": iso_seconds(until) if keep > 0 and current else None,
            "secret_note": "shown once: store it now"}


def set_disabled(endpoint_id: str, disabled: bool, reason: str | None = None, r: Any = None) -> dict[str, Any]:
    """Disable (with the reason ops will see) or enable an endpoint."""
    r = r or redis()
    record = load(endpoint_id, r)
    was = record["disabled"]
    record.update(disabled=disabled, updated_at=iso_seconds())
    if disabled:
        record.update(disabled_reason=reason or "disabled by an operator", disabled_at=iso_seconds())
    else:
        record.update(disabled_reason=None, disabled_at=None)
    save(record, r)
    if was and not disabled:
        feed.on_enabled(r, endpoint_id)
    return record


def delete(endpoint_id: str) -> dict[str, Any]:
    load(endpoint_id)
    pipe = redis().pipeline()
    pipe.hdel(ENDPOINTS, endpoint_id)
    pipe.hdel(SECRETS, endpoint_id)
    pipe.execute()
    feed.forget_endpoint(redis(), endpoint_id)
    return {"id": endpoint_id, "deleted": True}


def replay(endpoint_id: str, data: Any, progress: Any = None, batch: int = 1000) -> dict[str, Any]:
    ids, start, end = replay_selection(endpoint_id, data)
    return feed.replay(redis(), endpoint_id, ids, start, end, progress, batch)


def replay_selection(endpoint_id: str, data: Any) -> tuple[list[str] | None, float | None, float | None]:
    """(message ids, start, end in ms) from a replay body; 404 / 400 / 422 naming the field."""
    load(endpoint_id)
    if not isinstance(data, dict):
        raise APIError(400, "invalid_json", "the body must be a JSON object")
    ids, since, until = data.get("message_ids"), data.get("since"), data.get("until")
    if ids is None and since is None:
        raise problem("message_ids", "give message_ids, or since (and optionally until)")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > 10_000):
        raise problem("message_ids", "must be a list of at most 10000 message ids")
    try:
        start = feed.parse_time(since) if since is not None else None
        end = feed.parse_time(until) if until is not None else None
    except ValueError as exc:
        raise problem("since" if "since" in str(exc) else "until", str(exc)) from None
    return ids, start, end


def attempts(endpoint_id: str, limit: int = 50) -> list[dict[str, Any]]:
    load(endpoint_id)
    return recent_attempts(redis(), endpoint_id, limit)

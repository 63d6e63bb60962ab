"""HTTP: /v1/webhooks/<source> and the parked/rejected/stats reads, over hub.core.webhooks."""
from __future__ import annotations

import json
import time
from typing import Any
from flask import jsonify, request
from flask_smorest import Blueprint

from hub.core import admission
from hub.http.auth import require
from hub.core.errors import APIError
from hub.http.errors import int_arg
from hub.http.ingest import parse_body
from hub.core.schemas import json_problem
from sources import PayloadError, SOURCES, SettingsError, SignatureError
from hub.http.openapi import LIMIT_422, LISTING, arr, declare, obj, ref, t
from hub.core.keys import CODES, IDENT, PARKED, PARKED_INDEX, REJECTED, WEBHOOK_STATS as STATS  # noqa: E402,F401
from hub.core.webhooks import FRIENDBUY_NEVER_400, count, learn, log, record, redis, settings_for, take, unpark, why


bp = Blueprint("webhooks", __name__)


def unreadable(source: str, body: bytes, reason: str, refuse: bool = True) -> Any:
    """A body the adapter cannot read, kept for ops: 400 when it is not the platform's shape
    (refuse), else acknowledged; Friendbuy always gets 200 (see FRIENDBUY_NEVER_400)."""
    count(source, "rejected", ["unreadable"])
    record(source, reason, body=body)
    if refuse and source != FRIENDBUY_NEVER_400:
        raise APIError(400, "invalid_payload", reason)
    status = 200 if source == FRIENDBUY_NEVER_400 else 202
    return jsonify({"accepted": 0, "duplicates": 0, "parked": 0, "rejected": 1, "ignored": 0}), status


@bp.post("/v1/webhooks/<source>")
@declare(
    "Receive a referral platform's own webhook",
    [(202, "Acknowledged: accepted, parked, rejected or ignored, as counted.", ref("WebhookOutcome")),
     (200, "Friendbuy reward-validation callbacks (200 approves the reward).", ref("WebhookOutcome"))],
    {"type": "object", "description": "The platform's own payload."}, (),
    {400: "The body is not the platform's shape (never sent to Friendbuy).",
     404: "Unknown source, or the source is not configured.", 413: "The body is over 1 MiB.",
     503: "The source's settings are unusable, or Redis cannot be reached (Retry-After)."},
    description="Unknown event types and events the hub cannot use (invalid dates, amounts over the cap, "
                "bodies nested deeper than 32 levels or holding a lone surrogate) are acknowledged (2xx), "
                "counted and kept at GET /v1/webhooks/rejected, so the platform never retries them forever.", auth="webhook")
def receive_webhook(source: str):  # type: ignore[no-untyped-def]
    adapter = SOURCES.get(source)
    if adapter is None:
        raise APIError(404, "unknown_source", f"no webhook source called {source}; one of: {', '.join(SOURCES)}")
    try:
        settings = settings_for(source)
    except SettingsError as exc:  # the message names the variable, never its value
        log.error("webhook source misconfigured", extra={"source": source})
        raise APIError(503, "source_misconfigured", str(exc), headers={"Retry-After": "60"}) from None
    if not adapter.configured(settings):
        raise APIError(404, "source_not_configured", f"set HUB_SOURCE_{source.upper()}_* to receive {adapter.label} webhooks")
    body = parse_body()
    headers = dict(request.headers)  # werkzeug's Headers is no Mapping[str, str] to a type checker
    try:
        adapter.verify(headers, body, settings, time.time())
    except SignatureError as exc:
        count(source, "unauthorized", ["-"])
        raise APIError(401, "unauthorized", exc.reason) from None
    try:
        payload = adapter.parse(body)
        problem = json_problem(payload)
        if problem:  # the platform would send it again as is: acknowledge it, keep it for ops
            return unreadable(source, body, f"{problem[0]} {problem[1]}", refuse=False)
        result = adapter.normalise(payload, headers, settings)
    except PayloadError as exc:
        return unreadable(source, body, exc.reason)
    except RecursionError:
        return unreadable(source, body, "the body nests too deeply to read", refuse=False)
    except Exception:  # an adapter bug must not make the platform retry (and disable us): keep the body
        log.exception("webhook adapter failed", extra={"source": source})
        return unreadable(source, body, "the adapter could not read this body (see the hub log)", refuse=False)
    admission.admit()
    unlocked = learn(source, result.identities, result.events)
    items = result.events + unpark(unlocked)
    outcome = take(source, items) if items else {"accepted": 0, "duplicates": 0, "parked": 0, "rejected": 0}
    count(source, "ignored", result.ignored)
    callback = source == FRIENDBUY_NEVER_400 and isinstance(payload, dict) and "eventType" in payload
    admission.settle()
    return jsonify({**outcome, "ignored": len(result.ignored)}), 200 if callback else 202


# --- ops --------------------------------------------------------------------------------------

def limit_arg() -> int:
    return int_arg("limit", 100, 1, 1000)



@bp.get("/v1/webhooks/parked")
@declare(ok=(200, "Parked events by handle.", obj(total=t("integer"), parked=arr(t("object")))),
    params=LISTING, errors={422: LIMIT_422})
@require("ops")
def list_parked():  # type: ignore[no-untyped-def]
    """What is waiting for an identity, oldest first, and why."""
    wanted, limit = request.args.get("source"), limit_arg()
    out = []
    for member, since in redis().zscan_iter(PARKED_INDEX):
        handle = member.decode()
        if wanted and not handle.startswith(f"{wanted}:"):
            continue
        out.append((since, handle))
    out.sort()
    entries = []
    for since, handle in out[:limit]:
        events = [json.loads(raw) for raw in redis().hvals(PARKED.format(handle))]
        source, kind, value = handle.split(":", 2)
        entries.append({"source": source, "waiting_for": {"kind": kind, "value": value}, "reason": why(handle),
                        "parked_at": since, "events": sorted(
                            ({"id": e.get("id"), "type": e.get("type"), "occurred_at": e.get("occurred_at")}
                             for e in events), key=lambda e: str(e["occurred_at"]))})
    return jsonify({"total": len(out), "parked": entries})


@bp.get("/v1/webhooks/rejected")
@declare(ok=(200, "Newest first.", obj(total=t("integer"), rejected=arr(t("object")))),
    params=LISTING, errors={422: LIMIT_422})
@require("ops")
def list_rejected():  # type: ignore[no-untyped-def]
    """What the hub acknowledged but could not use, newest first, with the reasons."""
    wanted, limit = request.args.get("source"), limit_arg()
    entries = []
    for entry_id, fields in redis().xrevrange(REJECTED, count=10_000 if wanted else limit):
        item = {k.decode(): v.decode() for k, v in fields.items()}
        if wanted and item.get("source") != wanted:
            continue
        item["at"] = int(entry_id.decode().split("-")[0]) / 1000
        for name in ("event",):
            if name in item:
                try:
                    item[name] = json.loads(item[name])
                except ValueError:
                    pass  # truncated: shown as kept
        entries.append(item)
        if len(entries) >= limit:
            break
    return jsonify({"total": redis().xlen(REJECTED), "rejected": entries})


@bp.get("/v1/webhooks/stats")
@declare(ok=(200, "source -> outcome -> type -> count.", t("object")))
@require("ops")
def show_stats():  # type: ignore[no-untyped-def]
    """Counts per source and outcome (accepted, parked, rejected, ignored, unauthorized) and type."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for field, value in redis().hgetall(STATS).items():
        source, outcome, kind = field.decode().split(":", 2)
        out.setdefault(source, {}).setdefault(outcome, {})[kind] = int(value)
    return jsonify(out)

"""A local stand-in for the vendor APIs the connectors call, for the demo, tests and benchmarks.

Nothing here imports the hub: the sandbox only knows the vendors' wire formats.
"""
from __future__ import annotations

import json
import threading
from typing import Any

from flask import Flask, Response, g, jsonify, request

from . import emarsys, klaviyo, ometria, salesforce, splio
from .core import Fault, Store

VENDORS = {"klaviyo": klaviyo, "emarsys": emarsys, "salesforce": salesforce, "ometria": ometria, "splio": splio}
# The credentials each emulated vendor accepts, as connector settings (README documents them).
DEMO_SETTINGS = {
    "klaviyo": {"api_key": klaviyo.API_KEY},
    "emarsys": {"client_id": emarsys.CLIENT_ID, "client_secret": emarsys.CLIENT_SECRET},
    "salesforce": {"client_id": salesforce.CLIENT_ID, "client_secret": salesforce.CLIENT_SECRET,
                   "refresh_token": salesforce.REFRESH_TOKEN},
    "ometria": {"api_key": ometria.API_KEY},
    "splio": {"api_key": splio.API_KEY},
}


# Recorded vendor requests kept for /_sandbox/requests (the newest; bodies can be large).
REQUESTS_KEPT = 200


def create_sandbox(latency: float = 0.0, fault_rate: float = 0.0) -> Flask:
    """The sandbox app: every vendor's routes, plus /_sandbox/ to inspect and steer it."""
    app = Flask("sandbox")
    app.extensions["sandbox"] = Store(latency=latency, fault_rate=fault_rate)
    for module in VENDORS.values():
        app.register_blueprint(module.bp, url_prefix=f"/{module.VENDOR}")
        if hasattr(module, "control"):   # sandbox-only controls a vendor emulation offers tests
            app.register_blueprint(module.control, url_prefix=f"/_sandbox/{module.VENDOR}")

    def sandbox() -> Store:
        return app.extensions["sandbox"]

    # Vendor calls being answered right now: a test that cut a client off waits for zero, so the
    # calls that client had already made have landed before it looks (an explicit synchronisation
    # point; the latency knob keeps a call in progress for a while).
    flight = {"calls": 0}
    flight_lock = threading.Lock()

    @app.teardown_request
    def landed(exc: BaseException | None) -> None:
        if not request.path.startswith("/_sandbox/"):
            with flight_lock:
                flight["calls"] -= 1

    @app.get("/_sandbox/in-flight")
    def in_flight() -> Any:
        with flight_lock:
            return jsonify({"calls": flight["calls"]})

    @app.before_request
    def record_request() -> None:
        # What each vendor was sent (method, path, body), so a test can compare it to a preview.
        # Bodies are kept raw and parsed only when asked for: recording costs nothing under load.
        if request.path.startswith("/_sandbox/"):
            return
        with flight_lock:
            flight["calls"] += 1
        with sandbox().lock:
            sandbox().requests.append({"method": request.method, "path": request.path,
                                       "query": request.args.to_dict(), "body": request.get_data(cache=True)})
            del sandbox().requests[:-REQUESTS_KEPT]

    def parsed(raw: bytes) -> Any:
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode("utf-8", "replace")

    @app.after_request
    def record_writes(response: Response) -> Response:
        # The write log: what each request changed, per contact, in the order it was applied.
        touched = g.pop("sandbox_touched", None)
        if touched and not request.path.startswith("/_sandbox/"):
            sandbox().record_writes(touched)
        return response

    @app.get("/_sandbox/<vendor>/writes/<path:email>")
    def contact_writes(vendor: str, email: str) -> Any:
        """Every change the vendor applied to this contact, oldest first (the newest 50 kept)."""
        with sandbox().lock:
            log = sandbox().writes[vendor].get(email.strip().lower())
            if vendor not in VENDORS or log is None:
                return jsonify({"error": {"code": "not_found", "message": f"{vendor} never wrote {email}"}}), 404
            return jsonify({"email": email.strip().lower(), "count": log["count"], "writes": list(log["writes"])})

    @app.get("/_sandbox/<vendor>/writes")
    def all_writes(vendor: str) -> Any:
        with sandbox().lock:
            return jsonify({e: {"count": log["count"], "unchanged": log.get("unchanged", 0), "writes": list(log["writes"])}
                            for e, log in sandbox().writes[vendor].items()})

    @app.get("/_sandbox/changes")
    def changes() -> Any:
        """Per vendor: when its last write that changed any contact landed (unix seconds) and how
        many such writes it applied."""
        with sandbox().lock:
            return jsonify({v: dict(c) for v, c in sandbox().changes.items()})

    @app.get("/_sandbox/requests")
    def recorded() -> Any:
        vendor = request.args.get("vendor")
        with sandbox().lock:
            rows = [dict(r) for r in sandbox().requests if not vendor or r["path"].startswith(f"/{vendor}/")]
        return jsonify({"requests": [{**r, "body": parsed(r["body"])} for r in rows]})

    @app.delete("/_sandbox/requests")
    def forget_requests() -> Any:
        with sandbox().lock:
            sandbox().requests.clear()
        return Response(status=204)

    @app.get("/_sandbox/<vendor>/contacts/<path:email>")
    def contact(vendor: str, email: str) -> Any:
        person = sandbox().find(vendor, email)
        if vendor not in VENDORS or person is None:
            return jsonify({"error": {"code": "not_found", "message": f"{vendor} never heard of {email}"}}), 404
        return jsonify(person.view(email.strip().lower()))

    @app.patch("/_sandbox/<vendor>/contacts/<path:email>")
    def drift(vendor: str, email: str) -> Any:
        return change_contact(sandbox(), vendor, email)

    @app.get("/_sandbox/<vendor>/contacts")
    def contacts(vendor: str) -> Any:
        with sandbox().lock:
            return jsonify({e: p.view(e) for e, p in sandbox().people[vendor].items()})

    @app.get("/_sandbox/stats")
    def stats() -> Any:
        return jsonify(dict(sandbox().stats))

    @app.post("/_sandbox/faults")
    def add_fault() -> Any:
        spec = request.get_json(force=True)
        sandbox().faults[spec["vendor"]].append(Fault(
            status=int(spec["status"]), count=int(spec.get("count", 1_000_000)), body=spec.get("body"),
            headers={k: str(v) for k, v in (spec.get("headers") or {}).items()}, path=spec.get("path", "")))
        return jsonify({"ok": True}), 201

    @app.delete("/_sandbox/faults")
    def clear_faults() -> Any:
        vendor = request.args.get("vendor")
        with sandbox().lock:
            if vendor:
                sandbox().faults.pop(vendor, None)
            else:
                sandbox().faults.clear()
        return Response(status=204)

    @app.post("/_sandbox/knobs")
    def knobs() -> Any:
        spec = request.get_json(force=True)
        if "latency" in spec:
            sandbox().latency = float(spec["latency"])
        if "fault_rate" in spec:
            sandbox().fault_rate = float(spec["fault_rate"])
        for vendor, mode in (spec.get("modes") or {}).items():
            if mode:
                sandbox().modes[vendor] = str(mode)
            else:
                sandbox().modes.pop(vendor, None)
        return jsonify({"latency": sandbox().latency, "fault_rate": sandbox().fault_rate,
                        "modes": dict(sandbox().modes)})

    @app.post("/_sandbox/reset")
    def reset() -> Any:
        app.extensions["sandbox"] = Store(latency=sandbox().latency, fault_rate=sandbox().fault_rate)
        return Response(status=204)

    return app


def change_contact(store: Store, vendor: str, email: str) -> Any:
    """Change what a vendor holds for a contact behind the hub's back (drift, for the audit's
    tests): {"fields": {name: value or null to remove}, "lists": [ids] (replaces),
    "marketing_consent": true | false | null}. Answers the contact's new view."""
    spec = request.get_json(silent=True)
    if vendor not in VENDORS or not isinstance(spec, dict):
        return jsonify({"error": {"code": "bad_request", "message": "a known vendor and a JSON object"}}), 400
    with store.lock:
        person = store.find(vendor, email)
        if person is None or person.deleted:
            return jsonify({"error": {"code": "not_found", "message": f"{vendor} never heard of {email}"}}), 404
        for name, value in (spec.get("fields") or {}).items():
            if value is None:
                person.fields.pop(name, None)
            else:
                person.fields[name] = value
        if "lists" in spec:
            lists = {str(i) for i in spec["lists"] or []}
            if vendor == "salesforce":
                salesforce.replace_lists(person, lists)     # its CampaignMember rows follow
            else:
                person.lists = lists
        if "marketing_consent" in spec:
            person.marketing_consent = spec["marketing_consent"]
        return jsonify(person.view(email.strip().lower()))

"""Admin API for CRM admins: mappings they can change without breaking production (validated,
checked against the live account, previewed, versioned, reversible) and the connectors behind them.

The operations are plain functions (they raise APIError); the routes and `hub mappings` both call
them, so the CLI and the API cannot disagree.
"""
from __future__ import annotations

import logging

import difflib
from typing import Any


from connectors import CONNECTORS, ContactUpdate
from connectors.errors import VendorError

from hub.core import mappingstore as store
from hub.core import mappingview
from hub.core.config import connector_settings
from hub.core.errors import APIError
from hub.core.ledger import get_ledger
from hub.core.mappingstore import StaleVersion, UnknownVersion
from hub.core.mappingstore import current_mapping
from hub.core.preview import build_updates, record_push, simulate_event
from hub.core.queue import get_queues
from hub.core.schemas import load_events
from hub.core.sync import build_connector, paused
from hub.core import services
log = logging.getLogger("hub")

EXPORT_FORMAT = "referral-sync-hub/mappings@1"
# Standard fields the vendors' field listings leave out: only custom fields are checked there.
SPLIO_STANDARD = {"email", "cellphone", "firstname", "lastname", "language", "creation_date"}


def redis() -> Any:
    return services.current().redis


def known(connector: str) -> str:
    if connector not in CONNECTORS:
        raise APIError(404, "unknown_connector", f"no connector {connector!r}; one of: {', '.join(sorted(CONNECTORS))}")
    return connector


def enabled(connector: str) -> bool:
    return connector in get_queues().connectors


def build(connector: str) -> Any:
    return build_connector(connector)


def vendor_failure(connector: str, action: str, exc: VendorError) -> APIError:
    return APIError(502, "vendor_error", f"{CONNECTORS[connector].label} answered {exc.status or 'no status'} "
                    f"while {action}: {exc.code or ''} {exc.message}".replace("  ", " "),
                    {"status": exc.status, "code": exc.code, "retriable": exc.retriable})


# -- validation ------------------------------------------------------------------------------
def custom_target(connector: str, target: str) -> bool:
    """Whether the account's field listing must contain `target` (standard fields are not listed)."""
    if connector == "salesforce":
        return target.endswith("__c")
    if connector == "splio":
        return target not in SPLIO_STANDARD
    return True


def live_errors(connector: str, mapping: dict[str, Any]) -> tuple[list[dict[str, str]], str]:
    """Fields the mapping writes that the live account lacks: (errors, what was checked)."""
    if not enabled(connector):
        return [], "skipped: the connector is not enabled (no credentials)"
    try:
        fields = build(connector).fields()
    except VendorError as exc:
        raise vendor_failure(connector, "listing the account's fields", exc) from None
    if not fields:
        return [], "skipped: the platform accepts any field name"
    names = {str(f["id"]) for f in fields if f.get("id") is not None} | {str(f["name"]) for f in fields}
    label = CONNECTORS[connector].label
    errors = []
    targets = [("identity.field", mapping["identity"]["field"])] + \
        [(f"fields.{i}.target", rule["target"]) for i, rule in enumerate(mapping["fields"])]
    for path, target in targets:
        if custom_target(connector, target) and target not in names:
            near = difflib.get_close_matches(target, sorted(names), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            errors.append({"path": path, "message": f"the {label} account has no field {target!r}{hint}"})
    return errors, f"passed: {len(fields)} fields listed by {label}" if not errors else "failed"


def check_document(connector: str, document: Any, live: bool = True) -> tuple[dict[str, Any] | None, list[dict[str, str]], str]:
    """(loaded mapping or None, errors, live check note). Schema first, then the live account."""
    from mappings import validate_mapping

    mapping, errors = validate_mapping(document)
    if isinstance(document, dict) and document.get("connector") not in (None, connector):
        errors.append({"path": "connector", "message": f"this document is for {document.get('connector')!r}, not {connector!r}"})
    if errors or mapping is None:
        return None, errors, "not run: fix the schema errors first"
    if not live:
        return mapping, [], "skipped on request"
    problems, note = live_errors(connector, mapping)
    return (None if problems else mapping), problems, note


def semantic(document: dict[str, Any]) -> Any:
    """What a sync renders from: descriptions and list names change nothing at the vendor."""
    from mappings import validate_mapping

    mapping, _ = validate_mapping(document)
    if mapping is None:
        return None
    mapping = dict(mapping)
    mapping.pop("description", None)
    mapping["lists"] = [{k: v for k, v in rule.items() if k != "name"} for rule in mapping.get("lists", [])]
    return store.digest(mapping)


def changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Which targets and lists an edit adds, removes or changes."""
    def by(doc: dict[str, Any], section: str, key: str) -> dict[str, Any]:
        return {str(r.get(key)): r for r in doc.get(section) or [] if isinstance(r, dict)}

    out: dict[str, Any] = {}
    for section, key in (("fields", "target"), ("lists", "id")):
        a, b = by(old, section, key), by(new, section, key)
        out[section] = {"added": sorted(set(b) - set(a)), "removed": sorted(set(a) - set(b)),
                        "changed": sorted(k for k in set(a) & set(b) if a[k] != b[k])}
    out["identity_changed"] = old.get("identity") != new.get("identity")
    return out


def affected(connector: str, old: dict[str, Any], new: dict[str, Any]) -> int:
    """Contacts a change makes worth re-pushing: none for cosmetic edits, else every known one."""
    return 0 if semantic(old) == semantic(new) else store.count_contacts(redis())


def resync(connector: str, count: int, dry_run: bool, progress: Any = None) -> dict[str, Any]:
    if dry_run or count == 0:
        return {"contacts": count, "marked": False, "dry_run": dry_run}
    if not enabled(connector):
        return {"contacts": count, "marked": False, "reason": "the connector is not enabled"}
    if progress is not None:
        progress.label = f"resync {connector}"
        progress.resume = (f"The {connector} mapping is saved; to re-sync the contacts not yet marked, run "
                           f"`hub contacts resync --all --connector {connector}`.")
        progress.start(count, "contacts")
    marked = store.mark_dirty(redis(), connector, progress=progress)
    get_queues().kick([connector])
    return {"contacts": marked, "marked": True, "dry_run": False}


# -- operations (the API and the CLI) -----------------------------------------------------------
def view(connector: str, record: dict[str, Any]) -> dict[str, Any]:
    return {"connector": connector, **{k: record.get(k) for k in (
        "version", "etag", "author", "at", "comment", "action")}, "document": record["document"]}


def validate(connector: str, document: Any, live: bool = True) -> dict[str, Any]:
    mapping, errors, note = check_document(known(connector), document, live)
    answer: dict[str, Any] = {"connector": connector, "valid": mapping is not None, "errors": errors, "live_check": note}
    if mapping is not None:
        head = store.current(redis(), connector)
        answer["changes"] = changes(head["document"], document)
        answer["resync"] = {"contacts": affected(connector, head["document"], document), "dry_run": True}
    return answer


def apply(connector: str, document: Any, *, author: str, comment: str, if_match: str | None,
          live: bool = True, do_resync: bool = True, dry_run: bool = False, action: str = "put",
          progress: Any = None) -> dict[str, Any]:
    """Validate (schema, live account), then save as a new version and re-sync what it affects."""
    known(connector)
    if not if_match:
        raise APIError(428, "precondition_required", "send If-Match with the ETag of the version you edited "
                       "(GET the mapping first); use If-Match: * to overwrite whatever is current")
    mapping, errors, note = check_document(connector, document, live)
    if mapping is None:
        raise APIError(422, "invalid_mapping", f"the {connector} mapping is invalid; nothing was saved", errors)
    head = store.current(redis(), connector)
    if if_match != "*" and not store.etag_matches(if_match, head["etag"]):
        raise stale(connector, head)
    count = affected(connector, head["document"], document)
    if dry_run:
        return {"connector": connector, "saved": False, "version": head["version"], "etag": head["etag"],
                "live_check": note, "changes": changes(head["document"], document),
                "resync": {"contacts": count, "marked": False, "dry_run": True}}
    try:
        record = store.save(redis(), connector, document, author=author, comment=comment, if_match=if_match,
                            action=action, live_check=note)
    except StaleVersion as exc:
        raise stale(connector, exc.current) from None
    return saved(connector, record, head, note, count if do_resync else 0, do_resync, progress)


def saved(connector: str, record: dict[str, Any], head: dict[str, Any], note: str, count: int,
          do_resync: bool, progress: Any = None) -> dict[str, Any]:
    log.info("mapping saved", extra={"connector": connector, "version": record["version"],
                                                    "author": record["author"]})
    sync = resync(connector, count, False, progress) if do_resync else \
        {"contacts": 0, "marked": False, "reason": "resync off"}
    return {"connector": connector, "saved": True, "version": record["version"], "etag": record["etag"],
            "previous": head["version"], "author": record["author"], "at": record["at"],
            "live_check": note, "changes": changes(head["document"], record["document"]), "resync": sync}


def stale(connector: str, head: dict[str, Any]) -> APIError:
    return APIError(412, "precondition_failed", f"If-Match is not the current {connector} mapping: it is now "
                    f"version {head['version']} ({head['etag']}) by {head['author']}; GET it again and reapply your edit",
                    {"version": head["version"], "etag": head["etag"]}, headers={"ETag": head["etag"]})


def rollback(connector: str, number: int, *, author: str, comment: str = "", if_match: str | None = None,
             live: bool = True, do_resync: bool = True, progress: Any = None) -> dict[str, Any]:
    """A new version carrying version `number`'s exact document (validated against the account again)."""
    known(connector)
    try:
        old = store.version(redis(), connector, number)
    except UnknownVersion:
        raise APIError(404, "unknown_version", f"the {connector} mapping has no version {number}") from None
    mapping, errors, note = check_document(connector, old["document"], live)
    if mapping is None:
        raise APIError(422, "invalid_mapping", f"version {number} no longer passes validation", errors)
    head = store.current(redis(), connector)
    try:
        record = store.rollback(redis(), connector, number, author=author, comment=comment, if_match=if_match or "*")
    except StaleVersion as exc:
        raise stale(connector, exc.current) from None
    count = affected(connector, head["document"], record["document"])
    return saved(connector, record, head, note, count if do_resync else 0, do_resync, progress)


def preview(connector: str, *, emails: list[str] | None = None, event: Any = None, document: Any = None,
            force: bool = False, diff: bool = False) -> dict[str, Any]:
    """The vendor requests a sync would send now, for some contacts or after a sample event; with
    `diff`, each contact's fields, lists and consent at the vendor now and after that push."""
    answer, updates, mapping = preview_plan(connector, emails=emails, event=event, document=document, force=force)
    if diff:
        answer["diff"] = profile_diffs(connector, answer["contacts"], updates, mapping)
    return answer


def preview_plan(connector: str, *, emails: list[str] | None, event: Any, document: Any,
                 force: bool) -> tuple[dict[str, Any], dict[str, ContactUpdate], dict[str, Any]]:
    """(the preview answer, the update per contact a push would send, the mapping used)."""
    known(connector)
    if document is not None:
        mapping, errors, _ = check_document(connector, document, live=False)
        if mapping is None:
            raise APIError(422, "invalid_mapping", "the draft mapping is invalid", errors)
        source: dict[str, Any] = {"draft": True}
    else:
        mapping = current_mapping(redis(), connector)
        head = store.current(redis(), connector)
        source = {"draft": False, "version": head["version"], "etag": head["etag"]}
    currency = services.current().config["CURRENCY"]
    applied = None
    if event is not None:
        events, problems = load_events([event])
        if problems:
            raise APIError(422, "invalid_event", "the sample event is invalid", problems)
        applied, states = simulate_event(redis(), events[0], connector, currency)
    else:
        if not emails:
            raise APIError(422, "invalid_request", "send {\"email\": ...}, {\"emails\": [...]} or {\"event\": {...}}")
        wanted = [e.strip().lower() for e in emails]
        states = get_ledger().states(wanted)
    updates, contacts = build_updates(connector, mapping, states, force=force)
    settings = connector_settings(services.current().config, connector)
    calls, failed = record_push(connector, settings, updates)
    answer: dict[str, Any] = {"connector": connector, "mapping": source, "sent": False, "contacts": contacts,
                              "requests": calls}
    if event is not None:
        answer["event"] = {"id": event.get("id") if isinstance(event, dict) else None,
                           "duplicate": not applied, "touches": sorted(states)}
    if failed:
        answer["failed"] = failed
    return answer, {u.email: u for u in updates}, mapping


def profile_diffs(connector: str, contacts: list[dict[str, Any]], updates: dict[str, ContactUpdate],
                  mapping: dict[str, Any]) -> list[dict[str, Any]]:
    """Per contact: what the vendor holds now (the sandbox's inspection view, else the vendor's read
    API, else unknown) against what it would hold after the push. Reads only."""
    settings = connector_settings(services.current().config, connector)
    client = build(connector) if enabled(connector) else None
    out = []
    for row in contacts:
        if row["status"] in ("unknown", "mapping_error"):
            out.append({"email": row["email"], "status": row["status"], "message": row.get("message", "")})
            continue
        update = updates.get(row["email"])
        probe = update or ContactUpdate(email=row["email"], fields=row.get("fields") or {},
                                        lists=row.get("lists") or {}, identity=row.get("identity") or {},
                                        marketing_consent=row.get("marketing_consent"))
        if client is None and mappingview.sandbox_root(connector, settings) is None:
            held = mappingview.Held("unknown", note="the connector is not enabled (no credentials)")
        else:
            held = mappingview.held_now(connector, settings, client, probe)
        out.append(mappingview.profile_diff(row, update, held, mapping.get("lists") or []))
    return out


def mapping_table(connector: str, number: int | None = None, live: bool = True) -> dict[str, Any]:
    """The mapping (current, or version `number`) as rows, vendor ids labelled from the account."""
    record = store.current(redis(), known(connector)) if number is None else version_record(connector, number)
    names = catalogue(connector) if live else {"fields": [], "lists": []}
    field_names = {str(f.get("id")): str(f.get("name")) for f in names["fields"] if str(f.get("id")) != str(f.get("name"))}
    list_names = {str(i["id"]): str(i["name"]) for i in names["lists"] or []}
    return {**{k: record.get(k) for k in ("version", "etag", "author", "at", "comment")},
            "table": mappingview.table(record["document"], field_names, list_names)}


def version_record(connector: str, number: int) -> dict[str, Any]:
    try:
        return store.version(redis(), known(connector), number)
    except UnknownVersion:
        raise APIError(404, "unknown_version", f"the {connector} mapping has no version {number}") from None


def versions_diff(connector: str, older: int, newer: int) -> dict[str, Any]:
    """What changed from version `older` to version `newer` (either order)."""
    a, b = version_record(connector, older), version_record(connector, newer)
    meta = ("version", "etag", "author", "at", "comment", "action")
    return {"connector": connector, "from": {k: a.get(k) for k in meta}, "to": {k: b.get(k) for k in meta},
            **mappingview.version_diff(a["document"], b["document"])}


def connector_lists(connector: str) -> dict[str, Any]:
    require_enabled(connector)
    try:
        lists = build(connector).lists()
    except VendorError as exc:
        raise vendor_failure(connector, "listing the account's lists", exc) from None
    except NotImplementedError:
        return {"connector": connector, "listable": False, "lists": []}
    return {"connector": connector, "listable": True, "lists": lists}


def catalogue(connector: str) -> dict[str, Any]:
    """The live account's fields and lists for an editor, never raising: what could not be read
    is an empty list and a note saying why (free-form fields, no list API, the vendor down)."""
    out: dict[str, Any] = {"fields": [], "free_form": False, "lists": None, "notes": []}
    if not enabled(connector):
        out["notes"].append("the connector is not enabled: nothing can be read from the account")
        return out
    client = build(connector)
    try:
        out["fields"] = client.fields()
        out["free_form"] = not out["fields"]
    except (VendorError, NotImplementedError) as exc:
        out["notes"].append(f"fields could not be read: {getattr(exc, 'message', '') or 'no field listing'}")
    try:
        out["lists"] = client.lists()
    except NotImplementedError:
        out["notes"].append(f"{CONNECTORS[connector].label} has no call that lists its lists: type the list id")
    except VendorError as exc:
        out["notes"].append(f"lists could not be read: {exc.message}")
    return out


def export_all() -> dict[str, Any]:

    out = {}
    for name in sorted(CONNECTORS):
        record = store.current(redis(), name)
        out[name] = {"version": record["version"], "etag": record["etag"], "document": record["document"]}
    return {"format": EXPORT_FORMAT, "exported_at": store.now_iso(), "mappings": out}


def import_all(payload: Any, *, author: str, comment: str, force: bool = False, live: bool = True,
               do_resync: bool = True, dry_run: bool = False, progress: Any = None) -> dict[str, Any]:
    """All or nothing: every document is validated (and its ETag checked unless `force`) before
    any is saved; unchanged documents are skipped."""
    if not isinstance(payload, dict) or not isinstance(payload.get("mappings"), dict):
        raise APIError(422, "invalid_import", "expected {\"format\": ..., \"mappings\": {\"<connector>\": {\"document\": ...}}} "
                       "as written by export")
    errors: list[dict[str, str]] = []
    plan: list[tuple[str, dict[str, Any], dict[str, Any], str]] = []
    for name, entry in sorted(payload["mappings"].items()):
        if name not in CONNECTORS:
            errors.append({"path": f"mappings.{name}", "message": f"unknown connector {name!r}"})
            continue
        document = entry.get("document") if isinstance(entry, dict) else None
        mapping, problems, note = check_document(name, document, live)
        errors += [{"path": f"mappings.{name}.document.{p['path']}", "message": p["message"]} for p in problems]
        head = store.current(redis(), name)
        if mapping is None:
            continue
        if not force and entry.get("etag") and not store.etag_matches(entry["etag"], head["etag"]) \
                and head["document"] != document:
            errors.append({"path": f"mappings.{name}.etag", "message": f"{name} changed since this file was exported "
                           f"(now version {head['version']}); export again, or import with force"})
            continue
        if head["document"] != document:
            assert isinstance(document, dict)   # it validated
            plan.append((name, document, head, note))
    if errors:
        status = 412 if all(e["path"].endswith(".etag") for e in errors) else 422
        raise APIError(status, "invalid_import" if status == 422 else "precondition_failed",
                       f"{len(errors)} problem(s) in the import; nothing was saved", errors)
    results = {}
    for name, document, head, note in plan:
        count = affected(name, head["document"], document)
        if dry_run:
            results[name] = {"saved": False, "changes": changes(head["document"], document),
                             "resync": {"contacts": count, "dry_run": True}}
            continue
        record = store.save(redis(), name, document, author=author, comment=comment or "import",
                            if_match="*", action="import", live_check=note)
        results[name] = saved(name, record, head, note, count if do_resync else 0, do_resync, progress)
    unchanged = sorted(set(payload["mappings"]) - {p[0] for p in plan})
    return {"imported": results, "unchanged": unchanged, "dry_run": dry_run}


def connectors_list() -> list[dict[str, Any]]:
    config = services.current().config
    out = []
    for name, cls in sorted(CONNECTORS.items()):
        settings = connector_settings(config, name)
        masked = {k: ("****" if k in cls.secret_settings else v) for k, v in sorted(settings.items())}
        head = store.current(redis(), name)
        out.append({"name": name, "label": cls.label, "enabled": enabled(name), "settings": masked,
                    "base_url": settings.get("base_url") or cls.default_base_url, "max_batch": cls.max_batch,
                    "paused": paused(name) if enabled(name) else None,
                    "mapping": {"version": head["version"], "etag": head["etag"]}})
    return out


def require_enabled(connector: str) -> None:
    known(connector)
    if not enabled(connector):
        raise APIError(409, "connector_not_enabled", f"{connector} has no credentials: set HUB_{connector.upper()}_* settings")


def connector_check(connector: str) -> dict[str, Any]:
    require_enabled(connector)
    try:
        # A check proves the credentials: it logs in itself rather than reuse the shared token.
        return {"connector": connector, **build_connector(connector, shared_token=False).check()}
    except VendorError as exc:
        return {"connector": connector, "ok": False, "error": {"status": exc.status, "code": exc.code,
                                                              "message": exc.message, "retriable": exc.retriable}}


def connector_fields(connector: str) -> dict[str, Any]:
    require_enabled(connector)
    try:
        fields = build(connector).fields()
    except VendorError as exc:
        raise vendor_failure(connector, "listing the account's fields", exc) from None
    return {"connector": connector, "free_form": not fields, "fields": fields}

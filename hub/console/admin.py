"""The CRM admin pages: connectors, a mapping as a table, the editor (live account fields and
lists, validation next to each field, preview with the live diff, apply with the version's ETag),
history with a diff between any two versions, rollback, and the re-sync offer after a change.

Every page calls the functions the admin API calls (hub.core.admin), so the console cannot disagree
with the API or the CLI. Ops sessions may read connectors, mappings and history; every change
needs the admin role, checked here on the server.
"""
from __future__ import annotations

import json
from typing import Any

from flask import abort, current_app, redirect, render_template, request, url_for

from connectors import CONNECTORS
from mappings.schema import CONDITIONS, KINDS, SOURCES
from mappings.transforms import BOOLEAN_STYLES, DATE_FORMATS, TRANSFORMS

from hub.core import admin, sync
from hub.core import mappingstore as store
from hub.http.auth import actor
from hub.core.errors import APIError
from hub.core import services
from hub.console import NAV, bp
from hub.console.admin_form import Draft, draft_of, placed, row_errors, rows_of
from hub.console.session import has, require_role

NAV.extend([("console.connectors", "Connectors", "ops"), ("console.mappings", "Mappings", "ops")])
CHOICES = {"sources": SOURCES, "transforms": tuple(TRANSFORMS), "formats": tuple(DATE_FORMATS),
           "as": tuple(BOOLEAN_STYLES) + ("number", "string"), "kinds": KINDS, "conditions": CONDITIONS}


def redis() -> Any:
    return services.current().redis


def connector_or_404(name: str) -> str:
    if name not in CONNECTORS:
        abort(404, description=f"no connector {name!r}")
    return name


# -- connectors ----------------------------------------------------------------------------------
def credentials(name: str) -> dict[str, Any]:
    """The result of the connector's `check`, as the page words it."""
    result = admin.connector_check(name)
    if result.get("ok"):
        return {"ok": True, "text": "checked: every permission the hub needs is granted"}
    if result.get("error"):
        error = result["error"]
        return {"ok": False, "text": f"refused: {error.get('status') or ''} {error.get('code') or ''} "
                                     f"{error.get('message') or ''}".replace("  ", " ").strip()}
    return {"ok": False, "text": "missing permissions: " + ", ".join(result.get("missing") or ["unknown"])}


@bp.get("/connectors")
@require_role("ops")
def connectors() -> Any:
    rows = []
    for entry in admin.connectors_list():
        row = {**entry, "status": None, "credentials": None}
        if entry["enabled"]:
            row["status"] = sync.status(entry["name"])
            row["credentials"] = credentials(entry["name"])
        rows.append(row)
    return render_template("console/admin_connectors.html", connectors=rows)


# -- a mapping -------------------------------------------------------------------------------------
@bp.get("/mappings")
@require_role("ops")
def mappings() -> Any:
    rows = [{"name": n, "label": c.label, "enabled": admin.enabled(n), **store.current(redis(), n)}
            for n, c in sorted(CONNECTORS.items())]
    return render_template("console/admin_mappings.html", rows=rows)


@bp.get("/mappings/<name>")
@require_role("ops")
def mapping(name: str) -> Any:
    connector_or_404(name)
    number = request.args.get("version", type=int)
    answer = admin.mapping_table(name, number)
    head = store.current(redis(), name)
    return render_template("console/admin_mapping.html", connector=name, label=CONNECTORS[name].label,
                           answer=answer, head=head, can_edit=has("admin"))


# -- the editor ------------------------------------------------------------------------------------
def catalogue_view(name: str) -> dict[str, Any]:
    """The live account's fields (ids labelled) and lists for the editor's pickers."""
    found = admin.catalogue(name)
    fields = [{"value": str(f.get("id") if f.get("id") is not None else f["name"]), "name": str(f["name"])}
              for f in found["fields"]]
    return {"fields": fields, "free_form": found["free_form"], "lists": found["lists"], "notes": found["notes"],
            "list_names": {str(i["id"]): i["name"] for i in found["lists"] or []}}


def editor(name: str, rows: dict[str, Any], base: dict[str, Any], *, status: int = 200, **extra: Any) -> Any:
    context = {"connector": name, "label": CONNECTORS[name].label, "rows": rows, "base": base,
               "catalogue": catalogue_view(name), "choices": CHOICES, "errors": {}, "row_errors": row_errors,
               "comment": request.form.get("comment", ""), "email": request.form.get("email", ""),
               "event": request.form.get("event", ""), **extra}
    return render_template("console/admin_edit.html", **context), status


def base_of(name: str) -> dict[str, Any]:
    """The version the form was opened on (its number and ETag travel in the form)."""
    version, etag = request.form.get("version", ""), request.form.get("etag", "")
    if not version.isdigit() or not etag:
        abort(400, description="the form lacks the version it was opened on; open the editor again")
    return {"version": int(version), "etag": etag}


@bp.get("/mappings/<name>/edit")
@require_role("admin")
def edit(name: str) -> Any:
    connector_or_404(name)
    head = store.current(redis(), name)
    return editor(name, rows_of(head["document"]), {"version": head["version"], "etag": head["etag"]})


@bp.post("/mappings/<name>/edit")
@require_role("admin")
def edit_post(name: str) -> Any:
    connector_or_404(name)
    base = base_of(name)
    draft = draft_of(request.form, name)
    action = request.form.get("action", "validate")
    rows = rows_of(draft.document)
    if action in ("apply", "overwrite"):
        return apply(name, draft, rows, base)
    if action == "preview":
        return preview(name, draft, rows, base)
    if action == "rows":
        return editor(name, rows, base)
    return validate(name, draft, rows, base)


def validate(name: str, draft: Draft, rows: dict[str, Any], base: dict[str, Any]) -> Any:
    try:
        answer = admin.validate(name, draft.document, live=True)
    except APIError as exc:       # the account could not be read: say so, validate the schema alone
        answer = admin.validate(name, draft.document, live=False)
        answer["live_check"] = f"not run: {exc.message}"
    errors = placed(answer["errors"], draft)
    return editor(name, rows, base, errors=errors, validation=answer, status=200 if answer["valid"] else 422)


def preview(name: str, draft: Draft, rows: dict[str, Any], base: dict[str, Any]) -> Any:
    """For the typed emails, or after a sample event (applied to a scratch copy of the state)."""
    emails = [e for e in request.form.get("email", "").replace(",", " ").split() if e]
    sample = request.form.get("event", "").strip()
    event = None
    if sample:
        try:
            event = json.loads(sample)
        except ValueError as exc:
            return editor(name, rows, base, errors={"event": [f"the sample event is not JSON: {exc}"]}, status=422)
    if not emails and event is None:
        return editor(name, rows, base, errors={"email": ["type the email of a contact, or paste a sample event"]},
                      status=422)
    try:
        answer = admin.preview(name, emails=None if event is not None else emails[:10], event=event,
                               document=draft.document, diff=True)
    except APIError as exc:
        details = exc.details if isinstance(exc.details, list) else []
        key = "event" if exc.code == "invalid_event" else None
        errors = ({key: [f"{d.get('path') or d.get('field') or '$'}: {d.get('message')}" for d in details]
                   or [exc.message]} if key else placed(details, draft)) or {"form": [exc.message]}
        return editor(name, rows, base, errors=errors, status=exc.status)
    requests = json.dumps(answer["requests"], indent=2, ensure_ascii=False)
    return editor(name, rows, base, preview=answer, requests_text=requests)


def apply(name: str, draft: Draft, rows: dict[str, Any], base: dict[str, Any]) -> Any:
    comment = request.form.get("comment", "").strip()
    if not comment:
        return editor(name, rows, base, errors={"comment": ["say why: the comment goes into the history"]}, status=422)
    # "Apply mine over version N": only the ETag of the version the conflict showed, never "*".
    etag = request.form.get("overwrite-etag", "") if request.form.get("action") == "overwrite" else base["etag"]
    try:
        saved = admin.apply(name, draft.document, author=actor(), comment=comment, if_match=etag, do_resync=False)
    except APIError as exc:
        if exc.status == 412:
            return conflict(name, rows, base)
        if exc.status == 422:
            details = exc.details if isinstance(exc.details, list) else []
            return editor(name, rows, base, errors=placed(details, draft), status=422)
        raise
    return redirect(url_for("console.saved", name=name, version=saved["version"], previous=saved["previous"]))


def conflict(name: str, rows: dict[str, Any], base: dict[str, Any]) -> Any:
    """Someone saved since this form was opened: show who, why and what they changed, keep the
    draft, and offer to apply it over their version once it has been seen."""
    head = store.current(redis(), name)
    theirs = admin.versions_diff(name, base["version"], head["version"])
    return editor(name, rows, base, conflict={"head": head, "diff": theirs}, status=409)


@bp.get("/mappings/<name>/saved")
@require_role("admin")
def saved(name: str) -> Any:
    """After a change: the new version, what changed, and the re-sync offer with its dry-run count."""
    connector_or_404(name)
    version = request.args.get("version", type=int)
    previous = request.args.get("previous", type=int)
    if version is None or previous is None:
        abort(404, description="no saved version named: open one from the mapping's history")
    record = admin.version_record(name, version)
    diff = admin.versions_diff(name, previous, version)
    count = admin.affected(name, admin.version_record(name, previous)["document"], record["document"])
    return render_template("console/admin_saved.html", connector=name, label=CONNECTORS[name].label,
                           record=record, diff=diff, count=count, enabled=admin.enabled(name))


@bp.post("/mappings/<name>/resync")
@require_role("admin")
def resync(name: str) -> Any:
    connector_or_404(name)
    result = admin.resync(name, store.count_contacts(redis()), dry_run=False)
    current_app.logger.info("console re-sync", extra={"connector": name, "by": actor(), "contacts": result["contacts"]})
    head = store.current(redis(), name)
    answer = admin.mapping_table(name)
    note = (f"{result['contacts']} contact(s) marked for re-sync with {CONNECTORS[name].label}" if result["marked"]
            else f"nothing marked: {result.get('reason') or 'no contacts'}")
    return render_template("console/admin_mapping.html", connector=name, label=CONNECTORS[name].label,
                           answer=answer, head=head, can_edit=True, notices=[("ok", note)])


# -- history and rollback ----------------------------------------------------------------------------
@bp.get("/mappings/<name>/history")
@require_role("ops")
def history(name: str) -> Any:
    connector_or_404(name)
    versions = store.history(redis(), name, 200)
    head = versions[0]["version"] if versions else 0
    older = request.args.get("from", type=int)
    newer = request.args.get("to", type=int)
    if older is None or newer is None:
        newer = head
        older = next((v["version"] for v in versions if v["version"] < head), head)
    diff = admin.versions_diff(name, older, newer)
    return render_template("console/admin_history.html", connector=name, label=CONNECTORS[name].label,
                           versions=versions, diff=diff, older=older, newer=newer,
                           current=store.current(redis(), name), can_edit=has("admin"))


@bp.post("/mappings/<name>/rollback")
@require_role("admin")
def rollback(name: str) -> Any:
    connector_or_404(name)
    version, etag = request.form.get("version", ""), request.form.get("etag", "")
    if not version.isdigit():
        abort(400, description="choose a version from the history")
    try:
        done = admin.rollback(name, int(version), author=actor(), comment=request.form.get("comment", "").strip(),
                              if_match=etag or None, do_resync=False)
    except APIError as exc:
        if exc.status != 412:
            raise
        return redirect(url_for("console.history", name=name, stale=1))
    return redirect(url_for("console.saved", name=name, version=done["version"], previous=done["previous"]))

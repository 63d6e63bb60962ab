"""A mapping as a CRM admin reads it: the document as a table, what changed between two versions,
and, for one contact, what the vendor holds now against what it would hold after a push.

Plain data in, plain data out (no Flask, no Redis): the admin API, the CLI and the console render
the same answers. Reading "now" is the one place that talks to a vendor, and it only reads.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests

from connectors import CONNECTORS, MARKETING, TRANSACTIONAL, ContactUpdate
from connectors.base import ContactView
from connectors.errors import VendorError

from hub.core.drift import same

CONDITION_TEXT = {
    "always": "always",
    "marketing_opt_in": "opted in to marketing",
    "converted": "converted (bought)",
    "registered": "registered",
    "referrer": "is a referrer",
    "friend": "is a referred friend",
}
KIND_TEXT = {MARKETING: "marketing (with consent)", TRANSACTIONAL: "transactional"}
UNKNOWN = "unknown"


# -- the document as a table ---------------------------------------------------------------------
def transform_text(rule: dict[str, Any]) -> str:
    """'decimal, 2 places', 'boolean as one_two', 'date (emarsys)', '' for none."""
    name = rule.get("transform") or ""
    options = []
    if "places" in rule:
        options.append(f"{rule['places']} places")
    if "as" in rule:
        options.append(f"as {rule['as']}")
    if "format" in rule:
        options.append(f"format {rule['format']}")
    return ", ".join([name] + options) if name else ""


def field_row(rule: dict[str, Any], names: dict[str, str] | None = None) -> dict[str, Any]:
    target = str(rule.get("target", ""))
    row = {"target": target, "label": (names or {}).get(target, ""), "source": rule.get("source"),
           "transform": transform_text(rule)}
    if "default" in rule:
        row["default"] = rule["default"]
    return row


def list_row(rule: dict[str, Any], names: dict[str, str] | None = None) -> dict[str, Any]:
    list_id = str(rule.get("id", ""))
    return {"id": list_id, "name": rule.get("name") or (names or {}).get(list_id, ""), "kind": rule.get("kind"),
            "when": rule.get("when"), "condition": f"{KIND_TEXT.get(str(rule.get('kind')), rule.get('kind'))}: "
                                                    f"{CONDITION_TEXT.get(str(rule.get('when')), rule.get('when'))}"}


def table(document: dict[str, Any], field_names: dict[str, str] | None = None,
          list_names: dict[str, str] | None = None) -> dict[str, Any]:
    """The mapping as rows: vendor field <- hub stat (transform), and lists with their conditions.
    `field_names` labels vendor ids (Emarsys "12001" -> its name) where the account lists them."""
    identity = document.get("identity") or {}
    return {"connector": document.get("connector"), "description": document.get("description", ""),
            "identity": field_row({"target": identity.get("field"), **identity}, field_names),
            "fields": [field_row(r, field_names) for r in document.get("fields") or []],
            "lists": [list_row(r, list_names) for r in document.get("lists") or []],
            "consent": document.get("consent", True)}


def table_text(rows: dict[str, Any]) -> list[str]:
    """The table as lines, for the CLI: 'referral_turnover  <-  turnover_amount  (decimal, 2 places)'."""
    lines = [f"identity  {rows['identity']['target']}  <-  {rows['identity']['source']}"]
    for row in rows["fields"]:
        label = f" [{row['label']}]" if row["label"] else ""
        lines.append(f"{row['target']}{label}  <-  {row['source']}" + (f"  ({row['transform']})" if row["transform"] else ""))
    for row in rows["lists"]:
        lines.append(f"list {row['id']}" + (f" [{row['name']}]" if row["name"] else "") + f"  when {row['condition']}")
    lines.append(f"consent: {'sent with marketing lists' if rows['consent'] else 'not sent'}")
    return lines


# -- between two versions ------------------------------------------------------------------------
def rule_key(rule: dict[str, Any]) -> tuple[Any, ...]:
    """What a field rule does apart from its target: a rename keeps it."""
    return tuple(sorted((k, str(v)) for k, v in rule.items() if k != "target"))


def version_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Field and list rows that were added, removed, renamed or changed, with before and after."""
    before = {str(r.get("target")): r for r in old.get("fields") or [] if isinstance(r, dict)}
    after = {str(r.get("target")): r for r in new.get("fields") or [] if isinstance(r, dict)}
    removed = [t for t in before if t not in after]
    added = [t for t in after if t not in before]
    fields: list[dict[str, Any]] = []
    for target in list(removed):
        twin = next((t for t in added if rule_key(after[t]) == rule_key(before[target])), None)
        if twin is not None:
            fields.append({"change": "renamed", "before": field_row(before[target]), "after": field_row(after[twin])})
            removed.remove(target)
            added.remove(twin)
    fields += [{"change": "removed", "before": field_row(before[t]), "after": None} for t in removed]
    fields += [{"change": "added", "before": None, "after": field_row(after[t])} for t in added]
    fields += [{"change": "changed", "before": field_row(before[t]), "after": field_row(after[t])}
               for t in before if t in after and before[t] != after[t]]
    lists_before = {str(r.get("id")): r for r in old.get("lists") or [] if isinstance(r, dict)}
    lists_after = {str(r.get("id")): r for r in new.get("lists") or [] if isinstance(r, dict)}
    lists = [{"change": "removed", "before": list_row(lists_before[i]), "after": None}
             for i in lists_before if i not in lists_after]
    lists += [{"change": "added", "before": None, "after": list_row(lists_after[i])}
              for i in lists_after if i not in lists_before]
    lists += [{"change": "changed", "before": list_row(lists_before[i]), "after": list_row(lists_after[i])}
              for i in lists_before if i in lists_after and lists_before[i] != lists_after[i]]
    other = [{"name": name, "before": old.get(name), "after": new.get(name)}
             for name in ("identity", "description") if old.get(name) != new.get(name)]
    if old.get("consent", True) != new.get("consent", True):     # absent means true
        other.append({"name": "consent", "before": old.get("consent", True), "after": new.get("consent", True)})
    return {"fields": fields, "lists": lists, "other": other,
            "same": not (fields or lists or other)}


# -- what the vendor holds now --------------------------------------------------------------------
@dataclass
class Held:
    """What the vendor holds for one contact, and where that came from. `exists` None, a list
    set None or `consent_known` False mean the source cannot say ("unknown" on the page)."""

    source: str                                   # "sandbox", "vendor" or "unknown"
    exists: bool | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    lists: set[str] | None = None
    consent: bool | None = None
    consent_known: bool = False
    note: str = ""


def sandbox_root(connector: str, settings: dict[str, Any]) -> str | None:
    """The sandbox serves each vendor under /<vendor> on one host: a base URL ending so is it."""
    base = str(settings.get("base_url") or "").rstrip("/")
    return base[: -len(connector) - 1] if base.endswith(f"/{connector}") else None


def read_sandbox(root: str, connector: str, email: str, session: requests.Session | None = None) -> Held:
    """GET /_sandbox/<vendor>/contacts/<email>: the inspection view every sandbox vendor shares."""
    http = session or requests
    try:
        response = http.get(f"{root}/_sandbox/{connector}/contacts/{email}", timeout=10)
    except requests.RequestException as exc:
        return Held("unknown", note=f"the sandbox did not answer: {type(exc).__name__}")
    if response.status_code == 404:
        return Held("sandbox", exists=False, lists=set(), consent_known=True, note="the sandbox has no such contact")
    if response.status_code != 200:
        return Held("unknown", note=f"the sandbox answered {response.status_code}")
    body = response.json()
    if body.get("deleted"):
        return Held("sandbox", exists=False, lists=set(), consent_known=True, note="deleted at the sandbox")
    return Held("sandbox", exists=True, fields=dict(body.get("fields") or {}),
                lists={str(i) for i in body.get("lists") or []},
                consent=body.get("marketing_consent"), consent_known=True)


def read_vendor(client: Any, update: ContactUpdate) -> Held:
    """The vendor's own read API (the audit's `read`), where the connector has one."""
    if not type(client).readable():
        return Held("unknown", note=f"{type(client).label} has no read API the hub uses: what it holds now is unknown")
    try:
        view: ContactView | None = client.read([update]).get(update.email)
    except VendorError as exc:
        return Held("unknown", note=f"reading the contact failed: {exc.status or ''} {exc.message}".replace("  ", " "))
    if view is None:
        return Held("vendor", exists=False, lists=set(), consent_known=True, note="the vendor has no such contact")
    note = "" if view.lists is not None else f"{type(client).label}'s read does not return list membership"
    return Held("vendor", exists=True, fields=dict(view.fields), lists=None if view.lists is None else set(view.lists),
                consent=view.marketing_consent, consent_known=view.consent_read, note=note)


def held_now(connector: str, settings: dict[str, Any], client: Any, update: ContactUpdate) -> Held:
    root = sandbox_root(connector, settings)
    if root is not None:
        return read_sandbox(root, connector, update.email)
    return read_vendor(client, update)


# -- now against after ---------------------------------------------------------------------------
def cell(value: Any, known: bool = True) -> Any:
    return value if known else UNKNOWN


def profile_diff(row: dict[str, Any], update: ContactUpdate | None, held: Held,
                 mapping_lists: list[dict[str, Any]], list_names: dict[str, str] | None = None) -> dict[str, Any]:
    """Field by field, list by list and consent: the vendor's value now and after the push.

    `row` is the preview's report for the contact (its rendered fields), `update` what the push
    would send (None when nothing would be sent). A field the push does not write keeps its value;
    a list the push neither joins nor leaves keeps its membership; consent changes only when the
    push grants or withdraws it, exactly as the connectors send it."""
    pushing = update is not None
    known = held.exists is not None
    rendered = row.get("fields") or {}
    fields = []
    for name in list(rendered) + sorted(n for n in held.fields if n not in rendered):
        before = held.fields.get(name) if known else UNKNOWN
        after = rendered[name] if pushing and name in rendered else before
        changed = UNKNOWN if not known and pushing and name in rendered else \
            (name in rendered and pushing and not same(after, before))
        fields.append({"field": name, "now": before, "after": after, "changed": changed,
                       "mapped": name in rendered})
    joins = set(update.joins()) if update else set()
    leaves = set(update.dropped_lists()) if update else set()
    if update is not None and update.consent_withdrawn:
        leaves |= set(update.previous_lists or {}) & set(i for i, k in (update.previous_lists or {}).items() if k == MARKETING)
    lists = []
    for rule in mapping_lists:
        list_id = str(rule["id"])
        now = (list_id in held.lists) if held.lists is not None else UNKNOWN
        after = True if list_id in joins else False if list_id in leaves else now
        lists.append({"id": list_id, "name": rule.get("name") or (list_names or {}).get(list_id, ""),
                      "kind": rule.get("kind"), "condition": CONDITION_TEXT.get(rule.get("when", ""), rule.get("when")),
                      "belongs": list_id in (row.get("lists") or {}), "now": now, "after": after,
                      "changed": UNKNOWN if now == UNKNOWN and after == UNKNOWN and list_id in joins | leaves
                      else now != after})
    consent_now = held.consent if held.consent_known else UNKNOWN
    consent_after = consent_now
    if update is not None and (update.consent_granted or update.consent_withdrawn):
        consent_after = update.marketing_consent
    return {"email": row["email"], "status": row["status"], "message": row.get("message", ""),
            "source": held.source, "exists": held.exists, "note": held.note, "fields": fields, "lists": lists,
            "consent": {"hub": row.get("marketing_consent"), "now": consent_now, "after": consent_after,
                        "changed": consent_now != consent_after}}


def vendor_label(connector: str) -> str:
    return CONNECTORS[connector].label

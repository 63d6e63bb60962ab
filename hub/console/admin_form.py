"""The mapping editor's form: a mapping document as rows of form fields and back, and each
validation error placed next to the row and input it names. Plain data (no Flask)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

RULE_OPTIONS = ("places", "format", "as")
BLANK_FIELDS = 1          # empty rows offered for adding a field
BLANK_LISTS = 1
PATH = re.compile(r"^(fields|lists)\.(\d+)(?:\.(\w+))?")


@dataclass
class Draft:
    """The editor's state: the document the form describes, and which form row each document
    entry came from (removed and blank rows are skipped, so the indices differ)."""

    document: dict[str, Any]
    field_rows: list[int] = field(default_factory=list)
    list_rows: list[int] = field(default_factory=list)


def text(value: Any) -> str:
    """A default as the form shows it: strings as they are, anything else as JSON."""
    if value is None:
        return "null"
    return value if isinstance(value, str) else json.dumps(value)


def parsed_default(raw: str) -> Any:
    """The default's input back: a JSON number, true/false or null, else the text itself."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return raw if isinstance(value, (str, list, dict)) else value


def rows_of(document: dict[str, Any]) -> dict[str, Any]:
    """The form's rows for a document, with blank rows to add a field or a list."""
    fields = [{"target": str(r.get("target", "")), "source": r.get("source", ""), "transform": r.get("transform", ""),
               "places": "" if r.get("places") is None else str(r["places"]), "format": r.get("format", ""),
               "as": r.get("as", ""), "default": text(r["default"]) if "default" in r else "", "new": False}
              for r in document.get("fields") or []]
    fields += [{"target": "", "source": "", "transform": "", "places": "", "format": "", "as": "", "default": "",
                "new": True} for _ in range(BLANK_FIELDS)]
    lists = [{"id": str(r.get("id", "")), "kind": r.get("kind", ""), "when": r.get("when", ""),
              "name": r.get("name", ""), "new": False} for r in document.get("lists") or []]
    lists += [{"id": "", "kind": "", "when": "", "name": "", "new": True} for _ in range(BLANK_LISTS)]
    identity = document.get("identity") or {}
    return {"fields": fields, "lists": lists, "identity": {"field": identity.get("field", ""),
                                                          "source": identity.get("source", "")},
            "description": document.get("description", ""), "consent": document.get("consent", True)}


def count(form: Mapping[str, str], name: str) -> int:
    try:
        return max(0, min(int(form.get(name, "0")), 500))
    except ValueError:
        return 0


def draft_of(form: Mapping[str, str], connector: str) -> Draft:
    """The document a submitted form describes. Blank rows and rows ticked "remove" are left out;
    everything else goes in as typed, so the schema names what is wrong."""
    document: dict[str, Any] = {"connector": connector,
                                "identity": {"field": form.get("identity-field", "").strip(),
                                             "source": form.get("identity-source", "").strip()}}
    description = form.get("description", "").strip()
    if description:
        document["description"] = description
    draft = Draft(document)
    rules = []
    for i in range(count(form, "field-count")):
        get = lambda name: form.get(f"field-{i}-{name}", "").strip()  # noqa: E731
        if form.get(f"field-{i}-remove") or not (get("target") or get("source")):
            continue
        rule: dict[str, Any] = {"target": get("target"), "source": get("source")}
        if get("transform"):
            rule["transform"] = get("transform")
        if get("places"):
            rule["places"] = int(get("places")) if get("places").isdigit() else get("places")
        for option in ("format", "as"):
            if get(option):
                rule[option] = get(option)
        if f"field-{i}-default" in form and form[f"field-{i}-default"] != "":
            rule["default"] = parsed_default(form[f"field-{i}-default"])
        rules.append(rule)
        draft.field_rows.append(i)
    document["fields"] = rules
    lists = []
    for i in range(count(form, "list-count")):
        get = lambda name: form.get(f"list-{i}-{name}", "").strip()  # noqa: E731
        if form.get(f"list-{i}-remove") or not get("id"):
            continue
        entry = {"id": get("id"), "kind": get("kind"), "when": get("when")}
        if get("name"):
            entry["name"] = get("name")
        lists.append(entry)
        draft.list_rows.append(i)
    document["lists"] = lists
    if form.get("consent") != "on":
        document["consent"] = False       # true is the default: left out, as the shipped documents do
    return draft


def placed(errors: list[dict[str, str]], draft: Draft) -> dict[str, list[str]]:
    """Errors keyed by the form input they belong next to ("field-3-target", "list-0-id",
    "identity-field"); anything else under "form"."""
    out: dict[str, list[str]] = {}
    for error in errors:
        path = error.get("path") or "$"
        match = PATH.match(path)
        key = "form"
        if match:
            section, index, name = match.group(1), int(match.group(2)), match.group(3) or ""
            rows = draft.field_rows if section == "fields" else draft.list_rows
            if index < len(rows):
                prefix = "field" if section == "fields" else "list"
                key = f"{prefix}-{rows[index]}-{name}" if name else f"{prefix}-{rows[index]}"
        elif path.startswith("identity."):
            key = "identity-" + path.split(".", 1)[1]
        out.setdefault(key, []).append(error["message"])
    return out


def row_errors(errors: dict[str, list[str]], prefix: str) -> list[str]:
    """Every error for one row (its inputs and the row itself), for the row's error cell."""
    return [m for key, messages in errors.items() if key == prefix or key.startswith(prefix + "-") for m in messages]

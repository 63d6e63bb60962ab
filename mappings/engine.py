"""Render a contact's state through a mapping: pure data in, pure data out, nothing sent."""
from __future__ import annotations

from typing import Any

from .transforms import TRANSFORMS, TransformError

CONDITIONS = {
    "always": lambda s: True,
    "marketing_opt_in": lambda s: s.get("marketing_opt_in") is True,
    "converted": lambda s: bool(s.get("converted_at")),
    "registered": lambda s: bool(s.get("registered_at")),
    "referrer": lambda s: bool(s.get("is_referrer")),
    "friend": lambda s: bool(s.get("is_friend")),
}


def apply(rule: dict[str, Any], state: dict[str, Any]) -> tuple[bool, Any]:
    """(present, value) for one field rule; absent sources without a default are left out."""
    value = state.get(rule["source"])
    if value is None or value == "":
        if "default" not in rule:
            # A source the state carries as None is a value the hub forgot (a friend's
            # referred_by after their referrer's erasure): render an explicit null so the
            # vendor's old copy is overwritten. A source the state lacks is simply not sent.
            return (rule["source"] in state and value is None), None
        value = rule["default"]
        if value is None:
            return True, None
    name = rule.get("transform")
    if name:
        value = TRANSFORMS[name](value, {k: v for k, v in rule.items() if k not in ("as_",)} | (
            {"as": rule["as_"]} if "as_" in rule else {}))
    return True, value


def render(mapping: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """{"identity", "fields", "lists", "marketing_consent", "errors"} for one contact."""
    fields: dict[str, Any] = {}
    errors: list[str] = []
    for rule in mapping["fields"]:
        try:
            present, value = apply(rule, state)
        except TransformError as exc:
            errors.append(f"{rule['target']}: {exc}")
            continue
        if present:
            fields[rule["target"]] = value
    identity_rule = mapping["identity"]
    _, key = apply({**identity_rule, "default": None}, state)
    lists = {rule["id"]: rule["kind"] for rule in mapping.get("lists", []) if CONDITIONS[rule["when"]](state)}
    consent = state.get("marketing_opt_in") if mapping.get("consent", True) else None
    return {"identity": {identity_rule["field"]: key}, "fields": fields, "lists": lists,
            "marketing_consent": consent if isinstance(consent, bool) else None, "errors": errors}

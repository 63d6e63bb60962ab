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


def transformed(rule: dict[str, Any], value: Any) -> Any:
    """The value through the rule's transform, if it names one."""
    name = rule.get("transform")
    if not name:
        return value
    # The transforms read their options from the rule itself; only a rule with `as` (loaded as
    # `as_`, a Python keyword) needs a copy under the name they read.
    return TRANSFORMS[name](value, rule if "as_" not in rule else (
        {k: v for k, v in rule.items() if k != "as_"} | {"as": rule["as_"]}))


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
    return True, transformed(rule, value)


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
    # The identity has no default: an empty source renders None.
    key = state.get(identity_rule["source"])
    key = None if key is None or key == "" else transformed(identity_rule, key)
    lists = {rule["id"]: rule["kind"] for rule in mapping.get("lists", []) if CONDITIONS[rule["when"]](state)}
    consent = state.get("marketing_opt_in") if mapping.get("consent", True) else None
    return {"identity": {identity_rule["field"]: key}, "fields": fields, "lists": lists,
            "marketing_consent": consent if isinstance(consent, bool) else None, "errors": errors}

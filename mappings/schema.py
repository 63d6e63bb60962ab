"""The mapping document's schema: errors name the path in the document and say what is wrong."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, validate, validates_schema
from marshmallow import fields as f

from .transforms import BOOLEAN_STYLES, DATE_FORMATS, TRANSFORMS

# The contact-state paths a mapping may read (hub/core/ledger.py builds them).
SOURCES = (
    "email", "first_name", "last_name", "customer_id", "locale", "contact_id",
    "referrer_id", "share_url", "invites_sent", "friends_registered", "friends_converted",
    "turnover_amount", "turnover_currency", "rewards_earned", "last_activity_at", "enrolled_at",
    "referred_by", "promo_code", "marketing_opt_in", "registered_at", "converted_at",
    "first_order_id", "first_order_total", "first_order_currency", "is_referrer", "is_friend",
)
CONDITIONS = ("always", "marketing_opt_in", "converted", "registered", "referrer", "friend")
KINDS = ("marketing", "transactional")


class FieldRule(Schema):
    target = f.String(required=True, validate=validate.Length(min=1, max=255))
    source = f.String(required=True, validate=validate.OneOf(SOURCES, error="unknown source {input}; one of: {choices}"))
    transform = f.String(validate=validate.OneOf(tuple(TRANSFORMS), error="unknown transform {input}; one of: {choices}"))
    places = f.Integer(validate=validate.Range(min=0, max=6))
    format = f.String(validate=validate.OneOf(tuple(DATE_FORMATS)))
    default = f.Raw(allow_none=True)
    as_ = f.String(data_key="as")

    @validates_schema
    def options_fit_transform(self, data: dict[str, Any], **kwargs: Any) -> None:
        transform = data.get("transform")
        if "places" in data and transform != "decimal":
            raise ValidationError("places only applies to the decimal transform", "places")
        if "format" in data and transform != "date":
            raise ValidationError("format only applies to the date transform", "format")
        if "as_" in data:
            allowed = {"boolean": tuple(BOOLEAN_STYLES), "decimal": ("number", "string")}.get(transform or "")
            if not allowed or data["as_"] not in allowed:
                raise ValidationError(f"as must be one of {', '.join(allowed or ('(none for this transform)',))}", "as")


class ListRule(Schema):
    id = f.String(required=True, validate=validate.Length(min=1, max=255))
    kind = f.String(required=True, validate=validate.OneOf(KINDS))
    when = f.String(required=True, validate=validate.OneOf(CONDITIONS))
    name = f.String()


class Identity(Schema):
    field = f.String(required=True, validate=validate.Length(min=1))
    source = f.String(required=True, validate=validate.OneOf(SOURCES))
    transform = f.String(validate=validate.OneOf(tuple(TRANSFORMS)))


class MappingSchema(Schema):
    connector = f.String(required=True)
    identity = f.Nested(Identity, required=True)
    # "fields" would shadow Schema.fields, so the attribute has another name.
    field_rules = f.List(f.Nested(FieldRule), required=True, data_key="fields", attribute="fields")
    lists = f.List(f.Nested(ListRule), load_default=list)
    consent = f.Boolean(load_default=True)
    description = f.String()

    @validates_schema
    def unique_targets(self, data: dict[str, Any], **kwargs: Any) -> None:
        seen: set[str] = set()
        for index, rule in enumerate(data.get("fields", [])):
            if rule["target"] in seen:
                raise ValidationError({str(index): {"target": [f"{rule['target']} is mapped twice"]}}, "fields")
            seen.add(rule["target"])
        ids = [rule["id"] for rule in data.get("lists", [])]
        for index, list_id in enumerate(ids):
            if ids.index(list_id) != index:
                raise ValidationError({str(index): {"id": [f"list {list_id} appears twice"]}}, "lists")


def flatten(messages: Any, path: str = "") -> list[dict[str, str]]:
    """marshmallow's nested messages as [{"path": "fields.2.transform", "message": ...}]."""
    if isinstance(messages, dict):
        out: list[dict[str, str]] = []
        for key, value in messages.items():
            sub = f"{path}.{key}" if path and key != "_schema" else (path or str(key))
            out += flatten(value, sub if key != "_schema" else path)
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [{"path": path or "$", "message": m} for m in messages]
    if isinstance(messages, list):
        return [e for m in messages for e in flatten(m, path)]
    return [{"path": path or "$", "message": str(messages)}]


def validate_mapping(document: Any) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    """(the loaded mapping, []) or (None, errors naming the path and the reason)."""
    if not isinstance(document, dict):
        return None, [{"path": "$", "message": "a mapping is a JSON object"}]
    try:
        return MappingSchema().load(document), []
    except ValidationError as exc:
        return None, flatten(exc.messages)

"""Feed mappings: which CSV column feeds which part of the canonical event.

A feed mapping is data, validated like a field mapping and versioned the same way (every save a
new version in Redis, If-Match on the ETag, version 0 is what the feeds file names). Two presets
ship: `splio-contacts` (Splio's published contact-file layout) and `referral-activity` (ours).

A row's event id is derived from the feed's name, the event type and the row's natural key
(`key`: unique id, referrer, friend, order id), so the same row imported twice, from the same file
or a later one, is a duplicate the ledger drops. `key_values: true` adds the mapped values to the
key: for contact files, where a later file carrying a changed name must apply, while the same row
again stays a duplicate.
"""
from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from hub.core.feeds.errors import FeedConfigError
from hub.core.schemas import TYPES, flatten

PARTIES = {"referrer": ("email", "first_name", "last_name", "customer_id", "locale", "referrer_id", "share_url"),
           "friend": ("email", "first_name", "last_name", "customer_id", "locale", "marketing_opt_in", "promo_code"),
           "contact": ("email", "first_name", "last_name", "customer_id", "locale", "marketing_opt_in"),
           "order": ("id", "total", "currency", "coupon_code"),
           "reward": ("recipient", "kind", "value", "currency", "code")}
# `person.*` is the party the row's event type is about: the referrer of referrer.enrolled and
# referral.invited, the contact of contact.updated, the friend otherwise.
PERSON = {"referrer.enrolled": "referrer", "referral.invited": "referrer", "contact.updated": "contact",
          "contact.erased": "contact"}
TARGETS = (("occurred_at", "programme")
           + tuple(f"{p}.{f}" for p, names in PARTIES.items() for f in names)
           + tuple(f"person.{f}" for f in PARTIES["contact"] + ("referrer_id", "share_url", "promo_code")))
BOOLEAN = {"true": True, "1": True, "yes": True, "y": True, "false": False, "0": False, "no": False, "n": False}

PRESETS: dict[str, dict[str, Any]] = {
    # Splio's referral set-up starts from a contact file with four mandatory columns (unique ID,
    # email, last name, first name) plus custom fields, uploaded by batch over SFTP
    # (support.splio.com/hc/it/articles/360021931980, "The data flow between Splio and the
    # customer"). The header spelling follows Splio's contacts-file columns (email, lastname,
    # firstname, language: dev-scp.splio.com/docs/datahub-contacts); `unique_id` is the referral
    # guide's own term; referral_* are the custom fields of the hub's Splio mapping. A row with a
    # referrer id enrols a referrer.
    "splio-contacts": {
        "description": "Splio contact file: unique ID, email, last name, first name, custom columns",
        "layout": "published",
        "type": {"column": "referral_referrer_id", "present": "referrer.enrolled", "absent": "contact.updated"},
        "columns": [
            {"column": "unique_id", "target": "person.customer_id", "required": True},
            {"column": "email", "target": "person.email", "required": True},
            {"column": "lastname", "target": "person.last_name", "required": True},
            {"column": "firstname", "target": "person.first_name", "required": True},
            {"column": "language", "target": "person.locale"},
            {"column": "referral_referrer_id", "target": "person.referrer_id"},
            {"column": "referral_share_url", "target": "person.share_url"},
        ],
        "key": ["unique_id"],
        "key_values": True,
    },
    # The hub's own layout for referral activity exported from a back office.
    "referral-activity": {
        "description": "Referral activity: referrer, friend, event type, order id, total, currency, date",
        "layout": "ours",
        "type": {"column": "event_type", "values": {
            "enrolled": "referrer.enrolled", "invited": "referral.invited", "registered": "friend.registered",
            "converted": "friend.converted", **{t: t for t in TYPES if t != "contact.erased"}}},
        "columns": [
            {"column": "referrer", "target": "referrer.email", "required": True},
            {"column": "friend", "target": "friend.email", "required": True},
            {"column": "event_type", "target": None, "required": True},
            {"column": "order_id", "target": "order.id", "required": True},
            {"column": "total", "target": "order.total", "required": True},
            {"column": "currency", "target": "order.currency", "required": True},
            {"column": "date", "target": "occurred_at", "required": True},
            {"column": "friend_opt_in", "target": "friend.marketing_opt_in"},
            {"column": "promo_code", "target": "friend.promo_code"},
        ],
        "key": ["referrer", "friend", "order_id"],
        "key_values": False,
    },
}


class Column(Schema):
    column = fields.String(required=True, validate=validate.Length(min=1, max=128))
    target = fields.String(allow_none=True, validate=validate.OneOf(TARGETS, error="unknown target {input}"))
    required = fields.Boolean(load_default=False)


class TypeRule(Schema):
    fixed = fields.String(validate=validate.OneOf(TYPES))
    column = fields.String()
    values = fields.Dict(keys=fields.String(), values=fields.String(validate=validate.OneOf(TYPES)))
    present = fields.String(validate=validate.OneOf(TYPES))
    absent = fields.String(validate=validate.OneOf(TYPES))

    @validates_schema
    def one_way(self, data: dict[str, Any], **kwargs: Any) -> None:
        ways = [bool(data.get("fixed")), bool(data.get("values")), bool(data.get("present") and data.get("absent"))]
        if sum(ways) != 1:
            raise ValidationError("give fixed, or column with values, or column with present and absent")
        if not data.get("fixed") and not data.get("column"):
            raise ValidationError("column is required", "column")


class FeedMapping(Schema):
    description = fields.String()
    layout = fields.String(validate=validate.OneOf(("published", "ours")))
    type = fields.Nested(TypeRule, required=True)
    columns = fields.List(fields.Nested(Column), required=True, validate=validate.Length(min=1))
    key = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    key_values = fields.Boolean(load_default=False)
    delimiter = fields.String(load_default=",", validate=validate.Length(equal=1))
    encoding = fields.String(load_default="utf-8", validate=validate.OneOf(("utf-8", "utf-8-sig", "latin-1", "cp1252")))

    @validates_schema
    def consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        names = [c["column"] for c in data.get("columns", [])]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValidationError(f"{', '.join(twice)} listed twice", "columns")
        for name in data.get("key", []):
            if name not in names:
                raise ValidationError(f"{name} is not one of the columns", "key")
        column = (data.get("type") or {}).get("column")
        if column and column not in names:
            raise ValidationError(f"{column} is not one of the columns", "type.column")
        targets = [c["target"] for c in data.get("columns", []) if c.get("target")]
        if not any(t.endswith(".email") for t in targets):
            raise ValidationError("no column maps to an email: a row must name a person", "columns")


def validate_feed_mapping(document: Any) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    """(loaded mapping, []) or (None, [{"path", "message"}])."""
    try:
        return FeedMapping().load(document), []
    except ValidationError as exc:
        return None, [{"path": path, "message": msg} for path, msg in flatten(exc.messages)]


def resolve(mapping: Any, where: str = "mapping") -> dict[str, Any]:
    """A preset name or a document, as a validated mapping; ValueError naming what is wrong."""
    if isinstance(mapping, str):
        if mapping not in PRESETS:
            raise FeedConfigError(f"{where}: no preset named {mapping!r}; presets: {', '.join(PRESETS)}")
        mapping = PRESETS[mapping]
    loaded, errors = validate_feed_mapping(copy.deepcopy(mapping))
    if loaded is None:
        raise FeedConfigError("; ".join(f"{where}.{e['path']}: {e['message']}" for e in errors))
    return loaded


class Row(Exception):
    """A row that cannot become an event: (column, reason)."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}")
        self.column, self.reason = column, reason


def event_type(mapping: dict[str, Any], row: dict[str, str]) -> str:
    rule = mapping["type"]
    if rule.get("fixed"):
        return str(rule["fixed"])
    value = (row.get(rule["column"]) or "").strip()
    if rule.get("values"):
        kind = rule["values"].get(value) or rule["values"].get(value.lower())
        if not kind:
            raise Row(rule["column"], f"unknown event type {value[:40]!r}; one of: {', '.join(sorted(rule['values']))}")
        return str(kind)
    return str(rule["present"] if value else rule["absent"])


def cell(target: str, value: str) -> Any:
    """A CSV cell as the event field wants it: booleans read, everything else as text."""
    if target.endswith("marketing_opt_in"):
        return BOOLEAN.get(value.lower(), value)
    return value


def build(mapping: dict[str, Any], feed: str, row: dict[str, str], default_time: str) -> dict[str, Any]:
    """The canonical event for one CSV row (not yet validated: the ingest schema does that)."""
    kind = event_type(mapping, row)
    event: dict[str, Any] = {"type": kind, "occurred_at": default_time}
    person = PERSON.get(kind, "friend")
    for column in mapping["columns"]:
        target, value = column.get("target"), (row.get(column["column"]) or "").strip()
        if not target or not value:
            continue
        part, _, name = target.partition(".")
        if part == "person":
            part = person
            if name not in PARTIES[part]:
                continue        # a referrer's share_url means nothing on a contact.updated
        if not name:
            event[part] = value
        else:
            event.setdefault(part, {})[name] = cell(target, value)
    if kind in ("referrer.enrolled", "referral.invited", "contact.updated"):
        event.pop("order", None)
        if kind != "referral.invited":
            event.pop("friend", None)
    if kind == "friend.registered":
        event.pop("order", None)
    event["id"] = event_id(mapping, feed, kind, row, event)
    event["source"] = "feed"
    return event


def event_id(mapping: dict[str, Any], feed: str, kind: str, row: dict[str, str], event: dict[str, Any]) -> str:
    """feed name + event type + the row's natural key (+ its values for contact files)."""
    key = [(row.get(name) or "").strip().lower() for name in mapping["key"]]
    if mapping.get("key_values"):
        key.append(json.dumps({k: v for k, v in event.items() if k not in ("occurred_at",)}, sort_keys=True, default=str))
    text = "\x1f".join([feed, kind, *key])
    return "feed_" + hashlib.sha256(text.encode()).hexdigest()[:40]


def column_for(mapping: dict[str, Any], kind: str, path: str) -> str:
    """The CSV column behind a validation error's field path ("order.total" -> "total")."""
    person = PERSON.get(kind, "friend")
    for column in mapping["columns"]:
        target = column.get("target") or ""
        if target.startswith("person."):
            target = f"{person}.{target[7:]}"
        if target and (path == target or path.startswith(target + ".")):
            return str(column["column"])
    for column in mapping["columns"]:          # a missing part: name a column that feeds it
        target = column.get("target") or ""
        part = path.split(".")[0]
        if target.split(".")[0] in (part, "person") and target.endswith(".email"):
            return str(column["column"])
    return path

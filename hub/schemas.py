"""The canonical event, validated with marshmallow; every 422 names the index and field path."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate, validates_schema

TYPES = ("referrer.enrolled", "referral.invited", "friend.registered", "friend.converted",
         "reward.granted", "contact.updated", "contact.erased")
CURRENCY = re.compile(r"^[A-Z]{3}$")


class Email(fields.Email):
    """An email, trimmed and lower-cased: the hub's identity for a person."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str):
            value = value.strip().lower()
        return super()._deserialize(value, attr, data, **kwargs)


class Money(fields.String):
    """A decimal amount as a string ("59.90"); numbers are accepted and read exactly."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValidationError("must be a decimal amount such as \"59.90\"")
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise ValidationError("must be a decimal amount such as \"59.90\"") from exc
        if not amount.is_finite() or amount < 0:
            raise ValidationError("must be a non-negative amount")
        if amount.as_tuple().exponent < -4:  # type: ignore[operator]
            raise ValidationError("at most 4 decimal places")
        return amount


class Timestamp(fields.DateTime):
    """ISO 8601; naive times are taken as UTC; stored as YYYY-MM-DDTHH:MM:SS.ffffffZ."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str) and value.endswith("Z"):
            value = value[:-1] + "+00:00"
        moment: datetime = super()._deserialize(value, attr, data, **kwargs)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def text(max_len: int = 255, **kw: Any) -> fields.String:
    return fields.String(validate=validate.Length(max=max_len), allow_none=True, **kw)


class Party(Schema):
    class Meta:
        unknown = EXCLUDE

    email = Email(required=True)
    first_name = text()
    last_name = text()
    customer_id = text()
    locale = text(35)


class Referrer(Party):
    referrer_id = text()
    share_url = fields.Url(allow_none=True, require_tld=False)


class Friend(Party):
    marketing_opt_in = fields.Boolean(allow_none=True)
    promo_code = text(128)


class Contact(Party):
    marketing_opt_in = fields.Boolean(allow_none=True)


class Order(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    total = Money(required=True)
    currency = fields.String(required=True, validate=validate.Regexp(CURRENCY, error="must be an ISO 4217 code such as GBP"))
    coupon_code = text(128)


class Reward(Schema):
    class Meta:
        unknown = EXCLUDE

    recipient = fields.String(required=True, validate=validate.OneOf(("referrer", "friend")))
    kind = text(64)
    value = Money(allow_none=True)
    currency = fields.String(allow_none=True, validate=validate.Regexp(CURRENCY, error="must be an ISO 4217 code such as GBP"))
    code = text(128)


NEEDS = {
    "referrer.enrolled": ("referrer",),
    "referral.invited": ("referrer",),
    "friend.registered": ("friend",),
    # Some platforms report a conversion without the order (SaaSquatch): the friend counts as
    # converted and the turnover is unchanged.
    "friend.converted": ("friend",),
    "reward.granted": ("reward",),
    "contact.updated": ("contact",),
    "contact.erased": ("contact",),
}


class Event(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    type = fields.String(required=True, validate=validate.OneOf(TYPES, error="must be one of: {choices}"))
    occurred_at = Timestamp(required=True)
    programme = text(128)
    source = text(64)
    referrer = fields.Nested(Referrer, allow_none=True)
    friend = fields.Nested(Friend, allow_none=True)
    order = fields.Nested(Order, allow_none=True)
    reward = fields.Nested(Reward, allow_none=True)
    contact = fields.Nested(Contact, allow_none=True)

    @validates_schema
    def parts_for_type(self, data: dict[str, Any], **kwargs: Any) -> None:
        for part in NEEDS.get(data.get("type", ""), ()):
            if not data.get(part):
                raise ValidationError(f"required for {data['type']} events", part)
        reward = data.get("reward")
        if data.get("type") == "reward.granted" and reward:
            holder = reward["recipient"]
            if not data.get(holder):
                raise ValidationError(f"required when reward.recipient is {holder}", holder)
        if reward and reward.get("value") is not None and not reward.get("currency"):
            raise ValidationError("required when reward.value is given", "reward.currency")

    @post_load
    def strip_nones(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {k: ({kk: vv for kk, vv in v.items() if vv is not None} if isinstance(v, dict) else v)
                for k, v in data.items() if v is not None}


def flatten(messages: Any, prefix: str = "") -> list[tuple[str, str]]:
    """marshmallow's nested messages as (dotted path, message) pairs."""
    if isinstance(messages, dict):
        out: list[tuple[str, str]] = []
        for key, value in messages.items():
            out += flatten(value, prefix if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(messages, list):
        return [pair for m in messages for pair in (flatten(m, prefix) if not isinstance(m, str) else [(prefix or "$", m)])]
    return [(prefix or "$", str(messages))]


EVENT = Event()


def load_events(items: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(events, errors) where each error is {"index", "field", "message"}."""
    events, errors = [], []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append({"index": index, "field": "$", "message": "an event is a JSON object"})
            continue
        try:
            events.append(EVENT.load(item))
        except ValidationError as exc:
            errors += [{"index": index, "field": path, "message": msg} for path, msg in flatten(exc.messages)]
    return events, errors

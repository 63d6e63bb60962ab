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
# One amount (an order total, a reward value) is at most 10^11 major units: in the ledger's
# ten-thousandths that is 10^15, below 2^53, so the Lua step reads it exactly, and about 92,000
# maximal amounts still fit one 64-bit running total (the step refuses a batch that would not).
MAX_AMOUNT = Decimal(10) ** 11
# An address is at most 254 characters (RFC 5321, 4.5.3.1.3: a 256-octet path less its brackets).
MAX_EMAIL = 254
# Event times are stored as fixed-width UTC strings compared as text: years 1970 to 9999 only.
EARLIEST_YEAR = 1970
# No request body the hub reads nests deeper than this (an event is 3 levels, a mapping about 6).
MAX_DEPTH = 32
SURROGATE = re.compile("[\ud800-\udfff]")
RANGE = f"must be between {EARLIEST_YEAR}-01-01 and 9999-12-31 (UTC)"


def json_problem(value: Any, max_depth: int = MAX_DEPTH, strings: bool = True) -> tuple[str, str] | None:
    """(dotted path, reason) of the first thing in parsed JSON the hub cannot store: nesting
    beyond `max_depth`, or (with `strings`) a lone UTF-16 surrogate: JSON allows "\\ud800",
    UTF-8, Redis and Lua's cjson do not. None when the value is clean. Iterative, so depth cannot
    exhaust the stack; without `strings` it only looks at containers."""
    if type(value) not in (dict, list):
        lone = strings and type(value) is str and not value.isascii() and SURROGATE.search(value)
        return ("$", "holds a lone UTF-16 surrogate such as \\ud800, which is not text") if lone else None
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if type(item) is dict else item
        if depth >= max_depth:
            return path_to(value, item), f"nests deeper than {max_depth} levels"
        if strings and type(item) is dict and any(not k.isascii() and SURROGATE.search(k) for k in item):
            return path_to(value, item), "has a key holding a lone UTF-16 surrogate such as \\ud800, which is not text"
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif strings and kind is str and not child.isascii() and SURROGATE.search(child):
                return path_to(value, child), "holds a lone UTF-16 surrogate such as \\ud800, which is not text"
    return None


def path_to(root: Any, target: Any) -> str:
    """The dotted path of `target` (found by identity) inside `root`; only run to word an error."""
    stack: list[tuple[Any, str]] = [(root, "")]
    while stack:
        item, path = stack.pop()
        if item is target:
            return path or "$"
        pairs = item.items() if type(item) is dict else enumerate(item) if type(item) is list else ()
        for key, child in pairs:
            if child is target:
                return f"{path}.{key}" if path else str(key)
            if type(child) in (dict, list):
                stack.append((child, f"{path}.{key}" if path else str(key)))
    return "$"


def utc_stamp(moment: datetime) -> str:
    """The stored form YYYY-MM-DDTHH:MM:SS.ffffffZ; naive times are UTC; out of range refused."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        moment = moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValidationError(RANGE) from None
    if moment.year < EARLIEST_YEAR:
        raise ValidationError(RANGE)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dotted_domain(value: str) -> None:
    """A deliverable address has a domain with a dot: `name@localhost` is refused."""
    if "." not in value.rpartition("@")[2]:
        try:
            validate.Email()(value)
        except ValidationError:
            return  # already refused as not an address at all
        raise ValidationError("the domain needs a dot, as in name@example.com")


class Email(fields.Email):
    """An email, trimmed and lower-cased: the hub's identity for a person."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators += [validate.Length(max=MAX_EMAIL, error="at most {max} characters (RFC 5321)"),
                            dotted_domain]

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str):
            value = value.strip().lower()
        return super()._deserialize(value, attr, data, **kwargs)


class Money(fields.String):
    """A decimal amount as a string ("59.90"); numbers are accepted and read exactly."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Decimal:  # type: ignore[override]
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
        if amount > MAX_AMOUNT:
            raise ValidationError(f"at most {MAX_AMOUNT:,} (the hub's cap on one amount)")
        return amount


class Timestamp(fields.DateTime):
    """ISO 8601; naive times are taken as UTC; stored as YYYY-MM-DDTHH:MM:SS.ffffffZ."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:  # type: ignore[override]
        if isinstance(value, str) and value.endswith("Z"):
            value = value[:-1] + "+00:00"
        moment: datetime = super()._deserialize(value, attr, data, **kwargs)
        return utc_stamp(moment)


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


# -- the fast path -----------------------------------------------------------------------------
# marshmallow costs ~190 us an event, most of the ingest budget. Well-formed events (plain JSON
# types, nothing unusual) are checked here with the same rules and the same validators, giving
# the same result; anything the fast path is unsure of goes to marshmallow, which then decides
# and words the 422 exactly as before. tests/hub/test_schemas_fast_path.py holds them equal.


class _Unsure(Exception):
    """Not a plainly valid event: let marshmallow decide."""


_EMAIL = validate.Email()
_URL = validate.URL(require_tld=False)
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3}|\.\d{6})?(Z|[+-]\d{2}:\d{2})?$")
_TEXT = {"first_name": 255, "last_name": 255, "customer_id": 255, "locale": 35, "referrer_id": 255,
         "promo_code": 128, "coupon_code": 128, "kind": 64, "code": 128, "programme": 128, "source": 64}
_PARTY = ("email", "first_name", "last_name", "customer_id", "locale")
_PARTS = {"referrer": _PARTY + ("referrer_id", "share_url"),
          "friend": _PARTY + ("marketing_opt_in", "promo_code"),
          "contact": _PARTY + ("marketing_opt_in",)}


def _text(value: Any, limit: int) -> Any:
    if value is None or (type(value) is str and len(value) <= limit):
        return value
    raise _Unsure


def _money(value: Any) -> Decimal:
    if type(value) is not str:
        raise _Unsure
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        raise _Unsure from None
    if not amount.is_finite() or amount < 0 or amount.as_tuple().exponent < -4 or amount > MAX_AMOUNT:  # type: ignore[operator]
        raise _Unsure
    return amount


def _currency(value: Any) -> str:
    if type(value) is str and CURRENCY.match(value):
        return value
    raise _Unsure


def _timestamp(value: Any) -> str:
    if type(value) is not str or not _ISO.match(value):
        raise _Unsure
    try:  # 2026-02-30 matches the pattern but is no date: marshmallow words the refusal
        return utc_stamp(datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value))
    except (ValueError, ValidationError):
        raise _Unsure from None


def _party(kind: str, data: Any) -> dict[str, Any] | None:
    if data is None:
        return None
    if type(data) is not dict or type(data.get("email")) is not str:
        raise _Unsure
    out: dict[str, Any] = {}
    for name in _PARTS[kind]:
        if name not in data:
            continue
        value = data[name]
        if name == "email":
            value = value.strip().lower()
            if len(value) > MAX_EMAIL or "." not in value.rpartition("@")[2]:
                raise _Unsure
            try:
                _EMAIL(value)
            except ValidationError:
                raise _Unsure from None
        elif name == "share_url":
            if value is not None:
                if type(value) is not str:
                    raise _Unsure
                try:
                    _URL(value)
                except ValidationError:
                    raise _Unsure from None
        elif name == "marketing_opt_in":
            if value is not None and type(value) is not bool:
                raise _Unsure
        else:
            value = _text(value, _TEXT[name])
        if value is not None:
            out[name] = value
    return out


def _order(data: Any) -> dict[str, Any] | None:
    if data is None:
        return None
    if type(data) is not dict or type(data.get("id")) is not str or not 1 <= len(data["id"]) <= 128:
        raise _Unsure
    out = {"id": data["id"], "total": _money(data.get("total")), "currency": _currency(data.get("currency"))}
    if data.get("coupon_code") is not None:
        out["coupon_code"] = _text(data["coupon_code"], 128)
    return out


def _reward(data: Any) -> dict[str, Any] | None:
    if data is None:
        return None
    if type(data) is not dict or data.get("recipient") not in ("referrer", "friend"):
        raise _Unsure
    out: dict[str, Any] = {"recipient": data["recipient"]}
    for name in ("kind", "code"):
        if data.get(name) is not None:
            out[name] = _text(data[name], _TEXT[name])
    if data.get("value") is not None:
        out["value"] = _money(data["value"])
    if data.get("currency") is not None:
        out["currency"] = _currency(data["currency"])
    if "value" in out and "currency" not in out:
        raise _Unsure
    return out


def fast_load(item: dict[str, Any]) -> dict[str, Any] | None:
    """The event as EVENT.load would return it, or None when marshmallow must decide."""
    try:
        event_id, kind = item.get("id"), item.get("type")
        if type(event_id) is not str or not 1 <= len(event_id) <= 128 or kind not in NEEDS:
            return None
        out: dict[str, Any] = {"id": event_id, "type": kind, "occurred_at": _timestamp(item.get("occurred_at"))}
        for name in ("programme", "source"):
            if item.get(name) is not None:
                out[name] = _text(item[name], _TEXT[name])
        for name in ("referrer", "friend", "contact"):
            if name in item:
                part = _party(name, item[name])
                if part is not None:
                    out[name] = part
        for name, loader in (("order", _order), ("reward", _reward)):
            if name in item:
                part = loader(item[name])
                if part is not None:
                    out[name] = part
    except _Unsure:
        return None
    for needed in NEEDS[kind]:
        if not out.get(needed):
            return None
    if kind == "reward.granted" and not out.get(out["reward"]["recipient"]):
        return None
    return out


def load_events(items: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(events, errors) where each error is {"index", "field", "message"}."""
    events, errors = [], []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append({"index": index, "field": "$", "message": "an event is a JSON object"})
            continue
        loaded = fast_load(item)
        if loaded is None:
            try:
                loaded = EVENT.load(item)
            except ValidationError as exc:
                errors += [{"index": index, "field": path, "message": msg} for path, msg in flatten(exc.messages)]
                continue
        # what reaches Redis and Lua is text: callers that parsed no JSON (feeds, the CLI) meet it here
        problem = json_problem(loaded)
        if problem:
            errors.append({"index": index, "field": problem[0], "message": problem[1]})
            continue
        events.append(loaded)
    return events, errors

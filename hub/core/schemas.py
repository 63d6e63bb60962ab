"""The canonical event, declared once as msgspec structs: they validate it (every 422 names the index,
the field path and the reason) and hub.http.openapi embeds the JSON Schema they emit."""
from __future__ import annotations

import functools
import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec
from marshmallow import ValidationError, fields, validate
from msgspec import Meta, Struct

EventType = Literal["referrer.enrolled", "referral.invited", "friend.registered", "friend.converted",
                    "reward.granted", "contact.updated", "contact.erased"]
TYPES: tuple[str, ...] = get_args(EventType)
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


# -- the values with rules of their own (msgspec hands them to `check`) ---------------------------
# marshmallow's Email and URL rules are used as plain functions (the mapping documents still
# validate with marshmallow); the event body itself has one validator, msgspec.

class Email(str):
    """An email, trimmed and lower-cased: the hub's identity for a person."""


class Url(str):
    """An absolute http(s) URL (a share link); a host without a dot is allowed."""


class Currency(str):
    """An ISO 4217 code such as GBP."""


class Timestamp(str):
    """ISO 8601; naive times are UTC; stored as YYYY-MM-DDTHH:MM:SS.ffffffZ."""


class OptIn(int):
    """A consent flag: true or false (and the spellings marshmallow's Boolean has always taken)."""


class Money(Decimal):
    """A decimal amount as a string ("59.90"); numbers are accepted and read exactly."""


_EMAIL = validate.Email()
_URL = validate.URL(require_tld=False)
NOT_TEXT = "Not a valid string."


def dotted_domain(value: str) -> None:
    """A deliverable address has a domain with a dot: `name@localhost` is refused."""
    if "." not in value.rpartition("@")[2]:
        raise ValueError("the domain needs a dot, as in name@example.com")


def check_email(value: Any) -> Email:
    if type(value) is not str:
        raise TypeError(NOT_TEXT)
    return _checked_email(value)


# A sender names the same people again and again (a referrer's invites, a friend's conversion):
# the checked address is kept for the most recent ones (a refusal is not kept: it raises again).
@functools.lru_cache(maxsize=16384)
def _checked_email(value: str) -> Email:
    value = value.strip().lower()
    try:
        _EMAIL(value)
    except ValidationError:
        raise ValueError("Not a valid email address.") from None
    if len(value) > MAX_EMAIL:
        raise ValueError(f"at most {MAX_EMAIL} characters (RFC 5321)")
    dotted_domain(value)
    return Email(value)


def check_money(value: Any) -> Money:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError("must be a decimal amount such as \"59.90\"")
    try:
        amount = Money(str(value).strip())
    except InvalidOperation:
        raise ValueError("must be a decimal amount such as \"59.90\"") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError("must be a non-negative amount")
    if amount.as_tuple().exponent < -4:  # type: ignore[operator]
        raise ValueError("at most 4 decimal places")
    if amount > MAX_AMOUNT:
        raise ValueError(f"at most {MAX_AMOUNT:,} (the hub's cap on one amount)")
    return amount


def check_timestamp(value: Any) -> Timestamp:
    if type(value) is not str:
        raise TypeError("Not a valid datetime.")
    try:
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        raise ValueError("Not a valid datetime.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        moment = moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(RANGE) from None
    if moment.year < EARLIEST_YEAR:
        raise ValueError(RANGE)
    # the year is at least EARLIEST_YEAR, so isoformat's text is strftime's %Y-%m-%dT%H:%M:%S.%f
    return Timestamp(moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z")


def check_url(value: Any) -> Url:
    if type(value) is not str:
        raise TypeError(NOT_TEXT)
    try:
        _URL(value)
    except ValidationError:
        raise ValueError("Not a valid URL.") from None
    return Url(value)


TRUE, FALSE = fields.Boolean.truthy, fields.Boolean.falsy


def check_opt_in(value: Any) -> OptIn:
    if type(value) is bool:
        return OptIn(value)
    if type(value) in (str, int, float) and (value in TRUE or value in FALSE):
        return OptIn(value in TRUE)
    raise ValueError("Not a valid boolean.")


def check_currency(value: Any) -> Currency:
    if type(value) is not str:
        raise TypeError(NOT_TEXT)
    if not CURRENCY.match(value):
        raise ValueError("must be an ISO 4217 code such as GBP")
    return Currency(value)


CHECKS: dict[type, Any] = {Email: check_email, Money: check_money, Timestamp: check_timestamp, Url: check_url,
                           Currency: check_currency, OptIn: check_opt_in}


def check(kind: type, value: Any) -> Any:
    """msgspec's dec_hook: the values msgspec has no rule for."""
    if kind in CHECKS:
        if value is None:
            raise TypeError("Field may not be null.")
        return CHECKS[kind](value)
    raise NotImplementedError(kind)


# -- the event -------------------------------------------------------------------------------------

Text = Annotated[str, Meta(max_length=255)]
Text128 = Annotated[str, Meta(max_length=128)]
Text64 = Annotated[str, Meta(max_length=64)]
Text35 = Annotated[str, Meta(max_length=35)]


Id = Annotated[str, Meta(min_length=1, max_length=128)]


class Party(Struct, omit_defaults=True):
    email: Email
    first_name: Text | None = None
    last_name: Text | None = None
    customer_id: Text | None = None
    locale: Text35 | None = None


class Referrer(Party, omit_defaults=True):
    referrer_id: Text | None = None
    share_url: Url | None = None


class Friend(Party, omit_defaults=True):
    marketing_opt_in: OptIn | None = None
    promo_code: Text128 | None = None


class Contact(Party, omit_defaults=True):
    marketing_opt_in: OptIn | None = None


class Order(Struct, omit_defaults=True):
    id: Id
    total: Money
    currency: Currency
    coupon_code: Text128 | None = None


class Reward(Struct, omit_defaults=True):
    recipient: Literal["referrer", "friend"]
    kind: Text64 | None = None
    value: Money | None = None
    currency: Currency | None = None
    code: Text128 | None = None


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


class Event(Struct, omit_defaults=True):
    """A canonical referral event; unknown keys are ignored."""

    id: Id
    type: EventType
    occurred_at: Timestamp
    programme: Text128 | None = None
    source: Text64 | None = None
    referrer: Referrer | None = None
    friend: Friend | None = None
    order: Order | None = None
    reward: Reward | None = None
    contact: Contact | None = None



def rules(event: Event) -> list[tuple[str, str]]:
    """The checks across parts: which parts the type needs, and the reward's recipient."""
    for part in NEEDS[event.type]:
        if getattr(event, part) is None:
            return [(part, f"required for {event.type} events")]
    reward = event.reward
    if event.type == "reward.granted" and reward and getattr(event, reward.recipient) is None:
        return [(reward.recipient, f"required when reward.recipient is {reward.recipient}")]
    if reward and reward.value is not None and reward.currency is None:
        return [("reward.currency", "required when reward.value is given")]
    return []


PLAIN: dict[type, Any] = {Email: str.__str__, Url: str.__str__, Currency: str.__str__, Timestamp: str.__str__,
                         Money: Decimal, OptIn: bool}


def plain(value: Any) -> Any:
    """msgspec's enc_hook: the checked values back as plain str, Decimal and bool."""
    return PLAIN[type(value)](value)


def as_dict(event: Event) -> dict[str, Any]:
    """The event as the ledger takes it: plain str, Decimal and bool; absent and null parts left out."""
    return msgspec.to_builtins(event, builtin_types=(Decimal,), enc_hook=plain)  # type: ignore[no-any-return]


# -- the wording of a refusal ----------------------------------------------------------------------

def struct_in(kind: Any) -> type[Struct] | None:
    """The struct a field holds (Party in `Party | None`), or None."""
    if isinstance(kind, type) and issubclass(kind, Struct):
        return kind
    if get_origin(kind) is Union or type(kind).__name__ == "UnionType":
        return next((k for k in get_args(kind) if isinstance(k, type) and issubclass(k, Struct)), None)
    return None


def choices(kind: Any) -> tuple[str, ...]:
    for arg in (kind, *get_args(kind)):
        if get_origin(arg) is Literal:
            return get_args(arg)
    return ()


def wording(exc: msgspec.ValidationError, kind: Any, name: str) -> str:
    """msgspec's message for one field, in the words the hub's 422s have always used."""
    text = str(exc).split(" - at `", 1)[0]
    if text.endswith("got `null`"):
        return "Field may not be null."
    if text.startswith("Invalid enum value"):
        allowed = ", ".join(choices(kind))
        return f"must be one of: {allowed}" if name == "type" else f"Must be one of: {allowed}."
    if text.startswith("Expected `str` of length"):
        meta = next((m for a in (kind, *get_args(kind)) for m in getattr(a, "__metadata__", ())), None)
        low, high = getattr(meta, "min_length", None), getattr(meta, "max_length", None)
        if low is not None and high is not None:
            return f"Length must be between {low} and {high}."
        return f"Longer than maximum length {high}."
    if text.startswith("Expected `str"):
        return NOT_TEXT
    if text.startswith("Expected `bool"):
        return "Not a valid boolean."
    return text


def problems(cls: type[Struct], data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Every (dotted path, reason) in `data` against `cls`, field by field (a refusal names them all)."""
    if type(data) is not dict:
        return [(prefix or "$", "Invalid input type.")]
    out: list[tuple[str, str]] = []
    for field in msgspec.structs.fields(cls):
        path = f"{prefix}.{field.name}" if prefix else field.name
        if field.name not in data:
            if field.required:
                out.append((path, "Missing data for required field."))
            continue
        value, nested = data[field.name], struct_in(field.type)
        if nested is not None and value is not None:
            out += problems(nested, value, path)
            continue
        try:
            msgspec.convert(value, field.type, dec_hook=check)
        except msgspec.ValidationError as exc:
            out.append((path, wording(exc, field.type, field.name)))
    return out


def load_event(item: Any) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    """(the event as the ledger takes it, []) or (None, every problem as (dotted path, reason))."""
    if type(item) is not dict:
        return None, [("$", "an event is a JSON object")]
    try:
        event = msgspec.convert(item, Event, dec_hook=check)
    except msgspec.ValidationError:
        return None, problems(Event, item) or [("$", "not a valid event")]
    found = rules(event)
    return (None, found) if found else (as_dict(event), [])


def load_events(items: list[Any], checked: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(events, errors) where each error is {"index", "field", "message"}. `checked`: the items
    come from errors.checked_json, which has refused a lone surrogate anywhere in them (and an
    event nests no deeper than its parts), so they are not scanned again."""
    events, errors = [], []
    for index, item in enumerate(items):
        loaded, found = load_event(item)
        if loaded is None:
            errors += [{"index": index, "field": path, "message": message} for path, message in found]
            continue
        if checked:
            events.append(loaded)
            continue
        # what reaches Redis and Lua is text: callers that parsed no JSON (feeds, the CLI) meet it here
        problem = json_problem(loaded)
        if problem:
            errors.append({"index": index, "field": problem[0], "message": problem[1]})
            continue
        events.append(loaded)
    return events, errors


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

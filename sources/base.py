"""Shared parts of the webhook adapters, so each platform module holds only its own quirks.

An adapter turns one signed webhook body from a referral platform into canonical events
(DESIGN.md "Canonical event"). It knows nothing of Flask, Redis or the rest of the hub:

    settings = adapter.settings_from_env(os.environ)      # HUB_SOURCE_<NAME>_<SETTING>
    adapter.configured(settings)                          # credentials present?
    adapter.verify(headers, body, settings, now)          # SignatureError -> 401
    result = adapter.normalise(adapter.parse(body), headers, settings)   # PayloadError -> 400
    result.events / result.ignored / result.identities

Parties in events carry `source_id` (the platform's id of that person) beside the canonical
fields, and have no `email` when the platform sent none: the caller resolves those from the
`identities` earlier payloads taught.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Mapping

MAX_ID = 128
MAX_LABEL = 64
HEX_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
CURRENCY = re.compile(r"^[A-Za-z]{3}$")
# Currencies whose minor unit is the major unit (Stripe's list), for platforms that send cents.
ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX",
                          "VND", "VUV", "XAF", "XOF", "XPF"})
IDENTITY_KEYS = ("source_id", "email", "first_name", "last_name", "customer_id", "locale")


class SignatureError(Exception):
    """The request is not provably from the platform: missing, malformed, wrong or stale signature."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PayloadError(Exception):
    """The body is not the platform's shape at all (not JSON, not an object...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SettingsError(ValueError):
    """A HUB_SOURCE_* variable is set but unusable (never carries the value itself)."""


@dataclass
class Normalised:
    """What one webhook body means: canonical events, event types skipped, ids learnt."""

    events: list[dict[str, Any]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    identities: list[dict[str, Any]] = field(default_factory=list)


class Adapter:
    """One referral platform's webhook: settings, signature check, mapping to canonical events."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    # setting -> default; read from HUB_SOURCE_<NAME>_<SETTING upper-cased>.
    settings_spec: ClassVar[dict[str, str]] = {"secret": ""}
    secret_settings: ClassVar[tuple[str, ...]] = ("secret",)
    required_settings: ClassVar[tuple[str, ...]] = ("secret",)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def settings_from_env(self, environ: Mapping[str, str]) -> dict[str, Any]:
        """This source's HUB_SOURCE_* variables over the defaults, converted."""
        prefix = f"HUB_SOURCE_{self.name.upper()}_"
        settings: dict[str, Any] = dict(self.settings_spec)
        for key in self.settings_spec:
            value = environ.get(prefix + key.upper())
            if value is not None and value.strip():
                settings[key] = value.strip()
        return self.convert(settings)

    def convert(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Turn raw strings into the types verify/normalise use (overridden where needed)."""
        return settings

    def configured(self, settings: Mapping[str, Any]) -> bool:
        return all(settings.get(key) for key in self.required_settings)

    def parse(self, body: bytes | str) -> Any:
        """The body as JSON, or PayloadError."""
        return load_json(body)

    def verify(self, headers: Mapping[str, str], body: bytes, settings: Mapping[str, Any], now: float) -> None:
        raise NotImplementedError

    def normalise(self, payload: Any, headers: Mapping[str, str] | None, settings: Mapping[str, Any],
                  now: float | None = None) -> Normalised:
        """Canonical events for a parsed body (raw bytes are parsed first).

        `now` stamps events whose payload carries no time (defaults to the clock).
        """
        if isinstance(payload, (bytes, bytearray, str)):
            payload = self.parse(bytes(payload) if isinstance(payload, bytearray) else payload)
        result = self.map(payload, headers or {}, settings, time.time() if now is None else now)
        for event in result.events:
            event.setdefault("source", self.name)
        result.ignored = [label(kind) for kind in result.ignored]
        result.identities = merge_identities(result.identities + identities_from(result.events))
        return result

    def map(self, payload: Any, headers: Mapping[str, str], settings: Mapping[str, Any], now: float) -> Normalised:
        raise NotImplementedError


# --- headers and signatures -------------------------------------------------------------------

def header(headers: Mapping[str, Any], name: str) -> str | None:
    """A header by case-insensitive name, whatever mapping the caller holds."""
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            if isinstance(value, bytes):
                return value.decode("latin-1")
            return value if isinstance(value, str) else None
    return None


def hmac_sha256(secret: str, data: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), data, hashlib.sha256).digest()


def same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def decode_digest(value: str) -> bytes | None:
    """A presented SHA-256 digest as bytes: 64 hex digits, or base64 of 32 bytes; None otherwise."""
    value = value.strip()
    if HEX_SHA256.fullmatch(value):
        return bytes.fromhex(value)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def verify_static(headers: Mapping[str, Any], name: str, expected: str) -> None:
    """A fixed credential header, compared through digests so neither value nor length leaks."""
    presented = header(headers, name)
    if presented is None:
        raise SignatureError(f"missing {name} header")
    digest = hashlib.sha256(presented.strip().encode("utf-8", "replace")).digest()
    if not same(digest, hashlib.sha256(expected.encode("utf-8")).digest()):
        raise SignatureError(f"{name} header does not match")


# --- JSON -------------------------------------------------------------------------------------

def load_json(body: bytes | str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise PayloadError("the body is not valid JSON") from None


def rewrite_json(raw: str, *, whitespace: bool = False, trailing_commas: bool = False) -> str:
    """JSON text with whitespace and/or trailing commas dropped outside string literals."""
    out: list[str] = []
    held: list[str] = []  # a comma (and the spacing after it) until the next token says if it trails
    in_string = escaped = False
    for char in raw:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char in " \t\n\r":
            if not whitespace:
                (held if held else out).append(char)
            continue
        if held:
            out.extend(held[1:] if char in "}]" else held)
            held = []
        if char == "," and trailing_commas:
            held = [char]
            continue
        out.append(char)
        in_string = char == '"'
    out.extend(held)
    return "".join(out)


def digest_id(value: Any) -> str:
    """A stable short key for content that has no id of its own."""
    text_form = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text_form.encode("utf-8")).hexdigest()[:32]


def event_id(source: str, key: str) -> str:
    """`<source>:<key>`, hashed when it would pass the 128 characters the ledger accepts."""
    full = f"{source}:{key}"
    if len(full) <= MAX_ID:
        return full
    return f"{source}:{hashlib.sha256(key.encode('utf-8')).hexdigest()}"


def label(kind: Any) -> str:
    """An ignored event type, bounded so it can be counted without trusting its size."""
    value = kind if isinstance(kind, str) and kind.strip() else "unknown"
    return value.strip()[:MAX_LABEL]


# --- values -----------------------------------------------------------------------------------

def dig(value: Any, *path: str) -> Any:
    """value[a][b]..., or None as soon as a level is missing or not an object."""
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def text(value: Any, max_len: int = 255) -> str | None:
    """A non-empty string (numbers become strings), or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, str)):
        value = str(value).strip()
        return value[:max_len] if value else None
    return None


def email(value: Any) -> str | None:
    """Trimmed and lower-cased, as the hub keys people; None when it cannot be an address."""
    value = text(value, 320)
    if value is None or "@" not in value or any(c.isspace() for c in value):
        return None
    return value.lower()


def split_name(value: Any) -> tuple[str | None, str | None]:
    """"Sarah Advocate" -> ("Sarah", "Advocate"); one word is a first name."""
    value = text(value)
    if not value:
        return None, None
    first, _, last = value.partition(" ")
    return first, (last.strip() or None)


def party(**fields: Any) -> dict[str, Any]:
    """A referrer/friend/contact object without the fields the platform left empty."""
    return {key: value for key, value in fields.items() if value is not None and value != ""}


def currency(value: Any) -> str | None:
    value = text(value)
    return value.upper() if value and CURRENCY.fullmatch(value) else None


def decimal(value: Any) -> Decimal | None:
    """A finite, non-negative Decimal from a number or numeric string; None otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0 or amount.adjusted() > 15:
        return None  # no referral order is worth a quadrillion: such a number is garbage
    return amount


def major(value: Any) -> str | None:
    """An amount already in major units as a string with at least two decimals ("100" -> "100.00")."""
    amount = decimal(value)
    if amount is None:
        return None
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        amount = amount.quantize(Decimal("0.01"))
    elif isinstance(exponent, int) and exponent < -4:
        amount = amount.quantize(Decimal("0.0001"))  # float noise (0.30000000000000004); the hub keeps 4 places
    return format(amount, "f")


def minor(value: Any, digits: int = 2) -> str | None:
    """An amount in minor units as a major-unit string (7000 -> "70.00")."""
    amount = decimal(value)
    if amount is None:
        return None
    return format(amount.scaleb(-digits).quantize(Decimal(1).scaleb(-digits)), "f") if digits else format(amount, "f")


def minor_digits(code: str | None) -> int:
    return 0 if code in ZERO_DECIMAL else 2


# --- time -------------------------------------------------------------------------------------

def iso(moment: datetime) -> str:
    """UTC, second precision plus milliseconds when there are any, with a Z."""
    moment = moment.astimezone(timezone.utc)
    return moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds").replace("+00:00", "Z")


def from_epoch(value: Any, scale: float = 1.0) -> str | None:
    """Epoch seconds (scale 1) or milliseconds (scale 1000) as ISO 8601 UTC."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return iso(datetime.fromtimestamp(value / scale, tz=timezone.utc))
    except (OverflowError, OSError, ValueError):
        return None


def from_text(value: Any) -> str | None:
    """An ISO 8601 string in any offset as UTC; naive times are taken as UTC."""
    value = text(value, 64)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return iso(moment)


def first_time(*candidates: str | None) -> str | None:
    return next((c for c in candidates if c), None)


# --- identities -------------------------------------------------------------------------------

def identities_from(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every party that carries both a platform id and an email teaches that pair."""
    found = []
    for event in events:
        if str(event.get("type", "")).startswith("contact."):
            continue  # an erased person must not be re-learnt
        for role in ("referrer", "friend"):
            person = event.get(role)
            if isinstance(person, dict) and person.get("source_id") and person.get("email"):
                found.append({k: person[k] for k in IDENTITY_KEYS if person.get(k)})
    return found


def merge_identities(identities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (source_id, email), later details filling earlier gaps."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for identity in identities:
        key = (identity["source_id"], identity["email"])
        merged[key] = {**identity, **merged.get(key, {})}
    return list(merged.values())

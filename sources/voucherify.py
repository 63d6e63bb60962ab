"""Voucherify: project webhooks (signed) and distribution webhooks (envelope or raw template).

Docs: https://docs.voucherify.io/docs/webhooks-v2024-01-01 (project webhooks, signature),
https://docs.voucherify.io/docs/distributions (distribution webhooks), event examples in
voucherify-openapi documentation/openapi-events/*.json.
Quirks: amounts are minor units (x100) and no payload names a currency (a project setting);
people are `cust_...` ids and `customer.email` may be null; `customer.deleted` rewrites
`source_id` to `<orig>_deleted<ISO time>`.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from .base import (Adapter, Normalised, PayloadError, SignatureError, currency, dig, digest_id, email, event_id,
                   first_time, from_text, header, hmac_sha256, iso, minor, obj, party, rewrite_json, same, split_name,
                   text, verify_static)

SIGNATURE = "x-voucherify-signature"
REFERRAL_PROGRAM = "REFERRAL_PROGRAM"
DELETED_SUFFIX = re.compile(r"_deleted\d{4}-\d\d-\d\dT[\d:.]+Z?$")
ENROL_TYPES = ("publication.succeeded", "voucher.published", "customer.publication.succeeded")
REWARD_TYPES = ("customer.rewarded", "customer.rewarded.loyalty_points")
IDENTITY_TYPES = ("customer.created", "customer.updated", "customer.confirmed")
KNOWN_TYPES = frozenset(ENROL_TYPES + REWARD_TYPES + IDENTITY_TYPES + (
    "redemption.succeeded", "redemption.failed", "redemption.rollback.succeeded", "redemption.rollback.failed",
    "customer.deleted", "customer.holder.assignment.created"))


class VoucherifyAdapter(Adapter):
    name = "voucherify"
    label = "Voucherify"
    # header_name/_value: the custom header a distribution webhook sends (those are not signed).
    # rewards: "referral" maps only rewards of referral campaigns; "all" maps loyalty rewards too.
    settings_spec = {"secret": "", "currency": "", "header_name": "", "header_value": "", "rewards": "referral"}
    secret_settings = ("secret", "header_value")
    required_settings = ("currency",)

    def configured(self, settings: Mapping[str, Any]) -> bool:
        signed = bool(settings.get("secret")) or bool(settings.get("header_name") and settings.get("header_value"))
        return signed and bool(currency(settings.get("currency")))

    def verify(self, headers: Mapping[str, str], body: bytes, settings: Mapping[str, Any], now: float) -> None:
        presented = header(headers, SIGNATURE)
        if presented is None and settings.get("header_name") and settings.get("header_value"):
            return verify_static(headers, settings["header_name"], settings["header_value"])
        if presented is None:
            raise SignatureError(f"missing {SIGNATURE} header")
        if not settings.get("secret"):
            raise SignatureError("no Voucherify secret is configured")
        presented = presented.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", presented):
            raise SignatureError(f"malformed {SIGNATURE} header")
        expected = hmac_sha256(settings["secret"], signed_bytes(body)).hex()
        if not same(presented.encode("ascii"), expected.encode("ascii")):
            raise SignatureError("signature does not match")

    def map(self, payload: Any, headers: Mapping[str, str], settings: Mapping[str, Any], now: float) -> Normalised:
        if not isinstance(payload, dict):
            raise PayloadError("a Voucherify webhook body is a JSON object")
        kind, data, delivery_id, sent_at = unwrap(payload)
        ctx = Context(settings, delivery_id, sent_at or iso(datetime.fromtimestamp(now, timezone.utc)))
        result = Normalised()
        handler = HANDLERS.get(kind)
        events = handler(data, ctx) if handler else []
        if events:
            result.events = events
        else:
            result.ignored.append(kind)
        if kind in IDENTITY_TYPES:
            result.identities = [i for i in [identity(obj(data.get("customer")))] if i]
        return result


def signed_bytes(body: bytes) -> bytes:
    """What Voucherify signs: JSON with whitespace outside strings removed, anything else as is."""
    try:
        raw = body.decode("utf-8")
        json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return body
    return rewrite_json(raw, whitespace=True).encode("utf-8")


def unwrap(payload: dict[str, Any]) -> tuple[str, dict[str, Any], str | None, str | None]:
    """(type, data, delivery id, time) for an envelope, or for a bare data object (raw template)."""
    if isinstance(payload.get("data"), dict) and (isinstance(payload.get("event"), dict) or "type" in payload):
        event = obj(payload.get("event"))
        kind = text(payload.get("type")) or ""
        # Distribution webhooks put the user's "Event name" (often "") in `type`: the real one is event.type.
        if (dig(payload, "source", "object") == "distribution" or kind not in KNOWN_TYPES) and text(event.get("type")):
            kind = text(event.get("type")) or kind
        delivery = text(event.get("id")) or text(payload.get("id"))
        sent_at = from_text(event.get("created_at")) or from_text(payload.get("created_at"))
        return kind, payload["data"], delivery, sent_at
    explicit = text(payload.get("type"))
    found = explicit if explicit in KNOWN_TYPES else infer(payload)
    return found or "unknown", payload, None, from_text(payload.get("created_at"))


def infer(data: dict[str, Any]) -> str | None:
    """The event type of a data-only body (distribution "Raw payload"), from its shape."""
    if isinstance(data.get("redemption_rollback"), dict):
        return "redemption.rollback.succeeded"
    if dig(data, "holder", "holder_role"):
        return "customer.holder.assignment.created"
    if isinstance(data.get("earning_rule"), dict) or isinstance(data.get("balance"), dict):
        return "customer.rewarded.loyalty_points"
    if isinstance(data.get("reward"), dict):
        return "customer.rewarded"
    if isinstance(data.get("redemption"), dict):
        return "redemption.succeeded"
    if isinstance(data.get("publication"), dict):
        return "publication.succeeded"
    if DELETED_SUFFIX.search(text(dig(data, "customer", "source_id")) or ""):
        return "customer.deleted"
    return None


class Context:
    def __init__(self, settings: Mapping[str, Any], delivery_id: str | None, sent_at: str) -> None:
        self.settings = settings
        self.delivery_id = delivery_id
        self.sent_at = sent_at
        self.currency = currency(settings.get("currency"))

    def id(self, natural: str | None, data: Any) -> str:
        """The platform's event id when it sent one, else the data's own id, else a content hash."""
        return event_id("voucherify", self.delivery_id or natural or digest_id(data))


def is_referral(data: dict[str, Any]) -> bool:
    return (dig(data, "voucher", "is_referral_code") is True
            or dig(data, "campaign", "campaign_type") == REFERRAL_PROGRAM
            or dig(data, "campaign", "is_referral_code") is True
            or dig(data, "holder", "campaign_type") == REFERRAL_PROGRAM)


def customer_party(customer: dict[str, Any]) -> dict[str, Any]:
    first, last = split_name(customer.get("name"))
    return party(email=email(customer.get("email")), first_name=first, last_name=last,
                 customer_id=text(customer.get("source_id")), source_id=text(customer.get("id")))


def identity(customer: dict[str, Any]) -> dict[str, Any] | None:
    person = customer_party(customer)
    return person if person.get("source_id") and person.get("email") else None


def referrer_by_id(referrer_id: str | None) -> dict[str, Any] | None:
    return party(source_id=referrer_id, referrer_id=referrer_id) if referrer_id else None


def enrolled(data: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    """A referral code published to its holder: the holder is now a referrer."""
    if not is_referral(data):
        return []
    customer = obj(data.get("customer")) or obj(dig(data, "publication", "customer"))
    referrer = customer_party(customer)
    if not referrer:
        return []
    if referrer.get("source_id"):
        referrer["referrer_id"] = referrer["source_id"]
    when = from_text(dig(data, "publication", "created_at")) or from_text(data.get("created_at"))
    return [{"id": ctx.id(text(dig(data, "publication", "id")), data), "type": "referrer.enrolled",
             "occurred_at": first_time(when, ctx.sent_at), "referrer": referrer}]


def converted(data: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    """A referral code redeemed: the friend (customer) converted, with the order when there is one."""
    redemption = obj(data.get("redemption"))
    if not is_referral(data) or redemption.get("result") == "FAILURE":
        return []
    voucher = obj(data.get("voucher")) or obj(redemption.get("voucher"))
    order = obj(data.get("order")) or obj(redemption.get("order"))
    friend = customer_party(obj(data.get("customer")) or obj(redemption.get("customer")))
    code = text(voucher.get("code"))
    if code:
        friend["promo_code"] = code
    if not friend:
        return []
    event: dict[str, Any] = {
        "id": ctx.id(text(redemption.get("id")), data), "type": "friend.converted",
        "occurred_at": first_time(from_text(redemption.get("date")), from_text(data.get("created_at")), ctx.sent_at),
        "friend": friend}
    referrer = referrer_by_id(text(order.get("referrer_id")) or text(voucher.get("referrer_id"))
                              or text(voucher.get("holder_id")))
    if referrer:
        event["referrer"] = referrer
    # total_amount is what the friend paid (after discounts); amount is before them.
    total = minor(order.get("total_amount") if order.get("total_amount") is not None else order.get("amount"))
    order_id = text(order.get("source_id")) or text(order.get("id"))
    if order_id and total is not None and ctx.currency:
        event["order"] = party(id=order_id, total=total, currency=ctx.currency, coupon_code=code)
    return [event]


def referee_assigned(data: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    """A customer became the REFEREE holder of a referral code: the friend registered."""
    holder = obj(data.get("holder"))
    if holder.get("holder_role") != "REFEREE":
        return []
    voucher = obj(data.get("voucher"))
    friend = customer_party(obj(data.get("customer")))
    friend.setdefault("source_id", text(holder.get("customer_id")))
    friend = party(**friend, promo_code=text(voucher.get("code")))
    if not friend.get("source_id") and not friend.get("email"):
        return []
    event: dict[str, Any] = {"id": ctx.id(text(holder.get("id")), data), "type": "friend.registered",
                             "occurred_at": first_time(from_text(holder.get("created_at")), ctx.sent_at),
                             "friend": friend}
    referrer = referrer_by_id(text(voucher.get("referrer_id")) or text(voucher.get("holder_id")))
    if referrer:
        event["referrer"] = referrer
    return [event]


def rewarded(data: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    """customer.rewarded(.loyalty_points): a reward given to the customer of the payload."""
    referral = is_referral(data) or bool(data.get("referral_tier"))
    if not referral and ctx.settings.get("rewards") != "all":
        return []  # a loyalty-programme reward, not a referral one
    customer = obj(data.get("customer")) or obj(data.get("holder"))
    person = customer_party(customer)
    if not person:
        return []
    # Referral tiers reward the referrer; so does a reward to the holder of the code. Else the friend.
    holder_id = text(dig(data, "voucher", "holder_id"))
    role = "referrer" if data.get("referral_tier") or (holder_id and holder_id == person.get("source_id")) else "friend"
    if role == "referrer" and person.get("source_id"):
        person["referrer_id"] = person["source_id"]
    reward = party(recipient=role, **reward_value(data, ctx))
    natural = text(dig(data, "reward", "assignment_id"))
    natural = f"{natural}:{text(dig(data, 'redemption', 'id')) or person.get('source_id')}" if natural else None
    when = first_time(from_text(dig(data, "redemption", "date")), from_text(dig(data, "event", "created_at")))
    return [{"id": ctx.id(natural, data), "type": "reward.granted", "occurred_at": first_time(when, ctx.sent_at),
             role: person, "reward": reward}]


def reward_value(data: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """kind/value/currency of a Voucherify reward. Points and products carry no money value."""
    if isinstance(data.get("balance"), dict) or isinstance(data.get("earning_rule"), dict):
        return {"kind": "points"}
    reward = obj(data.get("reward"))
    params = obj(reward.get("parameters")) or obj(dig(data, "redemption", "reward", "parameters"))
    campaign = obj(params.get("campaign"))
    if campaign.get("balance") is not None and ctx.currency:
        return {"kind": "credit", "value": minor(campaign.get("balance")), "currency": ctx.currency}
    if campaign.get("points") is not None or params.get("coin") is not None:
        return {"kind": "points"}
    if params.get("product") is not None or dig(data, "redemption", "reward", "type") == "MATERIAL":
        return {"kind": "product"}
    return {"kind": (text(reward.get("type")) or "other").lower()}


def erased(data: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    """customer.deleted: match on the cust_ id or the email, since source_id was rewritten."""
    customer = obj(data.get("customer"))
    original = DELETED_SUFFIX.sub("", text(customer.get("source_id")) or "")
    contact = party(email=email(customer.get("email")), source_id=text(customer.get("id")), customer_id=original)
    if not contact.get("email") and not contact.get("source_id"):
        return []
    natural = f"deleted:{contact.get('source_id') or contact.get('email')}"
    return [{"id": ctx.id(natural, data), "type": "contact.erased",
             "occurred_at": first_time(from_text(customer.get("updated_at")), ctx.sent_at), "contact": contact}]


HANDLERS: dict[str, Callable[[dict[str, Any], Context], list[dict[str, Any]]]] = {
    **{kind: enrolled for kind in ENROL_TYPES},
    **{kind: rewarded for kind in REWARD_TYPES},
    "redemption.succeeded": converted,
    "customer.holder.assignment.created": referee_assigned,
    "customer.deleted": erased,
}

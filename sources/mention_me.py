"""Mention Me: Connections Hub webhooks, signed `X-MentionMe-Signature: sha256=<hex>`.

Docs: https://docs.mention-me.com (Connections Hub webhooks; consumer API
/api/consumer/{v}/referee/register, /order, /coupon_redemption; entry-point API /offer).
Mention Me's webhook event catalogue was not reachable; its webhooks are said to carry
"generally the same structure" as the API bodies, so events are recognised by the shape of
those documented bodies (customer / order / request objects), not by event names.
"""
from __future__ import annotations

from typing import Any, Mapping

from .base import (Adapter, Normalised, PayloadError, SignatureError, currency, decode_digest, email, event_id,
                   first_time, from_epoch, from_text, header, hmac_sha256, major, obj, party, same, text)

SIGNATURE = "X-MentionMe-Signature"
SHAPE_KEYS = ("customer", "order", "referrerMentionMeIdentifier", "referrerToken")


class MentionMeAdapter(Adapter):
    name = "mention_me"
    label = "Mention Me"

    def verify(self, headers: Mapping[str, str], body: bytes, settings: Mapping[str, Any], now: float) -> None:
        if not settings.get("secret"):
            raise SignatureError("no Mention Me secret is configured")
        value = header(headers, SIGNATURE)
        if value is None:
            raise SignatureError(f"missing {SIGNATURE} header")
        scheme, sep, presented = value.strip().partition("=")
        # [unverified] encoding: hex as GitHub-style "sha256=" suggests; base64 of the same digest is accepted too.
        digest = decode_digest(presented) if sep and scheme.strip().lower() == "sha256" else None
        if digest is None:
            raise SignatureError(f"malformed {SIGNATURE} header")
        if not same(digest, hmac_sha256(settings["secret"], body)):
            raise SignatureError("signature does not match")

    def map(self, payload: Any, headers: Mapping[str, str], settings: Mapping[str, Any], now: float) -> Normalised:
        if not isinstance(payload, dict):
            raise PayloadError("a Mention Me webhook body is a JSON object")
        name = text(payload.get("event")) or text(payload.get("eventType")) or text(payload.get("type"))
        body = payload
        if isinstance(payload.get("data"), dict) and not any(k in payload for k in SHAPE_KEYS):
            body = payload["data"]
        sent_at = from_epoch(now)
        kind = classify(body)
        event = HANDLERS[kind](body, sent_at) if kind else None
        if event is None:
            return Normalised(ignored=[name or kind or "unrecognised"])
        return Normalised(events=[event])


def classify(body: dict[str, Any]) -> str | None:
    """Which documented Mention Me body this is."""
    if "referrerMentionMeIdentifier" in body or "referrerToken" in body:
        return "referee"
    if "implementation" in body or "variation" in obj(body.get("request")):
        return "enrol"  # entry-point /offer, even with an order (post-purchase enrolment)
    if text(dig_order(body).get("orderIdentifier")):
        return "order"
    return None


def dig_order(body: dict[str, Any]) -> dict[str, Any]:
    return obj(body.get("order"))


def customer(body: dict[str, Any]) -> dict[str, Any]:
    c = obj(body.get("customer"))
    return party(email=email(c.get("emailAddress")), first_name=text(c.get("firstname")),
                 last_name=text(c.get("surname")), customer_id=text(c.get("uniqueIdentifier")))


def referee(body: dict[str, Any], sent_at: str | None) -> dict[str, Any] | None:
    """referee/register: a friend linked to a referrer (found by name or token)."""
    friend = customer(body)
    key = friend.get("email") or friend.get("customer_id")
    if not key:
        return None
    event = {"id": event_id("mention_me", f"referee:{key}"), "type": "friend.registered", "occurred_at": sent_at,
             "friend": friend}
    referrer_id = text(body.get("referrerMentionMeIdentifier"))
    return {**event, "referrer": party(source_id=referrer_id, referrer_id=referrer_id)} if referrer_id else event


def enrol(body: dict[str, Any], sent_at: str | None) -> dict[str, Any] | None:
    """entry-point /offer: a customer enrolled as a referrer."""
    referrer = party(**customer(body), locale=text(obj(body.get("request")).get("localeCode"), 35))
    key = referrer.get("email") or referrer.get("customer_id")
    if not key:
        return None
    return {"id": event_id("mention_me", f"enrol:{key}"), "type": "referrer.enrolled", "occurred_at": sent_at,
            "referrer": referrer}


def order(body: dict[str, Any], sent_at: str | None) -> dict[str, Any] | None:
    """order / coupon_redemption: a purchase; coupon redemptions (in store) carry no customer."""
    o = dig_order(body)
    order_id, code = text(o.get("orderIdentifier"), 128), text(o.get("couponCode"), 128)
    friend = party(**customer(body), promo_code=code)
    if not order_id or not friend:
        return None
    event: dict[str, Any] = {"id": event_id("mention_me", f"order:{order_id}"), "type": "friend.converted",
                             "occurred_at": first_time(from_text(o.get("dateString")), sent_at), "friend": friend}
    total, money = major(o.get("total")), currency(o.get("currencyCode"))
    if total is not None and money:
        event["order"] = party(id=order_id, total=total, currency=money, coupon_code=code)
    return event


HANDLERS = {"referee": referee, "enrol": enrol, "order": order}

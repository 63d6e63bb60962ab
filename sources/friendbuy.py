"""Friendbuy (current platform): batched webhooks and the reward-validation callback.

Docs: https://developers.friendbuy.com/#webhooks (source: friendbuy/slate
source/includes/_webhooks.md) and #reward-validation (_reward_validation_callback.md).
Quirks: `data` is an array, several events per POST, and the envelope `id` names the call, not
the event (rewardId / eventId do); the signature is base64 HMAC-SHA256 of the raw body (the
prose says SHA1, the header name and the sample say SHA-256); `rewardAmount` is a string.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any, Mapping

from .base import (Adapter, Normalised, PayloadError, SignatureError, currency, email, event_id, first_time,
                   from_epoch, from_text, header, hmac_sha256, major, obj, party, same, split_name, text)

SIGNATURE = "X-Friendbuy-Hmac-SHA256"
KINDS = {"discount": "coupon", "credit": "credit", "giftCard": "gift_card", "cash": "cash", "product": "product",
         "ledger": "points", "integration": "other", "other": "other"}


class FriendbuyAdapter(Adapter):
    name = "friendbuy"
    label = "Friendbuy"

    def verify(self, headers: Mapping[str, str], body: bytes, settings: Mapping[str, Any], now: float) -> None:
        if not settings.get("secret"):
            raise SignatureError("no Friendbuy secret is configured")
        value = header(headers, SIGNATURE)
        if value is None:
            raise SignatureError(f"missing {SIGNATURE} header")
        try:
            presented = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError(f"malformed {SIGNATURE} header") from None
        if len(presented) != 32:
            raise SignatureError(f"malformed {SIGNATURE} header")
        # Over the raw bytes: re-serialising the JSON (as the docs sample does) breaks on spacing.
        if not same(presented, hmac_sha256(settings["secret"], body)):
            raise SignatureError("signature does not match")

    def map(self, payload: Any, headers: Mapping[str, str], settings: Mapping[str, Any], now: float) -> Normalised:
        if isinstance(payload, dict) and isinstance(payload.get("eventType"), str):
            return callback(payload, from_epoch(now))
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
            raise PayloadError("a Friendbuy webhook body is an object with `type` and `data`")
        return webhook(payload, from_epoch(now))


def webhook(payload: dict[str, Any], now_iso: str | None) -> Normalised:
    kind = text(payload.get("type")) or ""
    items = payload.get("data")
    items = items if isinstance(items, list) else [items] if isinstance(items, dict) else []
    handler = HANDLERS.get(kind)
    result = Normalised()
    sent_at = first_time(from_text(payload.get("createdOn")), now_iso)
    for index, item in enumerate(items):
        fallback = f"{text(payload.get('id')) or 'call'}:{index}"
        event = handler(obj(item), fallback, sent_at) if handler else None
        if event:
            result.events.append(event)
        else:
            result.ignored.append(kind)
    if not items:
        result.ignored.append(kind)
    return result


def reward(recipient: str, item: dict[str, Any], fallback: str, sent_at: str | None) -> dict[str, Any] | None:
    who = party(email=email(item.get("emailAddress")), customer_id=text(item.get("customerId")))
    if not who:
        return None
    unit = currency(item.get("rewardUnit"))
    amount = major(item.get("rewardAmount") if item.get("rewardAmount") is not None else item.get("amount"))
    # A "%" or SKU unit is no money: the schema takes a value only with its currency.
    value = {"value": amount, "currency": unit} if unit and amount is not None else {}
    kind = KINDS.get(text(item.get("rewardType")) or "", "other")
    return {"id": event_id("friendbuy", text(item.get("rewardId")) or fallback), "type": "reward.granted",
            "occurred_at": first_time(from_text(item.get("createdOn")), sent_at), recipient: who,
            "reward": party(recipient=recipient, kind=kind, code=text(item.get("couponCode"), 128), **value)}


def advocate_reward(item: dict[str, Any], fallback: str, sent_at: str | None) -> dict[str, Any] | None:
    return reward("referrer", item, fallback, sent_at)


def friend_incentive(item: dict[str, Any], fallback: str, sent_at: str | None) -> dict[str, Any] | None:
    # [unverified] shape: taken to mirror advocateReward, the friend being emailAddress.
    return reward("friend", item, fallback, sent_at)


def email_capture(item: dict[str, Any], fallback: str, sent_at: str | None) -> dict[str, Any] | None:
    """A friend gave their email (with consent) through a referral: the friend registered."""
    address = email(item.get("emailAddress"))
    if not address:
        return None
    first, last = split_name(item.get("name"))
    incentive, referral, advocate = obj(item.get("incentive")), obj(item.get("referral")), obj(item.get("advocate"))
    friend = party(email=address, first_name=first, last_name=last, marketing_opt_in=True,
                   promo_code=text(incentive.get("couponCode"), 128) or text(referral.get("code"), 128))
    a_first, a_last = split_name(advocate.get("name"))
    referrer = party(email=email(advocate.get("email")), first_name=a_first, last_name=a_last,
                     customer_id=text(advocate.get("customerId")))
    key = text(item.get("eventId")) or text(item.get("attributionId")) or fallback
    event = {"id": event_id("friendbuy", key), "type": "friend.registered",
             "occurred_at": first_time(from_text(item.get("createdOn")), sent_at), "friend": friend}
    return {**event, "referrer": referrer} if referrer else event


def email_opt_out(item: dict[str, Any], fallback: str, sent_at: str | None) -> dict[str, Any] | None:
    """Consent withdrawn: the person leaves marketing lists (decision in docs/webhooks.md)."""
    address = email(item.get("emailAddress"))
    if not address:
        return None
    return {"id": event_id("friendbuy", f"optout:{fallback}"), "type": "contact.updated",
            "occurred_at": first_time(from_text(item.get("createdOn")), sent_at),
            "contact": {"email": address, "marketing_opt_in": False}}


def callback(payload: dict[str, Any], now_iso: str | None) -> Normalised:
    """Reward validation: Friendbuy asks whether a friend's purchase earns the advocate a reward."""
    kind = text(payload.get("eventType")) or ""
    purchase, advocate = obj(payload.get("purchase")), obj(payload.get("advocate"))
    order_id, total = text(purchase.get("id"), 128), major(purchase.get("amount"))
    code = currency(purchase.get("currency"))
    friend = party(email=email(purchase.get("email")), customer_id=text(purchase.get("customerId")),
                   promo_code=text(purchase.get("couponCode"), 128))
    if kind != "purchase" or not order_id or not friend:
        return Normalised(ignored=[kind])
    event: dict[str, Any] = {
        "id": event_id("friendbuy", f"purchase:{text(payload.get('campaignId')) or ''}:{order_id}"),
        "type": "friend.converted", "friend": friend,
        "occurred_at": first_time(from_text(purchase.get("date")), from_text(payload.get("createdOn")), now_iso)}
    referrer = party(email=email(advocate.get("email")), customer_id=text(advocate.get("customerId")))
    if referrer:
        event["referrer"] = referrer
    if total is not None and code:
        event["order"] = party(id=order_id, total=total, currency=code, coupon_code=friend.get("promo_code"))
    return Normalised(events=[event])


HANDLERS = {
    "advocateReward": advocate_reward,
    "friendIncentive": friend_incentive,
    "emailCapture": email_capture,
    "emailOptOut": email_opt_out,
}

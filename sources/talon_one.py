"""Talon.One: application/loyalty notifications and rule-engine webhooks, behind a static header.

Docs: https://docs.talon.one/docs/dev/notifications/overview (X-UUID, PascalCase loyalty
notifications), https://docs.talon.one/docs/product/account/dev-tools/managing-webhooks
(templated webhooks), t1-openapi-specs notifications/webhooks/*.yaml.
Quirks: nothing is signed (the credential is a header the admin defines); referrals happen in
Integration API calls, so the only referral facts that leave Talon.One are coupons created with
a `referralId`, loyalty points, and whatever a webhook template the admin writes sends
(docs/webhooks.md gives the template this adapter reads).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from .base import (Adapter, Normalised, PayloadError, SignatureError, currency, digest_id, email, event_id,
                   first_time, from_text, header, iso, major, obj, party, text, verify_static)

TEMPLATE_TYPES = ("referrer.enrolled", "referral.invited", "friend.registered", "friend.converted", "reward.granted")


class TalonOneAdapter(Adapter):
    name = "talon_one"
    label = "Talon.One"
    # loyalty_programs: ids (comma separated) whose points are referral rewards; others are ignored.
    settings_spec = {"header_name": "", "header_value": "", "currency": "", "loyalty_programs": ""}
    secret_settings = ("header_value",)
    required_settings = ("header_name", "header_value")

    def convert(self, settings: dict[str, Any]) -> dict[str, Any]:
        settings["loyalty_programs"] = {p for p in settings["loyalty_programs"].replace(",", " ").split() if p}
        return settings

    def verify(self, headers: Mapping[str, str], body: bytes, settings: Mapping[str, Any], now: float) -> None:
        if not (settings.get("header_name") and settings.get("header_value")):
            raise SignatureError("no Talon.One header credential is configured")
        verify_static(headers, settings["header_name"], settings["header_value"])

    def map(self, payload: Any, headers: Mapping[str, str], settings: Mapping[str, Any], now: float) -> Normalised:
        if isinstance(payload, dict) and isinstance(payload.get("data"), list) and not payload.get("type"):
            items, label = payload["data"], text(payload.get("NotificationType")) or "coupons"
        elif isinstance(payload, list):
            items, label = payload, None
        elif isinstance(payload, dict):
            items, label = [payload], None
        else:
            raise PayloadError("a Talon.One notification or webhook body is a JSON object or array")
        message_id = text(header(headers, "X-UUID"), 100)
        now_iso = iso(datetime.fromtimestamp(now, timezone.utc))
        result = Normalised()
        for index, item in enumerate(items):
            key = (message_id if len(items) == 1 else f"{message_id}:{index}") if message_id else None
            kind, event = self.item(obj(item), key, settings, now_iso)
            if event:
                result.events.append(event)
            else:
                result.ignored.append(label or kind)
        return result

    def item(self, item: dict[str, Any], key: str | None, settings: Mapping[str, Any],
             now_iso: str) -> tuple[str, dict[str, Any] | None]:
        if text(item.get("NotificationType")):
            kind = text(item.get("NotificationType")) or ""
            return kind, loyalty(item, key, settings, now_iso) if kind == "LoyaltyPointsAdded" else None
        if text(item.get("type")) in TEMPLATE_TYPES:
            return text(item.get("type")) or "", template(item, key, settings, now_iso)
        if "campaignId" in item and "value" in item:
            return "coupon", coupon(item, key, now_iso)
        return text(item.get("type")) or "unknown", None


def loyalty(item: dict[str, Any], key: str | None, settings: Mapping[str, Any], now_iso: str) -> dict[str, Any] | None:
    """Points added in a loyalty programme the admin marked as the referral reward."""
    program, profile = text(item.get("LoyaltyProgramID")), text(item.get("ProfileIntegrationID"))
    if not profile or program not in (settings.get("loyalty_programs") or ()):
        return None
    if text(item.get("Operation")) not in (None, "addition"):
        return None  # published examples mix NotificationType and Operation: trust neither alone
    # Points are no money: the canonical reward takes a value only with a currency.
    return {"id": event_id("talon_one", key or text(item.get("TransactionUUID")) or digest_id(item)),
            "type": "reward.granted", "occurred_at": now_iso,
            "referrer": party(source_id=profile, referrer_id=profile),
            "reward": {"recipient": "referrer", "kind": "points"}}


def coupon(item: dict[str, Any], key: str | None, now_iso: str) -> dict[str, Any] | None:
    """A coupon created for a referral: a reward to its recipient.

    `referralId` is typed integer but described as "integration ID of the referring customer";
    it is read as a person only when it is a string, and decides the side only by equality.
    """
    recipient, code = text(item.get("recipientIntegrationId")), text(item.get("value"), 128)
    referral = item.get("referralId")
    if not recipient or referral is None or not code:
        return None
    referrer_id = referral if isinstance(referral, str) and referral.strip() else None
    role = "referrer" if referrer_id == recipient else "friend"
    event: dict[str, Any] = {
        "id": event_id("talon_one", key or f"coupon:{text(item.get('id')) or digest_id(item)}"),
        "type": "reward.granted", "occurred_at": first_time(from_text(item.get("created")), now_iso),
        "reward": {"recipient": role, "kind": "coupon", "code": code}}
    if role == "referrer":
        event["referrer"] = party(source_id=recipient, referrer_id=recipient)
    else:
        event["friend"] = party(source_id=recipient)
        if referrer_id:
            event["referrer"] = party(source_id=referrer_id, referrer_id=referrer_id)
    return event


def template(item: dict[str, Any], key: str | None, settings: Mapping[str, Any], now_iso: str) -> dict[str, Any] | None:
    """The flat body of the webhook template in docs/webhooks.md, to a canonical event."""
    kind = text(item.get("type")) or ""
    advocate, friend_id = text(item.get("advocate_integration_id")), text(item.get("friend_integration_id"))
    code = text(item.get("referral_code"), 128)
    money = currency(item.get("currency")) or currency(settings.get("currency"))
    referrer = party(email=email(item.get("advocate_email")), source_id=advocate, referrer_id=advocate)
    friend = party(email=email(item.get("friend_email")), source_id=friend_id, promo_code=code)
    event: dict[str, Any] = {"id": event_id("talon_one", key or text(item.get("id")) or digest_id(item)),
                             "type": kind, "occurred_at": first_time(from_text(item.get("occurred_at")), now_iso)}
    if referrer:
        event["referrer"] = referrer
    if friend and kind in ("friend.registered", "friend.converted", "reward.granted"):
        event["friend"] = friend
    total, order_id = major(item.get("order_total")), text(item.get("order_id"), 128)
    if kind == "friend.converted" and order_id and total is not None and money:
        event["order"] = party(id=order_id, total=total, currency=money, coupon_code=code)
    if kind == "reward.granted":
        role = "friend" if item.get("reward_recipient") == "friend" else "referrer"
        value = major(item.get("reward_value"))
        event["reward"] = party(recipient=role, kind=text(item.get("reward_kind"), 64),
                                code=text(item.get("reward_code"), 128),
                                **({"value": value, "currency": money} if value is not None and money else {}))
    needed = {"referrer.enrolled": "referrer", "referral.invited": "referrer", "friend.registered": "friend",
              "friend.converted": "friend", "reward.granted": event.get("reward", {}).get("recipient")}[kind]
    return event if event.get(needed) else None

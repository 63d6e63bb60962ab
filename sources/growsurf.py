"""GrowSurf: participant, goal and commission webhooks, signed with a millisecond timestamp.

Docs: https://docs.growsurf.com/developer-tools/webhooks (GrowSurf-Signature) and
https://docs.growsurf.com/developer-tools/webhooks/events-reference (payloads).
Quirks: `ts` is in milliseconds; there is no delivery id, so the key is derived from
event|createdAt|campaign|participant|reward as GrowSurf's own MCP server does; a double-sided
reward arrives as two deliveries (one per side); manual approval sends the same reward twice
(approved false, then true); the published examples carry trailing commas.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from .base import (Adapter, Normalised, PayloadError, SettingsError, SignatureError, currency, dig, email, event_id,
                   first_time, from_epoch, header, hmac_sha256, load_json, major, minor, minor_digits, obj, party,
                   rewrite_json, same, text)

SIGNATURE = "GrowSurf-Signature"
DEFAULT_TOLERANCE = 300
AMOUNT_LABEL = re.compile(r"^\s*[^\d\s.,-]{0,3}\s*(\d+(?:\.\d+)?)\s*$")  # "$25", "25", "€ 25.50"


class GrowSurfAdapter(Adapter):
    name = "growsurf"
    label = "GrowSurf"
    settings_spec = {"secret": "", "tolerance": str(DEFAULT_TOLERANCE)}

    def convert(self, settings: dict[str, Any]) -> dict[str, Any]:
        try:
            settings["tolerance"] = int(settings["tolerance"])
        except ValueError:
            raise SettingsError("HUB_SOURCE_GROWSURF_TOLERANCE must be a whole number of seconds") from None
        return settings

    def parse(self, body: bytes | str) -> Any:
        """Strict JSON, then again without trailing commas (GrowSurf's published examples have them)."""
        try:
            return load_json(body)
        except PayloadError:
            raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            return load_json(rewrite_json(raw, trailing_commas=True))

    def verify(self, headers: Mapping[str, str], body: bytes, settings: Mapping[str, Any], now: float) -> None:
        if not settings.get("secret"):
            raise SignatureError("no GrowSurf secret is configured")
        value = header(headers, SIGNATURE)
        if value is None:
            raise SignatureError(f"missing {SIGNATURE} header")
        stamp, signatures = parse_signature(value)
        tolerance = tolerance_of(settings)
        if abs(now * 1000 - int(stamp)) > tolerance * 1000:
            raise SignatureError("signature timestamp is outside the tolerance")
        expected = hmac_sha256(settings["secret"], stamp.encode("ascii") + b"." + body).hex().encode("ascii")
        if not any(same(sig.encode("ascii"), expected) for sig in signatures):
            raise SignatureError("signature does not match")

    def map(self, payload: Any, headers: Mapping[str, str], settings: Mapping[str, Any], now: float) -> Normalised:
        if not isinstance(payload, dict) or not isinstance(payload.get("event"), str) or not text(payload["event"]):
            raise PayloadError("a GrowSurf webhook body is an object with an `event` name")
        kind = text(payload.get("event")) or ""
        data = obj(payload.get("data"))
        sent_at = first_time(from_epoch(payload.get("createdAt"), 1000), from_epoch(now))
        handler = HANDLERS.get(kind)
        events = handler(kind, payload, data, sent_at) if handler else []
        return Normalised(events=events, ignored=[] if events else [kind])


def tolerance_of(settings: Mapping[str, Any]) -> int:
    try:
        return int(settings.get("tolerance", DEFAULT_TOLERANCE))
    except (TypeError, ValueError):
        return DEFAULT_TOLERANCE


def parse_signature(value: str) -> tuple[str, list[str]]:
    """`ts=<ms>,v=<hex>` in any order, spaces and stray commas tolerated, several v= allowed."""
    stamp, signatures = None, []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep:
            continue
        key, item = key.strip().lower(), item.strip()
        if key == "ts":
            stamp = item
        elif key == "v":
            signatures.append(item.lower())
    if not stamp or not stamp.isascii() or not stamp.isdigit() or len(stamp) > 16:
        raise SignatureError(f"malformed {SIGNATURE} header: no ts=<milliseconds>")
    signatures = [s for s in signatures if re.fullmatch(r"[0-9a-f]{64}", s)]
    if not signatures:
        raise SignatureError(f"malformed {SIGNATURE} header: no v=<hex signature>")
    return stamp, signatures


def dedupe_key(kind: str, payload: dict[str, Any], participant: dict[str, Any], reward: dict[str, Any]) -> str:
    data = obj(payload.get("data"))
    parts = [kind, text(payload.get("createdAt")), text(dig(data, "campaign", "id")), text(participant.get("id")),
             text(reward.get("id"))]
    return event_id("growsurf", "|".join(p or "" for p in parts))


def person(p: dict[str, Any], referrer: bool = False) -> dict[str, Any]:
    found = party(email=email(p.get("email")), first_name=text(p.get("firstName")),
                  last_name=text(p.get("lastName")), source_id=text(p.get("id")))
    if referrer:
        found = party(**found, referrer_id=found.get("source_id"), share_url=text(p.get("shareUrl"), 2048))
    return found


def participant_added(kind: str, payload: dict[str, Any], data: dict[str, Any],
                      sent_at: str | None) -> list[dict[str, Any]]:
    """Without a referrer: a new advocate enrolled. With one: a referred friend registered."""
    participant = obj(data.get("participant")) or data
    if not participant.get("id") and not participant.get("email"):
        return []
    referrer_id = text(participant.get("referredBy"))
    referrer = person(obj(participant.get("referrer")), referrer=True) or (
        party(source_id=referrer_id, referrer_id=referrer_id) if referrer_id else {})
    base = {"id": dedupe_key(kind, payload, participant, {}), "occurred_at": sent_at}
    if referrer:
        return [{**base, "type": "friend.registered", "friend": person(participant), "referrer": referrer}]
    return [{**base, "type": "referrer.enrolled", "referrer": person(participant, referrer=True)}]


def goal_reached(kind: str, payload: dict[str, Any], data: dict[str, Any],
                 sent_at: str | None) -> list[dict[str, Any]]:
    """A reward earned by the participant: isReferrer says which side of the referral they are."""
    participant, reward = obj(data.get("participant")), obj(data.get("reward"))
    if not participant or not reward or reward.get("approved") is False:
        return []  # unapproved rewards come again with approved: true once a person approves them
    event: dict[str, Any] = {"id": dedupe_key(kind, payload, participant, reward), "type": "reward.granted",
                             "occurred_at": sent_at}
    if reward.get("isReferrer") is True:
        event["referrer"] = person(participant, referrer=True)
        friend = person(obj(participant.get("referee")))
        recipient = "referrer"
    else:
        friend = person(participant)
        referrer_id = text(reward.get("referrerId"))
        event["referrer"] = person(obj(participant.get("referrer")), referrer=True) or (
            party(source_id=referrer_id, referrer_id=referrer_id) if referrer_id else None)
        recipient = "friend"
    if friend:
        event["friend"] = friend
    code = text(reward.get("couponCode"), 128)
    event["reward"] = party(recipient=recipient, kind="coupon" if code else "other", code=code,
                            **reward_amount(reward, obj(data.get("campaign"))))
    return [{k: v for k, v in event.items() if v}]


def reward_amount(reward: dict[str, Any], campaign: dict[str, Any]) -> dict[str, Any]:
    """The value lives only in free-form metadata ("amount": "$25"), in the campaign currency."""
    code = currency(campaign.get("currencyISO"))
    raw = dig(reward, "metadata", "amount")
    if isinstance(raw, str):
        match = AMOUNT_LABEL.match(raw)
        raw = match.group(1) if match else None
    value = major(raw)
    return {"value": value, "currency": code} if value is not None and code else {}


def commission_added(kind: str, payload: dict[str, Any], data: dict[str, Any],
                     sent_at: str | None) -> list[dict[str, Any]]:
    """Affiliate campaigns only: a sale by a referred participant, amounts in minor units."""
    commission = obj(data.get("commission"))
    code = currency(commission.get("currencyISO")) or currency(dig(data, "campaign", "currencyISO"))
    total = minor(commission.get("saleAmount"), minor_digits(code))
    referred_id, referrer_id = text(commission.get("referredId")), text(commission.get("referrerId"))
    friend = person(obj(data.get("referredParticipant"))) or party(source_id=referred_id)
    if not commission.get("id") or not friend:
        return []
    event: dict[str, Any] = {
        "id": dedupe_key(kind, payload, obj(data.get("participant")), commission), "type": "friend.converted",
        "occurred_at": first_time(from_epoch(commission.get("createdAt"), 1000), sent_at), "friend": friend,
        "referrer": person(obj(data.get("participant")), referrer=True) or party(source_id=referrer_id,
                                                                                referrer_id=referrer_id)}
    if total is not None and code:
        # A commission names no order: its id stands in, so one sale is counted once.
        event["order"] = {"id": text(commission.get("id")), "total": total, "currency": code}
    return [{k: v for k, v in event.items() if v}]


HANDLERS = {
    "NEW_PARTICIPANT_ADDED": participant_added,
    "PARTICIPANT_REACHED_A_GOAL": goal_reached,
    "NEW_COMMISSION_ADDED": commission_added,
}

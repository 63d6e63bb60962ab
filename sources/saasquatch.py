"""SaaSquatch (impact.com Advocate): webhooks signed with a detached RS256 JWS.

Docs: https://docs.saasquatch.com/api/webhooks/ (events, X-Hook-JWS-RFC-7797, JWKS at
https://app.referralsaasquatch.com/.well-known/jwks.json, fetched by the operator, never here).
Quirks: the header is "<b64 header>..<b64 signature>" and SaaSquatch verifies it with
base64url(raw body) between the dots (plain detached JWS, not the RFC 7797 b64:false form its
name suggests); every tenant's hooks are signed with the same platform key, so the tenant alias
must be checked too; referral events carry user ids only (no email, no order amount).
"""
from __future__ import annotations

import base64
import binascii
import json
import pathlib
from typing import Any, Mapping

import jwt

from .base import (Adapter, Normalised, PayloadError, SettingsError, SignatureError, email, event_id, first_time,
                   from_epoch, header, obj, party, text)

SIGNATURE = "X-Hook-JWS-RFC-7797"
ALGORITHM = "RS256"
REWARD_KINDS = {"PCT_DISCOUNT": "percent", "CREDIT": "credit", "FUELTANK": "coupon", "INTEGRATION": "other"}
# rewardSource -> who got it. FRIEND_SIGNUP: the referrer, for a friend who joined; REFERRED: the friend.
REWARD_ROLES = {"FRIEND_SIGNUP": "referrer", "REFERRED": "friend"}


class SaaSquatchAdapter(Adapter):
    name = "saasquatch"
    label = "SaaSquatch"
    # jwks: a JSON key set or a path to a file holding one. tenant: the alias this hub accepts.
    # program: the programId whose code and share link a user.created enrols.
    settings_spec = {"jwks": "", "tenant": "", "program": ""}
    secret_settings = ()
    required_settings = ("jwks", "tenant")

    def convert(self, settings: dict[str, Any]) -> dict[str, Any]:
        if settings.get("jwks"):
            settings["jwks"] = load_jwks(settings["jwks"])
        return settings

    def verify(self, headers: Mapping[str, str], body: bytes, settings: Mapping[str, Any], now: float) -> None:
        jwks = settings.get("jwks")
        if isinstance(jwks, str) and jwks:
            try:
                jwks = load_jwks(jwks)
            except SettingsError:
                raise SignatureError("the configured SaaSquatch key set is unusable") from None
        if not isinstance(jwks, dict) or not settings.get("tenant"):
            raise SignatureError("no SaaSquatch key set or tenant alias is configured")
        value = header(headers, SIGNATURE)
        if value is None:
            raise SignatureError(f"missing {SIGNATURE} header")
        check_jws(value.strip(), body, jwks)
        # Signed by SaaSquatch is not enough: any tenant's hooks are. Only ours count.
        tenant = text(payload_field(body, "tenantAlias"))
        if tenant != settings["tenant"]:
            raise SignatureError("webhook is for another SaaSquatch tenant")

    def map(self, payload: Any, headers: Mapping[str, str], settings: Mapping[str, Any], now: float) -> Normalised:
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str) or not text(payload["type"]):
            raise PayloadError("a SaaSquatch webhook body is an object with a `type`")
        kind = text(payload.get("type")) or ""
        handler = HANDLERS.get(kind)
        event = handler(payload, obj(payload.get("data")), settings, from_epoch(now)) if handler else None
        return Normalised(events=[event]) if event else Normalised(ignored=[kind])


def load_jwks(value: str) -> dict[str, Any]:
    """The key set from JSON text or from the file it names."""
    raw = value
    if not value.lstrip().startswith("{"):
        try:
            raw = pathlib.Path(value).read_text(encoding="utf-8")
        except OSError:
            raise SettingsError("HUB_SOURCE_SAASQUATCH_JWKS is neither a JSON key set nor a readable file") from None
    try:
        jwks = json.loads(raw)
        jwt.PyJWKSet.from_dict(jwks)
    except (ValueError, jwt.PyJWTError, TypeError, AttributeError):
        raise SettingsError("HUB_SOURCE_SAASQUATCH_JWKS does not hold a usable JSON Web Key Set") from None
    return jwks  # type: ignore[no-any-return]


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def check_jws(value: str, body: bytes, jwks: dict[str, Any]) -> None:
    """Verify "<header>..<signature>" with base64url(body) put back between the dots."""
    parts = value.split(".")
    if len(parts) != 3 or not parts[0] or not parts[2]:
        raise SignatureError(f"malformed {SIGNATURE} header")
    encoded_body = base64.urlsafe_b64encode(body).rstrip(b"=").decode("ascii")
    if parts[1] not in ("", encoded_body):
        raise SignatureError(f"{SIGNATURE} carries a payload other than the body")
    try:
        jws_header = json.loads(b64url_decode(parts[0]))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise SignatureError(f"malformed {SIGNATURE} header") from None
    if not isinstance(jws_header, dict) or jws_header.get("alg") != ALGORITHM:
        raise SignatureError(f"{SIGNATURE} must be signed with {ALGORITHM}")
    key = pick_key(jwks, jws_header.get("kid"))
    try:
        if jws_header.get("b64") is False:  # the RFC 7797 form, should SaaSquatch ever send it
            jwt.PyJWS().decode_complete(f"{parts[0]}..{parts[2]}", key, algorithms=[ALGORITHM], detached_payload=body)
        else:
            jwt.PyJWS().decode_complete(f"{parts[0]}.{encoded_body}.{parts[2]}", key, algorithms=[ALGORITHM])
    except jwt.PyJWTError:
        raise SignatureError("signature does not match") from None
    except (ValueError, TypeError):
        raise SignatureError(f"malformed {SIGNATURE} header") from None


def pick_key(jwks: dict[str, Any], kid: Any) -> Any:
    """The RSA key the header's kid names (or the only key when there is no kid)."""
    try:
        keys = jwt.PyJWKSet.from_dict(jwks).keys
    except (jwt.PyJWTError, TypeError, AttributeError, ValueError):
        raise SignatureError("the configured SaaSquatch key set is unusable") from None
    matches = [k for k in keys if k.key_id == kid] if kid is not None else (keys if len(keys) == 1 else [])
    if not matches:
        raise SignatureError("no configured key matches the signature's kid")
    return matches[0].key


def payload_field(body: bytes, name: str) -> Any:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return payload.get(name) if isinstance(payload, dict) else None


def dedupe_id(payload: dict[str, Any], data: dict[str, Any], kind: str) -> str:
    return event_id("saasquatch", text(payload.get("id")) or f"{kind}:{text(data.get('id')) or ''}")


def user_created(payload: dict[str, Any], data: dict[str, Any], settings: Mapping[str, Any],
                 now_iso: str | None) -> dict[str, Any] | None:
    """A new user: a referrer from now on (every user gets a code), and their id -> email."""
    user_id = text(data.get("id"))
    if not user_id:
        return None
    codes, links = obj(data.get("referralCodes")), obj(data.get("programShareLinks"))
    program = text(settings.get("program")) or (next(iter(codes)) if len(codes) == 1 else None)
    referrer = party(email=email(data.get("email")), first_name=text(data.get("firstName")),
                     last_name=text(data.get("lastName")), locale=text(data.get("locale"), 35),
                     source_id=user_id, referrer_id=user_id,
                     share_url=text(obj(links.get(program)).get("cleanShareLink"), 2048) if program else None)
    event = {"id": dedupe_id(payload, data, "user.created"), "type": "referrer.enrolled", "referrer": referrer,
             "occurred_at": first_time(from_epoch(data.get("dateCreated"), 1000),
                                       from_epoch(payload.get("created"), 1000), now_iso)}
    return {**event, "programme": program} if program else event


def referral_parties(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    referred = text(obj(data.get("referred")).get("id")) or text(data.get("referredUser"))
    referrer = text(obj(data.get("referrer")).get("id")) or text(data.get("referrerUser"))
    friend = party(source_id=referred, promo_code=text(data.get("referralCodeUsed"), 128))
    return friend, party(source_id=referrer, referrer_id=referrer)


def referral_started(payload: dict[str, Any], data: dict[str, Any], settings: Mapping[str, Any],
                     now_iso: str | None) -> dict[str, Any] | None:
    """A friend was attributed to a referrer (ids only). Denied referrals are dropped."""
    friend, referrer = referral_parties(data)
    if not friend.get("source_id") or data.get("moderationStatus") == "DENIED":
        return None
    return {"id": dedupe_id(payload, data, "referral.started"), "type": "friend.registered",
            "occurred_at": first_time(from_epoch(data.get("dateReferralStarted"), 1000),
                                      from_epoch(payload.get("created"), 1000), now_iso),
            "friend": friend, **({"referrer": referrer} if referrer else {})}


def referral_converted(payload: dict[str, Any], data: dict[str, Any], settings: Mapping[str, Any],
                       now_iso: str | None) -> dict[str, Any] | None:
    """The friend converted. SaaSquatch sends no order: no id, amount or currency."""
    friend, referrer = referral_parties(data)
    if not friend.get("source_id") or data.get("moderationStatus") == "DENIED":
        return None
    return {"id": dedupe_id(payload, data, "referral.converted"), "type": "friend.converted",
            "occurred_at": first_time(from_epoch(data.get("dateConverted"), 1000),
                                      from_epoch(payload.get("created"), 1000), now_iso),
            "friend": friend, **({"referrer": referrer} if referrer else {})}


def reward_created(payload: dict[str, Any], data: dict[str, Any], settings: Mapping[str, Any],
                   now_iso: str | None) -> dict[str, Any] | None:
    """A reward for a referral; other sources (manual, loyalty) are not referral rewards."""
    role = REWARD_ROLES.get(text(data.get("rewardSource")) or "")
    user_id = text(data.get("userId"))
    if not role or not user_id:
        return None
    who = party(source_id=user_id, referrer_id=user_id if role == "referrer" else None)
    kind = REWARD_KINDS.get(text(data.get("type")) or "", "other")
    # Percent and credit values are not sent as money with a currency here, so only the kind travels.
    return {"id": dedupe_id(payload, data, "reward.created"), "type": "reward.granted",
            "occurred_at": first_time(from_epoch(data.get("dateGiven"), 1000),
                                      from_epoch(payload.get("created"), 1000), now_iso),
            role: who, "reward": party(recipient=role, kind=kind, code=text(data.get("fuelTankCode"), 128))}


HANDLERS = {
    "user.created": user_created,
    "referral.started": referral_started,
    "referral.converted": referral_converted,
    "reward.created": reward_created,
}

"""Who may call: Standard Webhooks signatures or bearer tokens, with roles."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from typing import Any


from hub.core.config import split
from hub.core.errors import APIError
from hub.core import services

ROLES = {"ingest": ("INGEST_TOKENS", "ADMIN_TOKENS"),
         "admin": ("ADMIN_TOKENS",),
         "ops": ("OPS_TOKENS", "ADMIN_TOKENS")}


def unauthorized(message: str) -> APIError:
    return APIError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def secret_key(secret: str) -> bytes:
    """A whsec_ secret is base64 after the prefix (Standard Webhooks)."""
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return secret.encode()


def sign(secret: str, msg_id: str, timestamp: str | int, body: bytes) -> str:
    """The v1 signature a sender puts in webhook-signature (used by the demo and tests too)."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_standard(secrets: list[str], headers: Any, body: bytes, tolerance: int, now: float | None = None) -> None:
    """Raise 401 unless one v1 signature matches one secret within the time tolerance."""
    msg_id, stamp, signatures = (headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (msg_id and stamp and signatures):
        raise unauthorized("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        sent = int(stamp)
    except ValueError:
        raise unauthorized("webhook-timestamp must be integer seconds") from None
    if abs((now or time.time()) - sent) > tolerance:
        raise unauthorized(f"webhook-timestamp is more than {tolerance} seconds from now")
    offered = [s.split(",", 1)[1] for s in signatures.split() if s.startswith("v1,")]
    for secret in secrets:
        expected = sign(secret, msg_id, stamp, body).split(",", 1)[1]
        if any(hmac.compare_digest(expected, s) for s in offered):
            return
    raise unauthorized("no webhook-signature matches")


NAMED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.@-]{0,63}):(.+)$")


def short_hash(token: str) -> str:
    """The name of a token given without one: a fingerprint that never reveals the token."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:8]


def named_tokens(value: str | list[str] | None) -> list[tuple[str, str]]:
    """A HUB_*_TOKENS value as (name, token) pairs: `name:token` entries carry their name, a bare
    token is named by its short hash. Several per role allow rotation without downtime."""
    pairs = []
    for entry in split(value):
        match = NAMED.match(entry)
        pairs.append((match.group(1), match.group(2)) if match else (short_hash(entry), entry))
    return pairs


def token_values(value: str | list[str] | None) -> list[str]:
    return [token for _, token in named_tokens(value)]


def identify(token: str | None, role: str, config: dict[str, Any] | None = None) -> str | None:
    """The name of `token` when it holds `role`, else None (every comparison in constant time)."""
    if not token:
        return None
    config = config if config is not None else services.current().config
    found = None
    for key in ROLES[role]:
        for name, value in named_tokens(config.get(key)):
            if hmac.compare_digest(token.encode(), value.encode()) and found is None:
                found = name
    return found


def has_role(token: str | None, role: str) -> bool:
    return identify(token, role) is not None

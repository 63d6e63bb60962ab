"""Who may call: Standard Webhooks signatures or bearer tokens, with roles."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from functools import wraps
from typing import Any, Callable

from flask import g, request

from .config import split
from .errors import APIError
from hub import services

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


def bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


def has_role(token: str | None, role: str) -> bool:
    if not token:
        return False
    config = services.current().config
    return any(hmac.compare_digest(token, t) for key in ROLES[role] for t in split(config.get(key)))


def require(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Bearer token with `role`: 401 without a valid token, 403 with a token of another role."""
    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            token = bearer()
            if not has_role(token, role):
                if token and any(has_role(token, r) for r in ROLES):
                    raise APIError(403, "forbidden", f"this token does not have the {role} role")
                raise unauthorized(f"a bearer token with the {role} role is required")
            g.role = role
            return view(*args, **kwargs)
        wrapped.hub_role = role  # type: ignore[attr-defined]  # read by the OpenAPI document
        return wrapped
    return decorator


def authenticate_ingest(body: bytes) -> None:
    """Event API: a Standard Webhooks signature, or a bearer ingest token."""
    config = services.current().config
    if request.headers.get("webhook-signature") or request.headers.get("webhook-id"):
        verify_standard(split(config["INGEST_SECRETS"]), request.headers, body, config["SIGNATURE_TOLERANCE"])
    elif not has_role(bearer(), "ingest"):
        raise unauthorized("sign the request (webhook-* headers) or send a bearer ingest token")

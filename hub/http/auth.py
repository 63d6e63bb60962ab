"""HTTP: who may call a route (bearer tokens by role) and how the event API authenticates a sender."""
from __future__ import annotations

from functools import wraps
from typing import Any, Callable

from flask import g, request

from hub.core.auth import ROLES, has_role, identify, unauthorized, verify_standard
from hub.core.config import split
from hub.core.errors import APIError
from hub.core import services


def bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


def actor() -> str:
    """Who is acting in this request: the token's name (API) or the console session's name."""
    return str(getattr(g, "actor", None) or "hub")


def require(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Bearer token with `role`: 401 without a valid token, 403 with a token of another role."""
    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            token = bearer()
            name = identify(token, role)
            if name is None:
                if token and any(has_role(token, r) for r in ROLES):
                    raise APIError(403, "forbidden", f"this token does not have the {role} role")
                raise unauthorized(f"a bearer token with the {role} role is required")
            g.role, g.actor = role, name
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

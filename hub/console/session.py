"""Console sign-in: server-side sessions in Redis, a random id in the cookie, CSRF per session.

The cookie carries only a random session id; Redis keeps, under the id's SHA-256 (so a reader of
Redis cannot replay a cookie), the token's name and role, a fingerprint of the token (so a token
removed from the settings ends its sessions at once), the CSRF token and the sign-in time. The
key expires after HUB_CONSOLE_SESSION_TTL seconds. Sessions hold no personal data.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from functools import wraps
from typing import Any, Callable

from flask import abort, current_app, g, redirect, request, url_for

from hub.core.auth import ROLES, identify, named_tokens
from hub.core import keys

COOKIE = "hub_console"
PRE_COOKIE = "hub_console_pre"      # double-submit CSRF for the sign-in form (no session yet)
KEY = keys.CONSOLE_SESSION


def redis() -> Any:
    return current_app.extensions["redis"]


def lifetime() -> int:
    return int(current_app.config["HUB"]["CONSOLE_SESSION_TTL"])


def secure() -> bool:
    """Secure cookies when the hub is reached over https (HUB_PUBLIC_URL, or the request)."""
    public = str(current_app.config["HUB"].get("PUBLIC_URL") or "")
    return public.lower().startswith("https://") or request.is_secure


def fingerprint(token: str) -> str:
    return hashlib.sha256(b"console:" + token.encode()).hexdigest()


def key_for(session_id: str) -> str:
    return KEY.format(hashlib.sha256(session_id.encode()).hexdigest())


def sign_in(token: str) -> tuple[str, dict[str, Any]] | None:
    """A new session for a valid admin or ops token: (session id, session); None otherwise."""
    token = token.strip()
    for role in ("admin", "ops"):
        name = identify(token, role)
        if name is not None:
            session = {"name": name, "role": role, "token": fingerprint(token), "csrf": secrets.token_urlsafe(32),
                       "at": time.time()}
            session_id = secrets.token_urlsafe(32)
            redis().set(key_for(session_id), json.dumps(session), ex=lifetime())
            current_app.logger.warning("console sign-in", extra={"by": name, "role": role})
            return session_id, session
    return None


def still_valid(session: dict[str, Any]) -> bool:
    """The token the session was opened with is still configured for the session's role."""
    config = current_app.config["HUB"]
    for key in ROLES[session["role"]]:
        for _, token in named_tokens(config.get(key)):
            if hmac.compare_digest(fingerprint(token), session["token"]):
                return True
    return False


def current() -> dict[str, Any] | None:
    """The signed-in session of this request, if any (cached on g)."""
    if "console_session" in g:
        return g.console_session  # type: ignore[no-any-return]
    session = None
    session_id = request.cookies.get(COOKIE)
    if session_id:
        raw = redis().get(key_for(session_id))
        if raw:
            session = json.loads(raw)
            if not still_valid(session):
                redis().delete(key_for(session_id))
                session = None
    g.console_session = session
    if session:
        g.actor = session["name"]
    return session


def sign_out() -> None:
    session_id = request.cookies.get(COOKIE)
    if session_id:
        redis().delete(key_for(session_id))


def has(role: str) -> bool:
    """Whether the signed-in session holds `role` (an admin session holds ops too)."""
    session = current()
    return bool(session) and (session["role"] == role or (role == "ops" and session["role"] == "admin"))  # type: ignore[index]


def require_role(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Console pages: not signed in (or the session expired) goes to sign-in; signed in without
    the role gets 403. An admin session has the ops role too, as admin tokens do in the API."""
    if role not in ("admin", "ops"):
        raise ValueError(f"unknown role {role!r}")

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if current() is None:
                target = request.full_path if request.method == "GET" else request.path
                return redirect(url_for("console.sign_in", next=target.rstrip("?")))
            if not has(role):
                abort(403, description=f"this page needs the {role} role")
            return view(*args, **kwargs)
        wrapped.console_role = role  # type: ignore[attr-defined]
        return wrapped
    return decorator


def csrf_token() -> str:
    session = current()
    if session:
        return str(session["csrf"])
    return str(g.get("pre_csrf") or "")


def check_csrf() -> None:
    """Every changing request carries the session's CSRF token (sign-in: the pre-cookie's)."""
    offered = request.form.get("csrf") or request.headers.get("X-CSRF-Token") or ""
    session = current()
    expected = session["csrf"] if session else request.cookies.get(PRE_COOKIE, "")
    if not expected or not offered or not hmac.compare_digest(str(expected), offered):
        abort(400, description="the form is missing its security token or it is out of date; "
                               "reload the page and try again")

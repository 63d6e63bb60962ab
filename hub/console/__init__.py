"""The console: the hub's own browser pages under /console, for CRM admins and ops.

Server-rendered Jinja templates over the same core functions as the API and the CLI, so the three
cannot disagree. Sign-in with an admin or ops token opens a server-side session
(hub.console.session); every changing form carries a CSRF token; pages declare their role with
`require_role`. Static files are served by the hub itself: no CDN, no build step.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, g, make_response, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from hub.core.errors import APIError
from hub.console import session
from hub.console.session import require_role

__all__ = ["bp", "require_role", "NAV", "init_app"]

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates", static_folder="static")

# The navigation: (endpoint, label, role). Pages add themselves; the layout shows the ones the
# signed-in role may open and that exist.
NAV: list[tuple[str, str, str]] = [
    ("console.overview", "Overview", "ops"),
    ("console.failed", "Failed syncs", "ops"),
    ("console.contacts", "Contacts", "ops"),
    ("console.webhooks", "Webhooks", "ops"),
]

SECURITY_HEADERS = {
    # Only the hub's own files; no inline script; no framing (clickjacking).
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@bp.before_request
def before() -> None:
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        if request.endpoint == "console.sign_out" and session.current() is None:
            return                      # nothing to sign out of (the session expired): no harm
        session.check_csrf()


@bp.after_request
def after(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        if name == "Cache-Control" and request.endpoint == "console.static":
            continue
        response.headers.setdefault(name, value)
    return response


@bp.app_context_processor
def context() -> dict[str, Any]:
    if not request.blueprint == "console":
        return {}
    signed = session.current() if request.endpoint != "console.static" else None
    views = current_app.view_functions
    nav = [(endpoint, label) for endpoint, label, role in NAV if endpoint in views and session.has(role)]
    return {"signed_in": signed, "nav": nav, "csrf_token": session.csrf_token, "is_admin": session.has("admin"),
            "page_url": page_url}


def page_url(endpoint: str, **values: Any) -> str:
    """The URL of a console page, or "#" while that page does not exist (templates link ahead)."""
    return url_for(endpoint, **values) if endpoint in current_app.view_functions else "#"


def safe_next(target: str | None) -> str:
    """Only a console path on this hub: never another host (open redirect)."""
    parts = urlsplit(target or "")
    if parts.scheme or parts.netloc or not parts.path.startswith("/console") or parts.path.startswith("//"):
        return url_for("console.overview")
    return parts.path + (f"?{parts.query}" if parts.query else "")


@bp.get("/")
def home() -> Any:
    return redirect(url_for("console.overview"))


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    import secrets

    error = None
    if request.method == "POST":
        opened = session.sign_in(request.form.get("token", ""))
        if opened:
            session_id, _ = opened
            response = redirect(safe_next(request.form.get("next")))
            response.set_cookie(session.COOKIE, session_id, max_age=session.lifetime(), httponly=True,
                                samesite="Strict", secure=session.secure(), path="/console")
            response.delete_cookie(session.PRE_COOKIE, path="/console")
            return response
        error = "That token is not an admin or ops token of this hub."
    g.pre_csrf = secrets.token_urlsafe(32)
    g.console_session = None
    response = make_response(render_template("console/sign_in.html", error=error,
                                             next=safe_next(request.values.get("next"))),
                             401 if error else 200)
    response.set_cookie(session.PRE_COOKIE, g.pre_csrf, max_age=3600, httponly=True, samesite="Strict",
                        secure=session.secure(), path="/console")
    return response


@bp.post("/sign-out")
def sign_out() -> Any:
    session.sign_out()
    response = redirect(url_for("console.sign_in"))
    response.delete_cookie(session.COOKIE, path="/console")
    return response


@bp.errorhandler(HTTPException)
def error_page(exc: HTTPException) -> Any:
    return render_template("console/error.html", code=exc.code, title=exc.name,
                           message=exc.description), exc.code or 500


@bp.errorhandler(APIError)
def api_error_page(exc: APIError) -> Any:
    """A core function's refusal (the API's 404 / 422), as a page saying the same."""
    return render_template("console/error.html", code=exc.status, title=exc.code.replace("_", " ").capitalize(),
                           message=exc.message), exc.status


def init_app(app: Flask) -> None:
    from hub.console import admin, ops  # noqa: F401  (register the admin and ops pages on bp)

    app.register_blueprint(bp)

"""Access, in a real browser and over plain HTTP against the real hub: roles on the server, CSRF,
an expired session sent back to sign-in, and no secret in any page."""
from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from hub import create_app
from hub.core import processes
from hub.core.processes import free_port
from sandbox import DEMO_SETTINGS
from tests.conftest import INGEST_SECRET, ROOT, TOKENS
from tests.console.conftest import csrf_of, signed_in_session
from tests.story import story

pytestmark = pytest.mark.e2e


def console_routes() -> list[tuple[str, str, str]]:
    """Every console route as (method, path with sample values, role), from the hub's own URL map,
    so pages added later are covered too."""
    app = create_app({"REDIS_URL": "redis://127.0.0.1:1/0", "ERASURE_KEY": "route-listing-only-0123456789"})
    samples = {"name": "klaviyo", "connector": "klaviyo", "email": "cleo@example.com", "number": "1",
               "version": "1", "job_id": "none", "a": "0", "b": "1", "other": "1", "filename": "console.css"}
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("console.") or rule.endpoint == "console.static":
            continue
        role = getattr(app.view_functions[rule.endpoint], "console_role", None)
        if role is None:
            continue
        path = rule.rule
        for arg in rule.arguments:
            path = re.sub(rf"<(?:[a-z]+:)?{arg}>", samples.get(arg, "1"), path)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((method, path, role))
    return out


@pytest.fixture(scope="module")
def with_story(console_stack):  # type: ignore[no-untyped-def]
    assert console_stack.post(story()).status_code == 202
    console_stack.wait_for(lambda: console_stack.holds("klaviyo", "cleo@example.com"), what="cleo at klaviyo")
    return console_stack


def test_ops_cannot_reach_admin_pages_or_erasure(with_story) -> None:  # type: ignore[no-untyped-def]
    stack = with_story
    routes = console_routes()
    admin_only = [(m, p) for m, p, role in routes if role == "admin"]
    assert ("POST", "/console/contacts/cleo@example.com/erase") in admin_only
    ops = signed_in_session(stack, "ops-token")
    token = csrf_of(ops.get(f"{stack.hub}/console/overview", timeout=10).text)
    for method, path in admin_only:
        answer = ops.request(method, f"{stack.hub}{path}", data={"csrf": token, "confirm_email": "cleo@example.com"},
                             timeout=10, allow_redirects=False)
        assert answer.status_code == 403, (method, path, answer.status_code)
    # the contact survived, and its page offers ops no erase form
    page = ops.get(f"{stack.hub}/console/contacts/cleo@example.com", timeout=10)
    assert page.status_code == 200 and 'id="erase"' not in page.text
    assert stack.api("GET", "/v1/contacts/cleo@example.com", token="ops-token").json()["erased"] is False
    # an admin session reaches the same pages (it has ops too)
    admin = signed_in_session(stack, "admin-token")
    for method, path, role in routes:
        if method == "GET":
            answer = admin.get(f"{stack.hub}{path}", timeout=30, allow_redirects=False)
            assert answer.status_code in (200, 404), (path, answer.status_code)


def test_a_form_without_its_csrf_token_is_refused(with_story) -> None:  # type: ignore[no-untyped-def]
    stack = with_story
    ops = signed_in_session(stack, "ops-token")
    for data in ({"reason": "forged"}, {"reason": "forged", "csrf": "not-the-token"}):
        answer = ops.post(f"{stack.hub}/console/connectors/klaviyo/pause", data=data, timeout=10, allow_redirects=False)
        assert answer.status_code == 400 and "security token" in answer.text
    assert stack.api("GET", "/v1/connectors/klaviyo/pause", token="ops-token").json()["paused"] is None
    # another session's token does not do either
    other = csrf_of(signed_in_session(stack, "ops-token").get(f"{stack.hub}/console/overview", timeout=10).text)
    answer = ops.post(f"{stack.hub}/console/connectors/klaviyo/pause", data={"reason": "x", "csrf": other},
                      timeout=10, allow_redirects=False)
    assert answer.status_code == 400
    # with it, the same form works
    mine = csrf_of(ops.get(f"{stack.hub}/console/overview", timeout=10).text)
    answer = ops.post(f"{stack.hub}/console/connectors/klaviyo/resume", data={"csrf": mine}, timeout=10,
                      allow_redirects=False)
    assert answer.status_code == 302


def test_an_expired_session_goes_back_to_sign_in(console, with_story) -> None:  # type: ignore[no-untyped-def]
    """A second hub process on the same Redis whose sessions last 2 seconds."""
    stack = with_story
    port = free_port()
    env = {**stack.env, "HUB_CONSOLE_SESSION_TTL": "2"}
    stack.procs["hub-short-sessions"] = processes.start("hub-short-sessions", ["serve", "--port", str(port), "--workers", "1"],
                                                        env, stack.logs, cwd=ROOT)
    hub = f"http://127.0.0.1:{port}"
    stack.wait_http(f"{hub}/readyz")
    driver = console.driver
    driver.delete_all_cookies()
    driver.get(f"{hub}/console/contacts")
    console.find("#token").send_keys("ops-token")
    console.submit("form.stack button[type=submit]")
    assert driver.current_url == f"{hub}/console/contacts"

    def sent_back() -> bool:
        driver.get(f"{hub}/console/contacts")
        return "/console/sign-in" in driver.current_url
    console.wait(sent_back, "the session to expire", timeout=30)
    assert driver.current_url.endswith("/console/sign-in?next=/console/contacts")
    assert console.find("#token")


def secrets_of(stack: Any) -> list[str]:
    values = [INGEST_SECRET, *TOKENS.values()]
    for name in ("klaviyo", "ometria"):
        values += [v for k, v in DEMO_SETTINGS[name].items() if k != "base_url" and len(v) >= 6]
    return values


def test_no_secret_in_any_page(console, with_story) -> None:  # type: ignore[no-untyped-def]
    stack = with_story
    secrets = secrets_of(stack)
    assert "pk_sandbox_demo" in secrets
    console.sign_in("admin-token")
    pages = sorted({p for m, p, _ in console_routes() if m == "GET"})
    assert "/console/overview" in pages and "/console/contacts/cleo@example.com" in pages
    for path in pages:
        console.driver.get(f"{stack.hub}{path}")
        html = console.driver.page_source
        for secret in secrets:
            assert secret not in html, f"{path} shows a secret"
    # nor in the sign-in page, the error pages, or the cookies the browser holds
    for path in ("/console/sign-in", "/console/contacts/nobody@example.com"):
        html = requests.get(f"{stack.hub}{path}", timeout=10).text
        assert not any(secret in html for secret in secrets)
    assert not any(secret in c["value"] for c in console.driver.get_cookies() for secret in secrets)

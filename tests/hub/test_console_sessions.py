"""Named tokens (API and console), console sessions in Redis, CSRF and roles, without a browser:
the Flask test client against a real Redis. The browser tests are under tests/console/."""
from __future__ import annotations

import json
import re

import pytest

from hub.core.auth import named_tokens, short_hash


def csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match
    return match.group(1)


def sign_in(client, token: str):  # type: ignore[no-untyped-def]
    page = client.get("/console/sign-in")
    return client.post("/console/sign-in", data={"token": token, "csrf": csrf(page.text)})


def test_named_and_bare_tokens() -> None:
    pairs = named_tokens("anna:s3cret-anna, ben:s3cret-ben bare-token-123")
    assert pairs == [("anna", "s3cret-anna"), ("ben", "s3cret-ben"), (short_hash("bare-token-123"), "bare-token-123")]
    assert short_hash("bare-token-123").startswith("token:") and "bare" not in short_hash("bare-token-123")


def test_api_attributes_a_pause_to_the_token_name(make_app, hub_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(KLAVIYO_API_KEY="pk_sandbox_demo", KLAVIYO_BASE_URL=hub_app.config["HUB"]["KLAVIYO_BASE_URL"],
                   OPS_TOKENS="olga:ops-one,ops-two")
    client = app.test_client()
    answer = client.post("/v1/connectors/klaviyo/pause", json={"reason": "vendor maintenance"},
                         headers={"Authorization": "Bearer ops-one"})
    assert answer.status_code == 200 and answer.json["paused"]["by"] == "olga"
    # the second token of the role works too (rotation), named by its short hash
    answer = client.post("/v1/connectors/klaviyo/pause", json={"reason": "again"},
                         headers={"Authorization": "Bearer ops-two"})
    assert answer.json["paused"]["by"] == short_hash("ops-two")
    # the name alone, or name:token, is not a token
    for wrong in ("olga", "olga:ops-one"):
        assert client.get("/v1/failed", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401


def test_session_lives_in_redis_and_the_cookie_holds_only_its_id(make_app, redis_client) -> None:  # type: ignore[no-untyped-def]
    app = make_app(ADMIN_TOKENS="anna:admin-secret-1", PUBLIC_URL="https://hub.example.com")
    client = app.test_client()
    answer = sign_in(client, "admin-secret-1")
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/overview"
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if c.startswith("hub_console="))
    for flag in ("HttpOnly", "SameSite=Strict", "Secure", "Max-Age=28800", "Path=/console"):
        assert flag in cookie
    session_id = cookie.split(";")[0].split("=", 1)[1]
    assert "admin-secret-1" not in cookie
    keys = redis_client.keys("hub:console:session:*")
    assert len(keys) == 1 and session_id not in keys[0].decode()     # stored under a hash of the id
    stored = json.loads(redis_client.get(keys[0]))
    assert stored["name"] == "anna" and stored["role"] == "admin"
    assert "admin-secret-1" not in json.dumps(stored)
    assert 28000 < redis_client.ttl(keys[0]) <= 28800
    assert client.get("/console/overview").status_code == 200
    # sign-out ends the session on the server
    page = client.get("/console/overview")
    assert client.post("/console/sign-out", data={"csrf": csrf(page.text)}).status_code == 302
    assert not redis_client.keys("hub:console:session:*")
    assert client.get("/console/overview").status_code == 302


def test_plain_http_cookie_is_not_secure(make_app) -> None:  # type: ignore[no-untyped-def]
    answer = sign_in(make_app().test_client(), "ops-token")
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if c.startswith("hub_console="))
    assert "Secure" not in cookie and "HttpOnly" in cookie


def test_wrong_token_and_missing_csrf_are_refused(make_app, redis_client) -> None:  # type: ignore[no-untyped-def]
    client = make_app().test_client()
    answer = sign_in(client, "ingest-token")         # a valid token, but not admin or ops
    assert answer.status_code == 401 and "not an admin or ops token" in answer.text
    answer = client.post("/console/sign-in", data={"token": "admin-token"})
    assert answer.status_code == 400 and "security token" in answer.text
    assert not redis_client.keys("hub:console:session:*")
    assert sign_in(client, "admin-token").status_code == 302
    assert client.post("/console/sign-out", data={"csrf": "forged"}).status_code == 400


def test_removing_a_token_ends_its_sessions(make_app) -> None:  # type: ignore[no-untyped-def]
    first = make_app(OPS_TOKENS="olga:old-ops-token")
    client = first.test_client()
    assert sign_in(client, "old-ops-token").status_code == 302
    assert client.get("/console/overview").status_code == 200
    rotated = make_app(OPS_TOKENS="olga:new-ops-token").test_client()
    rotated.set_cookie("hub_console", client.get_cookie("hub_console", path="/console").value, path="/console")
    assert rotated.get("/console/overview").status_code == 302


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/console", "/v1/failed"])
def test_sign_in_never_redirects_off_the_console(make_app, target: str) -> None:  # type: ignore[no-untyped-def]
    client = make_app().test_client()
    page = client.get("/console/sign-in")
    answer = client.post("/console/sign-in", data={"token": "ops-token", "csrf": csrf(page.text), "next": target})
    assert answer.headers["Location"] == "/console/overview"


def signed_in(app, token: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert sign_in(client, token).status_code == 302
    return client


def test_retry_all_matching_confirms_the_count_then_retries_only_those(make_app, redis_client) -> None:  # type: ignore[no-untyped-def]
    from rq.registry import FailedJobRegistry

    from connectors.errors import FatalVendorError
    from hub.core import sync
    from hub.core.queue import get_queues

    app = make_app(KLAVIYO_API_KEY="pk_x", KLAVIYO_BASE_URL="http://127.0.0.1:9/klaviyo",
                   OMETRIA_API_KEY="om_x", OMETRIA_BASE_URL="http://127.0.0.1:9/ometria")
    with app.app_context():
        for n in range(3):
            sync.record_failure("klaviyo", [f"k{n}@example.com"], FatalVendorError("invalid", status=400, code="invalid"))
        sync.record_failure("ometria", ["o@example.com"], FatalVendorError("invalid", status=400, code="invalid"))
    client = signed_in(app, "ops-token")
    page = client.get("/console/failed?connector=klaviyo")
    assert "3 matching" in page.text
    form = {"csrf": csrf(page.text), "action": "retry", "scope": "matching", "connector": "klaviyo"}
    confirm = client.post("/console/failed/action", data=form)
    assert confirm.status_code == 200 and "Retry 3 failed syncs?" in confirm.text
    done = client.post("/console/failed/action", data={**form, "confirmed": "yes"})
    assert done.status_code == 302 and "retried+3" in done.headers["Location"]
    with app.app_context():
        assert FailedJobRegistry(queue=get_queues().get("klaviyo")).count == 0
        assert FailedJobRegistry(queue=get_queues().get("ometria")).count == 1
        assert get_queues().get("klaviyo").count == 3          # back on the queue, to push the current state
    # a bad filter is named, not guessed
    answer = client.post("/console/failed/action", data={**form, "since": "yesterday"})
    assert answer.status_code == 400 and "since must be ISO 8601" in answer.text


def test_erase_needs_admin_and_the_address_typed_again(make_app, redis_client) -> None:  # type: ignore[no-untyped-def]
    app = make_app(ADMIN_TOKENS="carla:admin-secret-2")
    event = {"id": "e1", "type": "referrer.enrolled", "occurred_at": "2026-11-20T10:00:00Z",
             "referrer": {"email": "anna@example.com"}}
    assert app.test_client().post("/v1/events", json={"events": [event]},
                                  headers={"Authorization": "Bearer ingest-token"}).status_code == 202
    ops = signed_in(app, "ops-token")
    page = ops.get("/console/contacts/anna@example.com")
    assert page.status_code == 200 and 'id="erase"' not in page.text
    answer = ops.post("/console/contacts/anna@example.com/erase",
                      data={"csrf": csrf(page.text), "confirm_email": "anna@example.com"})
    assert answer.status_code == 403
    admin = signed_in(app, "admin-secret-2")
    page = admin.get("/console/contacts/anna@example.com")
    assert 'id="erase"' in page.text
    answer = admin.post("/console/contacts/anna@example.com/erase",
                        data={"csrf": csrf(page.text), "confirm_email": "ann@example.com"})
    assert answer.status_code == 302 and "type+the+contact" in answer.headers["Location"]
    assert admin.get("/console/contacts/anna@example.com").status_code == 200     # still there
    answer = admin.post("/console/contacts/anna@example.com/erase",
                        data={"csrf": csrf(page.text), "confirm_email": " Anna@Example.com "})
    assert answer.status_code == 302
    gone = admin.get("/console/contacts/anna@example.com")
    assert gone.status_code == 404 and "erased" in gone.text
    assert not redis_client.exists("hub:tl:anna@example.com")

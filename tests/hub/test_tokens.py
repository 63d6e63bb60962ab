"""Access tokens shared through Redis: one token call for every connector built with the same
credentials, refetched near expiry or after a 401, missed on a credential change, never stored in clear."""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any, Callable

import pytest
import responses

from connectors.base import Connector
from connectors.emarsys import AUTH_URL, EmarsysConnector
from connectors.salesforce import SalesforceConnector
from connectors.splio import SplioConnector
from connectors.tokens import TokenCache
from hub.core import keys
from hub.core.tokens import RedisTokenStore

NOW = 1_790_000_000.0
SF_LOGIN = "https://login.salesforce.com/services/oauth2/token"
SF_INSTANCE = "https://acme.my.salesforce.com"
SPLIO = "https://api.splio.test"


@dataclass
class Vendor:
    """How one vendor hands out tokens and answers the call the tests make (its field listing)."""

    name: str
    build: Callable[..., Connector]
    secret: str                               # the setting a credential change alters
    token_url: str
    token_answer: Callable[[str], dict[str, Any]]
    lifetime: float                           # what the vendor's answer (or docs) give the token
    data_url: str
    data_answer: dict[str, Any]
    refused: dict[str, Any]                   # the vendor's 401 for an expired or revoked token

    def settings(self, **changes: str) -> dict[str, str]:
        base = {"emarsys": {"client_id": "cid", "client_secret": "em-client-secret"},
                "salesforce": {"client_id": "cid", "client_secret": "sf-client-secret", "refresh_token": "sf-refresh"},
                "splio": {"api_key": "splio-api-key", "base_url": SPLIO}}[self.name]
        return {**base, **changes}


VENDORS = [
    Vendor("emarsys", EmarsysConnector, "client_secret", AUTH_URL,
           lambda t: {"access_token": t, "token_type": "bearer", "expires_in": 3600}, 3600,
           "https://api.emarsys.net/api/v3/field/translate/en", {"replyCode": 0, "data": []},
           {"replyCode": 1, "replyText": "Unauthorized"}),
    Vendor("salesforce", SalesforceConnector, "client_secret", SF_LOGIN,
           lambda t: {"access_token": t, "instance_url": SF_INSTANCE, "token_type": "Bearer", "scope": "api"},
           2 * 3600, f"{SF_INSTANCE}/services/data/v62.0/sobjects/Contact/describe", {"fields": []},
           [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]),
    Vendor("splio", SplioConnector, "api_key", f"{SPLIO}/authenticate", lambda t: {"token": t}, 24 * 3600,
           f"{SPLIO}/data/fields/contacts", {"count_element": 0, "elements": []},
           {"code": 401, "description": "Authentication failed"}),
]


@pytest.fixture(params=VENDORS, ids=lambda v: v.name)
def vendor(request: pytest.FixtureRequest) -> Vendor:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def store(redis_client) -> RedisTokenStore:  # type: ignore[no-untyped-def]
    return RedisTokenStore(redis_client)


def build(vendor: Vendor, store: RedisTokenStore | None, at: float = NOW, **changes: str) -> Connector:
    client = vendor.build(vendor.settings(**changes), tokens=store, sleep=lambda s: None)
    client.clock = lambda: at
    return client


def tokens_issued(vendor: Vendor, *values: str) -> responses.BaseResponse:
    """The token endpoint hands out `values` in turn."""
    answers = [vendor.token_answer(v) for v in values]
    return responses.add_callback(responses.POST, vendor.token_url,
                                  callback=lambda request: (200, {}, json.dumps(answers.pop(0))))


def bearers(url: str) -> list[str]:
    return [c.request.headers.get("Authorization", "") for c in responses.calls if c.request.url.startswith(url)]


@responses.activate
def test_two_connectors_sharing_the_store_make_one_token_call(vendor: Vendor, store: RedisTokenStore) -> None:
    issued = tokens_issued(vendor, "tok-1")
    responses.get(vendor.data_url, json=vendor.data_answer)
    build(vendor, store).fields()
    build(vendor, store).fields()
    assert issued.call_count == 1
    assert bearers(vendor.data_url) == ["Bearer tok-1", "Bearer tok-1"]


@responses.activate
def test_without_a_store_each_connector_fetches_its_own(vendor: Vendor) -> None:
    issued = tokens_issued(vendor, "tok-1", "tok-2")
    responses.get(vendor.data_url, json=vendor.data_answer)
    first = build(vendor, None)
    first.fields()
    first.fields()
    build(vendor, None).fields()
    assert issued.call_count == 2
    assert bearers(vendor.data_url) == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


@responses.activate
def test_the_redis_entry_expires_before_the_token(vendor: Vendor, store: RedisTokenStore, redis_client) -> None:  # type: ignore[no-untyped-def]
    tokens_issued(vendor, "tok-1")
    responses.get(vendor.data_url, json=vendor.data_answer)
    build(vendor, store).fields()
    ttl = redis_client.pttl(keys.TOKEN.format(vendor.name)) / 1000
    assert 0 < ttl <= vendor.lifetime - TokenCache.margin(vendor.lifetime) <= vendor.lifetime - 60


@responses.activate
def test_a_token_near_its_expiry_is_fetched_again(vendor: Vendor, store: RedisTokenStore) -> None:
    issued = tokens_issued(vendor, "tok-1", "tok-2")
    responses.get(vendor.data_url, json=vendor.data_answer)
    build(vendor, store).fields()
    build(vendor, store, at=NOW + vendor.lifetime - 600).fields()      # ten minutes left: reused
    build(vendor, store, at=NOW + vendor.lifetime - 60).fields()       # one minute left: fetched again
    assert issued.call_count == 2
    assert bearers(vendor.data_url) == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


@responses.activate
def test_a_401_drops_the_shared_token_and_the_next_connector_uses_the_new_one(
        vendor: Vendor, store: RedisTokenStore) -> None:
    issued = tokens_issued(vendor, "tok-1", "tok-2")
    responses.get(vendor.data_url, json=vendor.data_answer)
    build(vendor, store).fields()
    responses.replace(responses.GET, vendor.data_url, json=vendor.refused, status=401)
    responses.add(responses.GET, vendor.data_url, json=vendor.data_answer)     # revoked: refused once
    build(vendor, store).fields()
    build(vendor, store).fields()
    assert issued.call_count == 2
    assert bearers(vendor.data_url) == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2", "Bearer tok-2"]


@responses.activate
def test_a_drop_keeps_a_fresher_token_another_job_stored(vendor: Vendor, store: RedisTokenStore) -> None:
    issued = tokens_issued(vendor, "tok-1", "tok-2")
    responses.get(vendor.data_url, json=vendor.data_answer)
    stale = build(vendor, store)
    stale.fields()                                     # holds tok-1
    store.redis.delete(keys.TOKEN.format(vendor.name))
    build(vendor, store).fields()                      # another job stored tok-2
    stale.token_cache.drop()                           # refused with tok-1: tok-2 stays
    build(vendor, store).fields()
    assert issued.call_count == 2
    assert bearers(vendor.data_url)[-1] == "Bearer tok-2"


@responses.activate
def test_a_changed_credential_misses_the_cache(vendor: Vendor, store: RedisTokenStore) -> None:
    issued = tokens_issued(vendor, "tok-1", "tok-2")
    responses.get(vendor.data_url, json=vendor.data_answer)
    build(vendor, store).fields()
    build(vendor, store, **{vendor.secret: "a-new-credential"}).fields()
    assert issued.call_count == 2
    assert bearers(vendor.data_url) == ["Bearer tok-1", "Bearer tok-2"]


@responses.activate
def test_the_stored_value_holds_neither_the_token_nor_the_credential_in_clear(
        vendor: Vendor, store: RedisTokenStore, redis_client) -> None:  # type: ignore[no-untyped-def]
    token = "tok-plain-" + "x" * 40
    tokens_issued(vendor, token)
    responses.get(vendor.data_url, json=vendor.data_answer)
    client = build(vendor, store)
    client.fields()
    raw = redis_client.get(keys.TOKEN.format(vendor.name))
    assert raw
    secret = vendor.settings()[vendor.secret]
    for clear in (token, secret):
        assert clear.encode() not in raw
        assert base64.b64encode(clear.encode()) not in raw and base64.urlsafe_b64encode(clear.encode()) not in raw
    assert token not in repr(client.token_cache)
    assert client.token_cache.fernet.decrypt(raw)   # readable with the credentials' key


@responses.activate
def test_the_hub_builds_every_flush_connector_on_the_shared_store(make_app) -> None:  # type: ignore[no-untyped-def]
    from hub.core import sync

    vendor = VENDORS[2]
    issued = tokens_issued(vendor, "tok-1", "tok-2")
    responses.get(vendor.data_url, json=vendor.data_answer)
    app = make_app(SPLIO_API_KEY="splio-api-key", SPLIO_BASE_URL=SPLIO)
    with app.app_context():
        sync.build_connector("splio").fields()
        sync.build_connector("splio").fields()
    assert issued.call_count == 1


@responses.activate
def test_a_connector_check_logs_in_itself_rather_than_reuse_the_shared_token(make_app) -> None:  # type: ignore[no-untyped-def]
    from hub.core import admin, sync

    vendor = VENDORS[1]
    issued = tokens_issued(vendor, "tok-1", "tok-2")
    responses.get(re.compile(re.escape(SF_INSTANCE) + "/.*"), json={})
    app = make_app(SALESFORCE_CLIENT_ID="cid", SALESFORCE_CLIENT_SECRET="sf-client-secret",
                   SALESFORCE_REFRESH_TOKEN="sf-refresh")
    with app.app_context():
        sync.build_connector("salesforce").fields()
        answer = admin.connector_check("salesforce")
    assert "error" not in answer
    assert issued.call_count == 2
    assert bearers(SF_INSTANCE)[-1] == "Bearer tok-2"

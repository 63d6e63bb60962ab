"""The Emarsys connector against the Emarsys sandbox over real HTTP."""
from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
import requests

from connectors.base import MARKETING, TRANSACTIONAL, ContactUpdate
from connectors.emarsys import EmarsysConnector
from connectors.errors import AuthError, FatalVendorError, RateLimited
from connectors.ratelimit import RateLimiter
from sandbox import emarsys as emulation
from tests.conftest import LiveServer


def make(server: LiveServer, redis_client: Any, **settings: str) -> EmarsysConnector:
    settings = settings or {"username": emulation.USERNAME, "secret": emulation.SECRET}
    return EmarsysConnector({**settings, "base_url": f"{server.url}/emarsys"},
                            limiter=RateLimiter(redis_client, "sandbox-test"))


@pytest.fixture
def connector(server: LiveServer, redis_client: Any) -> EmarsysConnector:
    return make(server, redis_client)


def held(server: LiveServer, email: str) -> dict[str, Any]:
    response = requests.get(f"{server.url}/_sandbox/emarsys/contacts/{email}", timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def batch() -> list[ContactUpdate]:
    return [
        ContactUpdate(email="anna@example.com", identity={"3": "anna@example.com"},
                      fields={"1": "Anna", "12001": 2, "12002": 2, "12003": 1, "12004": "ref-anna",
                              "12005": Decimal("59.90")}),
        ContactUpdate(email="bob@example.com", identity={"3": "bob@example.com"},
                      fields={"1": "Bob", "12007": "ref-anna", "12008": "ANNA-20"},
                      lists={"740001": MARKETING}, marketing_consent=True),
        ContactUpdate(email="cat@example.com", identity={"3": "cat@example.com"},
                      fields={"12007": "ref-anna", "12010": "2026-11-21"},
                      lists={"740002": TRANSACTIONAL}, marketing_consent=False),
    ]


def test_push_withdraw_and_erase_round_trip(server: LiveServer, connector: EmarsysConnector) -> None:
    assert connector.push(batch()).failed == {}

    anna = held(server, "anna@example.com")
    assert anna["fields"] == {"1": "Anna", "3": "anna@example.com", "12001": 2, "12002": 2, "12003": 1,
                              "12004": "ref-anna", "12005": "59.90"}
    assert anna["lists"] == [] and anna["marketing_consent"] is None and anna["deleted"] is False
    bob = held(server, "bob@example.com")
    assert bob["fields"]["31"] == 1 and bob["lists"] == ["740001"] and bob["marketing_consent"] is True
    cat = held(server, "cat@example.com")
    assert "31" not in cat["fields"] and cat["lists"] == ["740002"] and cat["marketing_consent"] is None

    withdrawn = ContactUpdate(email="bob@example.com", identity={"3": "bob@example.com"}, marketing_consent=False,
                              previous_lists={"740001": MARKETING}, previous_consent=True)
    assert connector.push([withdrawn]).failed == {}
    bob = held(server, "bob@example.com")
    assert bob["fields"]["31"] == 2 and bob["lists"] == [] and bob["marketing_consent"] is False

    assert connector.erase(["anna@example.com", "nobody@example.com"]).failed == {}
    assert held(server, "anna@example.com")["deleted"] is True
    assert connector.erase(["anna@example.com"]).failed == {}        # erasing twice is harmless


def test_invalid_email_and_unknown_field_fail_alone(server: LiveServer, connector: EmarsysConnector) -> None:
    updates = batch()[:2] + [
        ContactUpdate(email="reject-dan@example.com", identity={"3": "reject-dan@example.com"},
                      lists={"740001": MARKETING}, marketing_consent=True),
        ContactUpdate(email="eve@example.com", identity={"3": "eve@example.com"}, fields={"99999": "x"})]
    result = connector.push(updates)
    assert set(result.failed) == {"reject-dan@example.com", "eve@example.com"}
    assert result.failed["reject-dan@example.com"].code == "2005"
    assert result.failed["eve@example.com"].code == "2007"
    assert held(server, "bob@example.com")["lists"] == ["740001"]
    assert requests.get(f"{server.url}/_sandbox/emarsys/contacts/eve@example.com", timeout=5).status_code == 404


def test_wrong_secret_and_skewed_clock_are_refused(server: LiveServer, redis_client: Any) -> None:
    with pytest.raises(AuthError) as raised:
        make(server, redis_client, username=emulation.USERNAME, secret="not-the-secret").check()
    assert raised.value.status == 401 and raised.value.code == "1" and "not-the-secret" not in str(raised.value)
    skewed = make(server, redis_client)
    skewed.clock = lambda: time.time() - 600
    with pytest.raises(AuthError):
        skewed.check()


def test_oauth_credentials_work_on_v3(server: LiveServer, redis_client: Any) -> None:
    oauth = make(server, redis_client, client_id=emulation.CLIENT_ID, client_secret=emulation.CLIENT_SECRET)
    assert oauth.check()["auth"] == "oauth2"
    assert oauth.push(batch()[1:2]).failed == {}
    assert held(server, "bob@example.com")["lists"] == ["740001"]
    with pytest.raises(AuthError):
        make(server, redis_client, client_id=emulation.CLIENT_ID, client_secret="wrong").check()


def test_batch_limit_and_rate_limit(server: LiveServer, connector: EmarsysConnector) -> None:
    too_many = {"key_id": "3", "contacts": [{"3": f"p{i}@example.com"} for i in range(1001)]}
    with pytest.raises(FatalVendorError) as raised:
        connector.send("PUT", "/api/v2/contact/?create_if_not_exists=1", too_many)
    assert raised.value.status == 400 and raised.value.code == "1000"

    store = server.app.extensions["sandbox"]
    count, period = emulation.LIMIT[0]
    store.windows[f"emarsys:api:{count}/{period}"] = (int(time.time() // period), count)
    connector.max_inline_wait = 0.0
    with pytest.raises(RateLimited) as limited:
        connector.check()
    assert limited.value.status == 429 and 0.0 <= limited.value.retry_after <= period + 1


def test_fields_come_from_the_demo_account(connector: EmarsysConnector) -> None:
    fields = {f["id"]: f for f in connector.fields()}
    assert fields["12001"] == {"name": "Referral invites sent", "id": "12001", "type": "numeric"}
    assert fields["31"]["type"] == "singlechoice"


def test_both_credential_sets_use_oauth_on_v3(server: LiveServer, redis_client: Any) -> None:
    both = make(server, redis_client, username=emulation.USERNAME, secret=emulation.SECRET,
                client_id=emulation.CLIENT_ID, client_secret=emulation.CLIENT_SECRET)
    assert both.check()["auth"] == "oauth2"
    assert both.push(batch()).failed == {}
    paths = [r["path"] for r in requests.get(f"{server.url}/_sandbox/requests", params={"vendor": "emarsys"},
                                             timeout=5).json()["requests"]]
    assert paths[0] == "/emarsys/oauth2/token" and all("/api/v3/" in p for p in paths[1:]), paths


def test_an_opt_out_made_in_emarsys_survives_stats_and_list_changes(server: LiveServer,
                                                                    connector: EmarsysConnector) -> None:
    assert connector.push(batch()[1:2]).failed == {}
    # Bob opts out inside Emarsys (field 31 = 2, False); the hub still holds his consent as given.
    connector.send("PUT", "/api/v2/contact/", {"key_id": "3", "contacts": [{"3": "bob@example.com", "31": 2}]})
    later = ContactUpdate(email="bob@example.com", identity={"3": "bob@example.com"}, fields={"12008": "BOB-5"},
                          lists={"740001": MARKETING, "740002": MARKETING}, marketing_consent=True,
                          previous_lists={"740001": MARKETING}, previous_consent=True)
    assert connector.push([later]).failed == {}
    bob = held(server, "bob@example.com")
    assert bob["fields"]["31"] == 2 and bob["marketing_consent"] is False and bob["fields"]["12008"] == "BOB-5"


def test_check_probes_every_endpoint_and_names_a_missing_permission(server: LiveServer,
                                                                    connector: EmarsysConnector) -> None:
    report = connector.check()
    assert report["ok"] is True and report["missing"] == [] and len(report["permissions"]) == 5
    requests.post(f"{server.url}/_sandbox/faults", json={"vendor": "emarsys", "status": 403,
                                                         "path": "/emarsys/api/v2/contact/delete"}, timeout=5)
    report = connector.check()
    assert report["ok"] is False and report["missing"] == ["POST contact/delete"]
    # The probes wrote nothing.
    assert requests.get(f"{server.url}/_sandbox/emarsys/contacts", timeout=5).json() == {}

"""The Salesforce connector against the Salesforce sandbox over real HTTP."""
from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, Iterator

import pytest
import requests

from connectors.base import MARKETING, TRANSACTIONAL, ContactUpdate
from connectors.errors import AuthError, FatalVendorError, RateLimited
from connectors.ratelimit import RateLimiter
from connectors.salesforce import PLACEHOLDER_LAST_NAME, SalesforceConnector
from sandbox import VENDORS, create_sandbox
from sandbox import salesforce as emulation
from tests.conftest import LiveServer

MKT, TXN = "701Rf000000Mkt1AAA", "701Rf000000Txn1AAA"
EXT = "Referral_Hub_Email__c"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    # Until sandbox/__init__.py lists Salesforce, add it here so create_sandbox() mounts it at /salesforce.
    if "salesforce" not in VENDORS:
        monkeypatch.setitem(VENDORS, "salesforce", emulation)
    live = LiveServer(create_sandbox())
    yield live
    live.stop()


def make(server: LiveServer, redis_client: Any, **settings: str) -> SalesforceConnector:
    base = {"client_id": emulation.CLIENT_ID, "client_secret": emulation.CLIENT_SECRET,
            "refresh_token": emulation.REFRESH_TOKEN}
    return SalesforceConnector({**base, **settings, "base_url": f"{server.url}/salesforce"},
                               limiter=RateLimiter(redis_client, "sandbox-test"))


@pytest.fixture
def connector(server: LiveServer, redis_client: Any) -> SalesforceConnector:
    return make(server, redis_client)


def held(server: LiveServer, email: str) -> dict[str, Any]:
    response = requests.get(f"{server.url}/_sandbox/salesforce/contacts/{email}", timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def contact(email: str, **kw: Any) -> ContactUpdate:
    return ContactUpdate(email=email, identity={EXT: email}, **kw)


def batch() -> list[ContactUpdate]:
    return [
        contact("anna@example.com", fields={"Email": "anna@example.com", "FirstName": "Anna", "LastName": "Smith",
                                            "Referral_Friends_Invited__c": 2, "Referral_Friends_Converted__c": 1,
                                            "Referral_Turnover__c": Decimal("59.90")}),
        contact("bob@example.com", fields={"Email": "bob@example.com", "Referral_Promo_Code__c": "ANNA-20"},
                lists={MKT: MARKETING}, marketing_consent=True),
        contact("cat@example.com", fields={"Email": "cat@example.com", "LastName": "Jones"},
                lists={TXN: TRANSACTIONAL}, marketing_consent=False),
    ]


def test_push_withdraw_and_erase_round_trip(server: LiveServer, connector: SalesforceConnector) -> None:
    assert connector.push(batch()).failed == {}

    anna = held(server, "anna@example.com")
    assert anna["fields"] == {"Email": "anna@example.com", "FirstName": "Anna", "LastName": "Smith",
                              "Referral_Friends_Invited__c": 2, "Referral_Friends_Converted__c": 1,
                              "Referral_Turnover__c": 59.9, EXT: "anna@example.com"}
    assert anna["lists"] == [] and anna["marketing_consent"] is None and anna["deleted"] is False
    bob = held(server, "bob@example.com")
    assert bob["fields"]["LastName"] == PLACEHOLDER_LAST_NAME and bob["fields"]["HasOptedOutOfEmail"] is False
    assert bob["lists"] == [MKT] and bob["marketing_consent"] is True
    cat = held(server, "cat@example.com")
    assert "HasOptedOutOfEmail" not in cat["fields"] and cat["lists"] == [TXN] and cat["marketing_consent"] is None

    # Pushing again (e.g. a retried job) is harmless: upsert updates, membership DUPLICATE_VALUE is success.
    assert connector.push(batch()).failed == {}
    withdrawn = contact("bob@example.com", marketing_consent=False, lists={},
                        previous_lists={MKT: MARKETING}, previous_consent=True)
    assert connector.push([withdrawn]).failed == {}
    bob = held(server, "bob@example.com")
    assert bob["fields"]["HasOptedOutOfEmail"] is True and bob["marketing_consent"] is False

    assert connector.erase(["anna@example.com", "bob@example.com", "nobody@example.com"]).failed == {}
    assert held(server, "anna@example.com")["deleted"] is True and held(server, "bob@example.com")["deleted"] is True
    assert held(server, "cat@example.com")["deleted"] is False


def test_invalid_email_fails_alone(server: LiveServer, connector: SalesforceConnector) -> None:
    reject = contact("reject-dan@example.com", fields={"Email": "reject-dan@example.com"},
                     lists={MKT: MARKETING}, marketing_consent=True)
    result = connector.push([*batch()[:2], reject])
    assert set(result.failed) == {"reject-dan@example.com"}
    assert result.failed["reject-dan@example.com"].code == "INVALID_EMAIL_ADDRESS"
    assert held(server, "bob@example.com")["lists"] == [MKT]


def test_unknown_field_and_oversized_batch_are_refused(connector: SalesforceConnector) -> None:
    with pytest.raises(FatalVendorError) as raised:
        connector.push([contact("anna@example.com", fields={"Nope__c": 1})])
    assert raised.value.code == "INVALID_FIELD" and raised.value.status == 400
    too_many = {"allOrNone": False, "records": [{"attributes": {"type": "Contact"}, EXT: f"p{i}@example.com",
                                                 "LastName": "X"} for i in range(201)]}
    with pytest.raises(FatalVendorError) as raised:
        connector.send("PATCH", f"{connector.api}/composite/sobjects/Contact/{EXT}", too_many)
    assert raised.value.code == "EXCEEDED_ID_LIMIT" and raised.value.status == 400


def test_expired_session_is_renewed_once(server: LiveServer, connector: SalesforceConnector) -> None:
    assert connector.check()["instance_url"] == f"{server.url}/salesforce"
    server.app.extensions["sandbox"].jobs["salesforce:sessions"].clear()       # every session expires
    assert connector.push(batch()[:1]).failed == {}
    assert server.app.extensions["sandbox"].stats["salesforce POST oauth2/token"] == 2


def test_jwt_and_client_credentials_grants(server: LiveServer, redis_client: Any) -> None:
    jwt_connector = make(server, redis_client, grant="jwt", username=emulation.USERNAME,
                         private_key=emulation.DEMO_PRIVATE_KEY)
    assert jwt_connector.check()["ok"] is True
    assert make(server, redis_client, grant="client_credentials").push(batch()[:1]).failed == {}
    with pytest.raises(AuthError) as raised:
        make(server, redis_client, grant="jwt", username="someone@else.example",
             private_key=emulation.DEMO_PRIVATE_KEY).check()
    assert raised.value.code == "invalid_grant"


def test_wrong_client_secret_is_refused(server: LiveServer, redis_client: Any) -> None:
    with pytest.raises(AuthError) as raised:
        make(server, redis_client, client_secret="not-it").check()
    assert raised.value.code == "invalid_client" and "not-it" not in str(raised.value)


def test_spent_allocation_is_rate_limited_for_long(server: LiveServer, connector: SalesforceConnector) -> None:
    assert connector.check()["daily_api_requests"]["max"] == emulation.DAILY_REQUESTS
    assert connector.usage is not None and connector.usage[1] == emulation.DAILY_REQUESTS
    windows = server.app.extensions["sandbox"].windows
    spent = (int(time.time() // 86400), emulation.DAILY_REQUESTS)
    windows[f"salesforce:daily:{emulation.DAILY_REQUESTS}/86400.0"] = spent
    with pytest.raises(RateLimited) as raised:
        connector.push(batch()[:1])
    assert raised.value.code == "REQUEST_LIMIT_EXCEEDED" and raised.value.retry_after == 3600.0


def test_fields_come_from_describe(connector: SalesforceConnector) -> None:
    fields = {f["name"]: f["type"] for f in connector.fields()}
    assert fields["Referral_Friends_Invited__c"] == "double" and fields[EXT] == "email"
    assert "LastName" not in fields

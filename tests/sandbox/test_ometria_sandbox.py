"""The Ometria connector against the Ometria sandbox over real HTTP."""
from __future__ import annotations

from typing import Any

import pytest
import requests

from connectors.base import MARKETING, TRANSACTIONAL, ContactUpdate
from connectors.errors import AuthError
from connectors.ometria import OmetriaConnector
from connectors.ratelimit import RateLimiter
from sandbox import ometria as emulation
from tests.conftest import LiveServer


@pytest.fixture
def connector(server: LiveServer, redis_client) -> OmetriaConnector:  # type: ignore[no-untyped-def]
    return OmetriaConnector({"api_key": emulation.API_KEY, "base_url": f"{server.url}/ometria"},
                            limiter=RateLimiter(redis_client, "sandbox-test"))


def held(server: LiveServer, email: str) -> dict[str, Any]:
    response = requests.get(f"{server.url}/_sandbox/ometria/contacts/{email}", timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def batch() -> list[ContactUpdate]:
    return [
        ContactUpdate(email="anna@example.com", identity={"id": "c-anna"},
                      fields={"firstname": "Anna", "friends_invited": 2, "friends_converted": 1,
                              "referral_turnover": 59.9}),
        ContactUpdate(email="bob@example.com", identity={"id": "c-bob"}, fields={"referred_by": "c-anna"},
                      lists={"8400": MARKETING}, marketing_consent=True),
        ContactUpdate(email="cat@example.com", identity={"id": "c-cat"}, fields={"promo_code": "ANNA-20"},
                      lists={"8401": TRANSACTIONAL}, marketing_consent=False),
    ]


def test_push_withdraw_and_erase_round_trip(server: LiveServer, connector: OmetriaConnector) -> None:
    assert connector.push(batch()).failed == {}

    anna = held(server, "anna@example.com")
    assert anna["fields"] == {"id": "c-anna", "@collection": "referral_hub", "firstname": "Anna",
                              "friends_invited": 2, "friends_converted": 1, "referral_turnover": 59.9}
    assert anna["lists"] == [] and anna["marketing_consent"] is None
    bob = held(server, "bob@example.com")
    assert bob["lists"] == ["8400"] and bob["marketing_consent"] is True
    assert bob["fields"]["timestamp_subscribed"]
    cat = held(server, "cat@example.com")
    assert cat["lists"] == ["8401"] and cat["marketing_consent"] is None
    assert cat["fields"]["promo_code"] == "ANNA-20"

    withdrawn = ContactUpdate(email="bob@example.com", identity={"id": "c-bob"}, marketing_consent=False,
                              previous_lists={"8400": MARKETING}, previous_consent=True)
    assert connector.push([withdrawn]).failed == {}
    bob = held(server, "bob@example.com")
    assert bob["lists"] == [] and bob["marketing_consent"] is False

    assert connector.erase(["anna@example.com", "bob@example.com"]).failed == {}
    assert held(server, "anna@example.com")["deleted"] is True
    assert held(server, "bob@example.com")["deleted"] is True
    assert held(server, "cat@example.com")["deleted"] is False


def test_rejected_record_fails_alone(server: LiveServer, connector: OmetriaConnector) -> None:
    bad = ContactUpdate(email="reject-me@example.com", identity={"id": "c-bad"})
    result = connector.push([*batch(), bad])
    assert list(result.failed) == ["reject-me@example.com"]
    assert "invalid email" in result.failed["reject-me@example.com"].message
    assert requests.get(f"{server.url}/_sandbox/ometria/contacts/reject-me@example.com", timeout=5).status_code == 404
    assert held(server, "anna@example.com")["deleted"] is False


def test_wrong_key_is_refused_with_403(server: LiveServer) -> None:
    wrong = OmetriaConnector({"api_key": "not-the-key", "base_url": f"{server.url}/ometria"})
    with pytest.raises(AuthError) as info:
        wrong.check()
    assert info.value.status == 403 and "not-the-key" not in str(info.value)


def test_check_passes_with_the_demo_key(connector: OmetriaConnector) -> None:
    assert connector.check()["ok"] is True


def test_sandbox_limits_batch_size_and_gdpr_rate(server: LiveServer) -> None:
    http = requests.Session()
    http.headers["X-Ometria-Auth"] = emulation.API_KEY
    records = [{"@type": "contact", "id": f"c{i}", "email": f"p{i}@example.com"} for i in range(101)]
    assert http.post(f"{server.url}/ometria/v2/push", json=records, timeout=5).status_code == 400
    # 6/min in fixed windows: 13 calls inside two windows must meet at least one 429.
    answers = [http.post(f"{server.url}/ometria/v2/data-deletion-requests", json={"email": "x@example.com"},
                         timeout=5) for _ in range(13)]
    http.close()
    refused = [a for a in answers if a.status_code == 429]
    assert refused and all("Retry-After" not in a.headers for a in refused)


def test_counts_only_answers_are_bisected_so_only_the_bad_record_fails(server: LiveServer,
                                                                       connector: OmetriaConnector) -> None:
    knob = requests.post(f"{server.url}/_sandbox/knobs", json={"modes": {"ometria": "counts_only"}}, timeout=5)
    assert knob.json()["modes"] == {"ometria": "counts_only"}
    reject = ContactUpdate(email="reject-zed@example.com", identity={"id": "c-zed"}, fields={"promo_code": "Z"})
    result = connector.push([*batch(), reject])
    assert list(result.failed) == ["reject-zed@example.com"]
    assert held(server, "bob@example.com")["lists"] == ["8400"]
    pushes = [r for r in requests.get(f"{server.url}/_sandbox/requests", params={"vendor": "ometria"},
                                      timeout=5).json()["requests"] if r["path"].endswith("/v2/push")]
    assert [len(p["body"]) for p in pushes] == [4, 2, 1], "the whole batch, then halves: 0-1 clean, 2 clean, so 3"
    answer = requests.post(f"{server.url}/ometria/v2/push", json=[{"@type": "contact", "id": "c-x",
                                                                  "email": "reject-x@example.com"}],
                           headers={"X-Ometria-Auth": emulation.API_KEY}, timeout=5).json()
    assert answer == {"success": True, "accepted": 0, "rejected": 1}


def test_check_names_an_endpoint_the_key_may_not_use(server: LiveServer, connector: OmetriaConnector) -> None:
    assert connector.check()["missing"] == []
    requests.post(f"{server.url}/_sandbox/faults", json={"vendor": "ometria", "status": 403, "body": {
        "status": 403, "message": "Forbidden"}, "path": "/ometria/v2/data-deletion-requests"}, timeout=5)
    report = connector.check()
    assert report["ok"] is False and report["missing"] == ["GET /v2/data-deletion-requests"]
    assert requests.get(f"{server.url}/_sandbox/ometria/contacts", timeout=5).json() == {}


def test_records_with_top_level_custom_fields_or_wrong_types_are_rejected(server: LiveServer) -> None:
    def push(**extra: Any) -> dict[str, Any]:
        record = {"@type": "contact", "@collection": "referral_hub", "id": "c-x", "email": "x@example.com", **extra}
        return requests.post(f"{server.url}/ometria/v2/push", json=[record], timeout=5,
                             headers={"X-Ometria-Auth": emulation.API_KEY}).json()

    assert push(friends_invited=2)["errors"][0]["message"].startswith("Payload invalid: unknown field 'friends_invited'")
    assert push(properties=[1])["rejected"] == 1
    assert push(marketing_optin=True)["rejected"] == 1
    assert push(**{"@add_to_lists": ["8400"]})["rejected"] == 1
    assert push(properties={"friends_invited": 2}, marketing_optin="NOT_SPECIFIED",
                **{"@add_to_lists": [8400]}) == {"success": True, "accepted": 1, "rejected": 0, "errors": []}

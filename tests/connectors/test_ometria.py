"""Ometria connector against mocked HTTP: exact push records, auth header, throttling, errors."""
from __future__ import annotations

import json

import pytest
import responses

from connectors.base import MARKETING, TRANSACTIONAL, ContactUpdate
from connectors.errors import AuthError, FatalVendorError, RateLimited, RetriableVendorError
from connectors.ometria import OmetriaConnector
from connectors.ratelimit import RateLimiter

BASE = "https://api.ometria.test"
KEY = "om-secret-key-123"
NOW = "2026-07-23T10:00:00Z"


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def connector(redis_client, waits) -> OmetriaConnector:  # type: ignore[no-untyped-def]
    c = OmetriaConnector({"api_key": KEY, "base_url": BASE}, limiter=RateLimiter(redis_client, "test"),
                         sleep=waits.append)
    c.now = lambda: NOW  # type: ignore[method-assign]
    return c


def referrer() -> ContactUpdate:
    return ContactUpdate(email="anna@example.com", identity={"id": "c-anna"},
                         fields={"firstname": "Anna", "customer_id": "cus_1", "friends_invited": 12,
                                 "referral_turnover": 349.9})


def opted_in_friend() -> ContactUpdate:
    return ContactUpdate(email="bob@example.com", identity={"id": "c-bob"}, fields={"promo_code": "ANNA-20"},
                         lists={"8400": MARKETING}, marketing_consent=True)


def customer_friend() -> ContactUpdate:
    return ContactUpdate(email="cat@example.com", identity={"id": "c-cat"}, lists={"8401": TRANSACTIONAL},
                         previous_lists={}, previous_consent=None)


def sent(call) -> object:  # type: ignore[no-untyped-def]
    return json.loads(call.request.body)


@responses.activate
def test_push_sends_exact_records_with_consent_and_lists(connector: OmetriaConnector) -> None:
    responses.post(f"{BASE}/v2/push", json={"success": True, "accepted": 3, "rejected": 0}, status=202)
    result = connector.push([referrer(), opted_in_friend(), customer_friend()])
    assert result.failed == {}
    assert len(responses.calls) == 1
    assert sent(responses.calls[0]) == [
        {"@type": "contact", "@collection": "referral_hub", "id": "c-anna", "email": "anna@example.com",
         "firstname": "Anna", "customer_id": "cus_1",
         "properties": {"friends_invited": 12, "referral_turnover": 349.9}},
        {"@type": "contact", "@collection": "referral_hub", "id": "c-bob", "email": "bob@example.com",
         "properties": {"promo_code": "ANNA-20"}, "marketing_optin": "EXPLICITLY_OPTEDIN",
         "timestamp_subscribed": NOW, "@add_to_lists": [8400]},
        # Transactional list: a plain add, no marketing_optin key at all.
        {"@type": "contact", "@collection": "referral_hub", "id": "c-cat", "email": "cat@example.com",
         "@add_to_lists": [8401]},
    ]


@responses.activate
def test_withdrawn_consent_opts_out_and_leaves_the_marketing_list(connector: OmetriaConnector) -> None:
    responses.post(f"{BASE}/v2/push", json={"success": True, "accepted": 1, "rejected": 0}, status=202)
    update = ContactUpdate(email="bob@example.com", identity={"id": "c-bob"}, lists={"8401": TRANSACTIONAL},
                           marketing_consent=False, previous_lists={"8400": MARKETING, "8401": TRANSACTIONAL},
                           previous_consent=True)
    connector.push([update])
    assert sent(responses.calls[0]) == [
        {"@type": "contact", "@collection": "referral_hub", "id": "c-bob", "email": "bob@example.com",
         "marketing_optin": "EXPLICITLY_OPTEDOUT", "timestamp_unsubscribed": NOW, "@remove_from_lists": [8400]}]


@responses.activate
def test_only_new_lists_are_added(connector: OmetriaConnector) -> None:
    responses.post(f"{BASE}/v2/push", json={"success": True, "accepted": 1, "rejected": 0}, status=202)
    update = ContactUpdate(email="bob@example.com", identity={"id": "c-bob"}, marketing_consent=True,
                           lists={"8400": MARKETING, "8401": TRANSACTIONAL},
                           previous_lists={"8400": MARKETING}, previous_consent=True)
    connector.push([update])
    assert sent(responses.calls[0]) == [
        {"@type": "contact", "@collection": "referral_hub", "id": "c-bob", "email": "bob@example.com",
         "@add_to_lists": [8401]}]


@responses.activate
def test_auth_header_and_403_pauses_without_leaking_the_key(connector: OmetriaConnector) -> None:
    responses.post(f"{BASE}/v2/push", json={"message": "Forbidden"}, status=403)
    with pytest.raises(AuthError) as info:
        connector.push([referrer()])
    headers = responses.calls[0].request.headers
    assert headers["X-Ometria-Auth"] == KEY
    assert headers["Content-Type"] == "application/json"
    assert KEY not in str(info.value) and info.value.status == 403


@responses.activate
def test_429_without_retry_after_waits_one_push_slot_then_succeeds(connector: OmetriaConnector,
                                                                    waits: list[float]) -> None:
    responses.post(f"{BASE}/v2/push", json={"message": "Too many requests"}, status=429)
    responses.post(f"{BASE}/v2/push", json={"success": True, "accepted": 1, "rejected": 0}, status=202)
    result = connector.push([referrer()])
    assert result.failed == {} and len(responses.calls) == 2
    assert waits == [1.0]


@responses.activate
def test_429_honours_retry_after_when_present(connector: OmetriaConnector, waits: list[float]) -> None:
    responses.post(f"{BASE}/v2/push", status=429, headers={"Retry-After": "3"})
    responses.post(f"{BASE}/v2/push", json={"success": True, "accepted": 1, "rejected": 0}, status=202)
    connector.push([referrer()])
    assert waits == [3.0]


@responses.activate
def test_full_push_queue_goes_back_to_the_hub(connector: OmetriaConnector) -> None:
    responses.post(f"{BASE}/v2/push", status=429, headers={"X-QueueSize-Remaining": "0"})
    with pytest.raises(RateLimited) as info:
        connector.push([referrer()])
    assert info.value.retry_after == 60.0 and len(responses.calls) == 1


@responses.activate
def test_fatal_400_is_raised_for_the_batch(connector: OmetriaConnector) -> None:
    responses.post(f"{BASE}/v2/push", json={"message": "Payload invalid"}, status=400)
    with pytest.raises(FatalVendorError) as info:
        connector.push([referrer()])
    assert not isinstance(info.value, AuthError)
    assert info.value.message == "Payload invalid" and len(responses.calls) == 1


@responses.activate
def test_5xx_exhausts_retries(connector: OmetriaConnector, waits: list[float]) -> None:
    responses.post(f"{BASE}/v2/push", json={"message": "boom"}, status=503)
    with pytest.raises(RetriableVendorError):
        connector.push([referrer()])
    assert len(responses.calls) == 3
    assert waits == [0.5, 1.0]


@responses.activate
def test_rejected_records_named_by_index_fail_alone(connector: OmetriaConnector) -> None:
    responses.post(f"{BASE}/v2/push", status=202, json={
        "success": True, "accepted": 2, "rejected": 1,
        "errors": [{"index": 1, "message": "Payload invalid: invalid email address"}]})
    result = connector.push([referrer(), opted_in_friend(), customer_friend()])
    assert list(result.failed) == ["bob@example.com"]
    assert result.failed["bob@example.com"].message == "Payload invalid: invalid email address"
    assert not result.failed["bob@example.com"].retriable


def counting(request) -> tuple[int, dict, str]:  # type: ignore[no-untyped-def]
    """Ometria as its one second opinion shows it: a `rejected` count, no names."""
    records = json.loads(request.body)
    bad = sum(1 for r in records if r["email"].startswith("reject-"))
    return 202, {}, json.dumps({"success": True, "accepted": len(records) - bad, "rejected": bad})


def friends(*bad: int, size: int = 8) -> list[ContactUpdate]:
    return [ContactUpdate(email=f"{'reject-' if i in bad else ''}f{i}@example.com", identity={"id": f"c-{i}"},
                          fields={"promo_code": f"P{i}"}) for i in range(size)]


@responses.activate
def test_a_counted_unnamed_rejection_is_found_by_pushing_halves(connector: OmetriaConnector) -> None:
    responses.add_callback(responses.POST, f"{BASE}/v2/push", callback=counting)
    result = connector.push(friends(5))
    assert list(result.failed) == ["reject-f5@example.com"]
    assert result.failed["reject-f5@example.com"].code == "rejected" and not result.failed["reject-f5@example.com"].retriable
    # 8 records (1 rejected) -> first half 0-3 clean; second half inferred 1 -> 4-5 has it -> 4 clean, so 5.
    assert [[r["id"] for r in sent(c)] for c in responses.calls] == [
        [f"c-{i}" for i in range(8)], ["c-0", "c-1", "c-2", "c-3"], ["c-4", "c-5"], ["c-4"]]


@responses.activate
def test_several_unnamed_rejections_are_each_found_and_the_rest_land(connector: OmetriaConnector) -> None:
    responses.add_callback(responses.POST, f"{BASE}/v2/push", callback=counting)
    result = connector.push(friends(0, 6, 7, size=100))
    assert sorted(result.failed) == ["reject-f0@example.com", "reject-f6@example.com", "reject-f7@example.com"]
    assert len(responses.calls) <= 1 + 3 * 7, "about log2(n) pushes per rejected record"


@responses.activate
def test_a_batch_wholly_rejected_or_refused_without_a_count_fails_every_record(connector: OmetriaConnector) -> None:
    responses.add_callback(responses.POST, f"{BASE}/v2/push", callback=counting)
    assert len(connector.push(friends(0, 1, 2, size=3)).failed) == 3 and len(responses.calls) == 1
    responses.replace(responses.POST, f"{BASE}/v2/push", status=202, json={"success": False})
    result = connector.push(friends(size=3))
    assert sorted(result.failed) == ["f0@example.com", "f1@example.com", "f2@example.com"]
    assert len(responses.calls) == 2


@responses.activate
def test_named_and_unnamed_rejections_together(connector: OmetriaConnector) -> None:
    # The first answer names index 1 and counts one more; halves then answer by count only.
    responses.post(f"{BASE}/v2/push", status=202, json={"success": True, "rejected": 2, "errors": [
        {"index": 1, "message": "Payload invalid: list 9 does not exist."}]})
    responses.add_callback(responses.POST, f"{BASE}/v2/push", callback=counting)
    result = connector.push(friends(3, size=4))
    assert sorted(result.failed) == ["f1@example.com", "reject-f3@example.com"]
    assert result.failed["f1@example.com"].message == "Payload invalid: list 9 does not exist."


@responses.activate
def test_records_without_a_safe_id_or_too_large_never_leave(connector: OmetriaConnector) -> None:
    responses.post(f"{BASE}/v2/push", json={"success": True, "accepted": 1, "rejected": 0}, status=202)
    pii = ContactUpdate(email="dan@example.com", identity={"id": "dan@example.com"})
    huge = ContactUpdate(email="eve@example.com", identity={"id": "c-eve"}, fields={"blob": "x" * 61_000})
    result = connector.push([pii, huge, referrer()])
    assert result.failed["dan@example.com"].code == "invalid_id"
    assert result.failed["eve@example.com"].code == "record_too_large"
    assert [r["id"] for r in sent(responses.calls[0])] == ["c-anna"]  # type: ignore[union-attr]


@responses.activate
def test_erase_sends_one_deletion_request_per_email(connector: OmetriaConnector) -> None:
    responses.post(f"{BASE}/v2/data-deletion-requests", status=202, json={"id": "r1"})
    responses.post(f"{BASE}/v2/data-deletion-requests", status=400, json={"message": "bad email"})
    result = connector.erase(["anna@example.com", "nope"])
    assert [sent(c) for c in responses.calls] == [{"email": "anna@example.com"}, {"email": "nope"}]
    assert list(result.failed) == ["nope"]
    assert responses.calls[0].request.headers["X-Ometria-Auth"] == KEY


@responses.activate
def test_erase_keeps_what_landed_when_the_gdpr_budget_runs_out(connector: OmetriaConnector) -> None:
    responses.post(f"{BASE}/v2/data-deletion-requests", status=202, json={"id": "r1"})
    responses.post(f"{BASE}/v2/data-deletion-requests", status=429)
    result = connector.erase(["a@example.com", "b@example.com", "c@example.com"])
    assert sorted(result.failed) == ["b@example.com", "c@example.com"]
    assert all(isinstance(e, RateLimited) and e.retry_after == 10.0 for e in result.failed.values())
    assert len(responses.calls) == 2


@responses.activate
def test_check_and_fields(connector: OmetriaConnector) -> None:
    empty = responses.post(f"{BASE}/v2/push", status=400, json={"message": "Payload invalid: empty"})
    responses.get(f"{BASE}/v2/data-deletion-requests", status=403, json={"message": "Forbidden"})
    assert connector.check() == {"ok": False, "collection": "referral_hub", "missing": ["GET /v2/data-deletion-requests"],
                                 "permissions": {"POST /v2/push": "granted", "GET /v2/data-deletion-requests": "missing"}}
    assert empty.calls[0].request.body == "[]"
    responses.replace(responses.GET, f"{BASE}/v2/data-deletion-requests", json=[])
    assert connector.check()["ok"] is True
    responses.replace(responses.POST, f"{BASE}/v2/push", status=403, json={"message": "Forbidden"})
    responses.replace(responses.GET, f"{BASE}/v2/data-deletion-requests", status=403, json={"message": "Forbidden"})
    with pytest.raises(AuthError):
        connector.check()
    assert connector.fields() == []
    assert connector.limits_for("POST", "/v2/push") == ("push", ((8, 1.0),))
    assert connector.limits_for("POST", "/v2/data-deletion-requests") == ("gdpr", ((6, 60.0),))

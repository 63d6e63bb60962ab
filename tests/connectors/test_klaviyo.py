"""Klaviyo connector: the exact requests it sends, and how it reads every kind of answer."""
from __future__ import annotations

import json
import time

import pytest
import responses
from responses import matchers

from connectors import ContactUpdate
from connectors.errors import AuthError, FatalVendorError, RetriableVendorError
from connectors.klaviyo import REVISION, KlaviyoConnector
from connectors.ratelimit import RateLimiter

BASE = "https://a.klaviyo.com"
KEY = "pk_test_0123456789"
HEADERS = {"Authorization": f"Klaviyo-API-Key {KEY}", "revision": REVISION,
           "Content-Type": "application/vnd.api+json", "Accept": "application/vnd.api+json"}


def connector(waits: list[float] | None = None, **kw) -> KlaviyoConnector:  # type: ignore[no-untyped-def]
    sink = waits if waits is not None else []
    return KlaviyoConnector({"api_key": KEY}, sleep=sink.append, **kw)


def referrer() -> ContactUpdate:
    return ContactUpdate(email="anna@example.com", fields={"first_name": "Anna", "referral_friends_invited": 2},
                         identity={"email": "anna@example.com"})


def friend(email: str = "cleo@example.com", **kw) -> ContactUpdate:  # type: ignore[no-untyped-def]
    return ContactUpdate(email=email, fields={"referral_promo_code": "ANNA-20"},
                         lists={"RfMkt1": "marketing", "RfTxn1": "transactional"}, marketing_consent=True, **kw)


def job_status(failed: int = 0) -> dict:
    return {"data": {"type": "profile-bulk-import-job", "id": "job1", "attributes": {
        "status": "complete", "total_count": 2, "completed_count": 2 - failed, "failed_count": failed}}}


@responses.activate
def test_single_profile_goes_through_profile_import_with_exact_body_and_headers() -> None:
    call = responses.post(f"{BASE}/api/profile-import", status=201, json={"data": {"id": "01ABC"}},
                          match=[matchers.header_matcher(HEADERS)])
    result = connector().push([referrer()])
    assert result.failed == {}
    assert json.loads(call.calls[0].request.body) == {"data": {"type": "profile", "attributes": {
        "email": "anna@example.com", "first_name": "Anna", "properties": {"referral_friends_invited": 2}}}}


@responses.activate
def test_batch_uses_bulk_import_grouped_by_list_then_subscribes_with_consent() -> None:
    imports = responses.post(f"{BASE}/api/profile-bulk-import-jobs", status=202, json=job_status())
    responses.get(f"{BASE}/api/profile-bulk-import-jobs/job1", json=job_status())
    subscribe = responses.post(f"{BASE}/api/profile-subscription-bulk-create-jobs", status=202)
    result = connector().push([referrer(), friend()])
    assert result.failed == {}
    bodies = [json.loads(c.request.body) for c in imports.calls]
    assert bodies[0]["data"]["attributes"]["profiles"]["data"][0]["attributes"]["email"] == "anna@example.com"
    assert "relationships" not in bodies[0]["data"]
    assert bodies[1]["data"]["relationships"] == {"lists": {"data": [{"type": "list", "id": "RfTxn1"}]}}
    assert json.loads(subscribe.calls[0].request.body) == {"data": {
        "type": "profile-subscription-bulk-create-job",
        "attributes": {"custom_source": "Referral Sync Hub", "profiles": {"data": [{"type": "profile", "attributes": {
            "email": "cleo@example.com", "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}}}]}},
        "relationships": {"list": {"data": {"type": "list", "id": "RfMkt1"}}}}}


@responses.activate
def test_nothing_is_resubscribed_once_consent_was_sent() -> None:
    call = responses.post(f"{BASE}/api/profile-import", status=200, json={"data": {"id": "01ABC"}})
    already = friend(previous_lists={"RfMkt1": "marketing", "RfTxn1": "transactional"}, previous_consent=True)
    assert connector().push([already]).failed == {}
    assert len(responses.calls) == 1 and call.call_count == 1


@responses.activate
def test_withdrawn_consent_unsubscribes_from_the_list_the_hub_joined() -> None:
    responses.post(f"{BASE}/api/profile-import", status=200, json={"data": {"id": "01ABC"}})
    unsubscribe = responses.post(f"{BASE}/api/profile-subscription-bulk-delete-jobs", status=202)
    gone = ContactUpdate(email="cleo@example.com", marketing_consent=False,
                         previous_lists={"RfMkt1": "marketing"}, previous_consent=True)
    connector().push([gone])
    body = json.loads(unsubscribe.calls[0].request.body)
    assert body["data"]["relationships"]["list"]["data"]["id"] == "RfMkt1"
    assert body["data"]["attributes"]["profiles"]["data"][0]["attributes"]["email"] == "cleo@example.com"


@responses.activate
def test_429_waits_for_retry_after_then_succeeds() -> None:
    responses.post(f"{BASE}/api/profile-import", status=429, headers={"Retry-After": "3"}, json={"errors": [
        {"id": "e", "status": 429, "code": "throttled", "title": "Request was throttled.", "detail": "Expected available in 3 seconds."}]})
    responses.post(f"{BASE}/api/profile-import", status=200, json={"data": {"id": "01ABC"}})
    waits: list[float] = []
    assert connector(waits).push([referrer()]).failed == {}
    assert waits == [3.0] and len(responses.calls) == 2


@responses.activate
def test_long_retry_after_goes_back_to_the_queue() -> None:
    responses.post(f"{BASE}/api/profile-import", status=429, headers={"Retry-After": "40"}, json={"errors": []})
    with pytest.raises(RetriableVendorError) as raised:
        connector().push([referrer()])
    assert raised.value.retry_after == 40.0 and raised.value.status == 429


@responses.activate
def test_fatal_4xx_reads_the_json_api_error() -> None:
    responses.post(f"{BASE}/api/profile-import", status=400, json={"errors": [{
        "id": "x", "status": 400, "code": "invalid", "title": "Invalid input.",
        "detail": "'email' is not a valid email address", "source": {"pointer": "/data/attributes/email"}}]})
    with pytest.raises(FatalVendorError) as raised:
        connector().push([referrer()])
    assert raised.value.code == "invalid" and raised.value.status == 400
    assert "not a valid email" in raised.value.message and len(responses.calls) == 1


@responses.activate
def test_wrong_key_is_an_auth_error_without_the_key_in_it() -> None:
    responses.post(f"{BASE}/api/profile-import", status=401, json={"errors": [{
        "id": "x", "status": 401, "code": "not_authenticated", "title": "Authentication credentials were not provided.",
        "detail": "Missing or invalid private key."}]})
    with pytest.raises(AuthError) as raised:
        connector().push([referrer()])
    assert KEY not in str(raised.value) and KEY not in json.dumps(raised.value.as_dict())


@responses.activate
def test_5xx_is_retried_then_given_back_as_retriable() -> None:
    responses.post(f"{BASE}/api/profile-import", status=503, body="upstream unavailable")
    waits: list[float] = []
    with pytest.raises(RetriableVendorError) as raised:
        connector(waits).push([referrer()])
    assert raised.value.status == 503 and len(responses.calls) == 3 and waits == [0.5, 1.0]


@responses.activate
def test_bulk_import_partial_failure_fails_only_the_rejected_profile() -> None:
    responses.post(f"{BASE}/api/profile-bulk-import-jobs", status=202, json=job_status(failed=1))
    responses.get(f"{BASE}/api/profile-bulk-import-jobs/job1", json=job_status(failed=1))
    responses.get(f"{BASE}/api/profile-bulk-import-jobs/job1/import-errors", json={"data": [{
        "type": "import-error", "id": "ie1", "attributes": {
            "code": "invalid", "title": "Invalid input.", "detail": "Invalid email address.",
            "source": {"pointer": "/data/attributes/profiles/data/1/attributes/email"},
            "original_payload": {"email": "Bad@Example.com"}}}]})
    two = [referrer(), ContactUpdate(email="bad@example.com", fields={"x": 1})]
    result = connector().push(two)
    assert list(result.failed) == ["bad@example.com"]
    assert result.failed["bad@example.com"].code == "invalid"


@responses.activate
def test_erase_sends_one_deletion_job_per_person() -> None:
    call = responses.post(f"{BASE}/api/data-privacy-deletion-jobs", status=202)
    assert connector().erase(["a@example.com", "b@example.com"]).failed == {}
    assert [json.loads(c.request.body)["data"]["attributes"]["profile"]["data"]["attributes"] for c in call.calls] == [
        {"email": "a@example.com"}, {"email": "b@example.com"}]


@responses.activate
def test_shared_limiter_holds_the_burst_budget(redis_client) -> None:  # type: ignore[no-untyped-def]
    responses.post(f"{BASE}/api/data-privacy-deletion-jobs", status=202)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    limited = KlaviyoConnector({"api_key": KEY}, sleep=sleep, limiter=RateLimiter(redis_client, "test:rl"))
    limited.erase([f"p{i}@example.com" for i in range(4)])
    assert len(waits) == 1 and 0 < waits[0] <= 1.0, "the 4th deletion waits for the 3/s burst window"


def test_every_request_body_validates_against_the_official_spec(shared_dir) -> None:  # type: ignore[no-untyped-def]
    from openapi_schema_validator import OAS30Validator
    from referencing import Registry, Resource

    spec = json.loads((shared_dir / "specs" / "klaviyo-openapi-stable-2026-07-15.json").read_text())
    registry = Registry().with_resource("urn:klaviyo", Resource.opaque(spec))

    def check(path: str, method: str, body: dict) -> None:  # type: ignore[type-arg]
        schema = spec["paths"][path][method]["requestBody"]["content"]["application/vnd.api+json"]["schema"]
        ref = {"$ref": "urn:klaviyo" + schema["$ref"]} if "$ref" in schema else schema
        OAS30Validator(ref, registry=registry).validate(body)

    k = KlaviyoConnector
    check("/api/profile-import", "post", {"data": k.profile(referrer())})
    check("/api/profile-bulk-import-jobs", "post", k.bulk_import_body([k.profile(referrer()), k.profile(friend())], ["RfTxn1"]))
    check("/api/profile-subscription-bulk-create-jobs", "post", k.subscribe_body(["c@example.com"], "RfMkt1"))
    check("/api/profile-subscription-bulk-create-jobs", "post", k.subscribe_body(["c@example.com"], None))
    check("/api/profile-subscription-bulk-delete-jobs", "post", k.unsubscribe_body(["c@example.com"], "RfMkt1"))
    check("/api/data-privacy-deletion-jobs", "post", k.deletion_body("c@example.com"))
    check("/api/lists/{id}/relationships/profiles", "delete", {"data": [{"type": "profile", "id": "01ABC"}]})
    with pytest.raises(Exception):
        check("/api/data-privacy-deletion-jobs", "post", {"data": {"type": "profile"}})

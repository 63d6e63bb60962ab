"""Klaviyo connector: the exact requests it sends, and how it reads every kind of answer."""
from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

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


def job_status(failed: int = 0, status: str = "complete", total: int = 2) -> dict:
    return {"data": {"type": "profile-bulk-import-job", "id": "job1", "attributes": {
        "status": status, "created_at": "2026-11-29T10:00:00+00:00", "total_count": total,
        "completed_count": total - failed, "failed_count": failed}}}


def profile(email: str, pid: str, consent: str = "NEVER_SUBSCRIBED", suppression: list[str] | None = None,
            list_suppressions: list[str] | None = None) -> dict:
    """A get_profiles item with additional-fields[profile]=subscriptions."""
    return {"type": "profile", "id": pid, "attributes": {"email": email, "subscriptions": {"email": {"marketing": {
        "can_receive_email_marketing": consent != "UNSUBSCRIBED" and not suppression, "consent": consent,
        "suppression": [{"reason": r, "timestamp": "2026-11-01T09:00:00+00:00"} for r in suppression or []],
        "list_suppressions": [{"list_id": i, "reason": "USER_SUPPRESSED", "timestamp": "2026-11-01T09:00:00+00:00"}
                              for i in list_suppressions or []]}}}}}


def import_error(index: int, email: str | None) -> dict:
    return {"type": "import-error", "id": f"ie{index}", "attributes": {
        "code": "invalid", "title": "Invalid input.", "detail": "Invalid email address.",
        "source": {"pointer": f"/data/attributes/profiles/data/{index}/attributes/email"},
        "original_payload": {"email": email} if email is not None else None}}


def query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def subscribed(call: Any) -> tuple[str | None, list[str]]:
    """(list id, emails) of one subscription job request."""
    data = json.loads(call.request.body)["data"]
    list_id = data.get("relationships", {}).get("list", {}).get("data", {}).get("id")
    return list_id, [p["attributes"]["email"] for p in data["attributes"]["profiles"]["data"]]


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
    imports = responses.post(f"{BASE}/api/profile-bulk-import-jobs", status=202, json=job_status(status="queued"))
    responses.get(f"{BASE}/api/profile-bulk-import-jobs/job1", json=job_status())
    lookup = responses.get(f"{BASE}/api/profiles", json={"data": [profile("cleo@example.com", "01CLEO")]})
    subscribe = responses.post(f"{BASE}/api/profile-subscription-bulk-create-jobs", status=202)
    result = connector().push([referrer(), friend()])
    assert result.failed == {} and result.pending == {}
    bodies = [json.loads(c.request.body) for c in imports.calls]
    assert bodies[0]["data"]["attributes"]["profiles"]["data"][0]["attributes"]["email"] == "anna@example.com"
    assert "relationships" not in bodies[0]["data"]
    assert bodies[1]["data"]["relationships"] == {"lists": {"data": [{"type": "list", "id": "RfTxn1"}]}}
    # Before subscribing, the profile's suppressions are read.
    assert query(lookup.calls[0]) == {"filter": ['any(email,["cleo@example.com"])'], "page[size]": ["100"],
                                      "additional-fields[profile]": ["subscriptions"]}
    assert json.loads(subscribe.calls[0].request.body) == {"data": {
        "type": "profile-subscription-bulk-create-job",
        "attributes": {"custom_source": "Referral Sync Hub", "profiles": {"data": [{"type": "profile", "attributes": {
            "email": "cleo@example.com", "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}}}]}},
        "relationships": {"list": {"data": {"type": "list", "id": "RfMkt1"}}}}}


@responses.activate
def test_a_person_who_unsubscribed_or_complained_in_klaviyo_is_never_subscribed_again() -> None:
    responses.post(f"{BASE}/api/profile-bulk-import-jobs", status=202, json=job_status(status="queued", total=6))
    responses.get(f"{BASE}/api/profile-bulk-import-jobs/job1", json=job_status(total=6))
    responses.get(f"{BASE}/api/profiles", json={"data": [
        profile("unsub@example.com", "01A", consent="UNSUBSCRIBED", suppression=["UNSUBSCRIBE"]),
        profile("spam@example.com", "01B", consent="UNSUBSCRIBED", suppression=["SPAM_COMPLAINT"]),
        profile("held@example.com", "01C", consent="SUBSCRIBED", suppression=["USER_SUPPRESSED"]),
        profile("list@example.com", "01D", list_suppressions=["RfMkt1"]),
        profile("seen@example.com", "01E")]})       # new@example.com: never seen by Klaviyo
    subscribe = responses.post(f"{BASE}/api/profile-subscription-bulk-create-jobs", status=202)
    emails = ["unsub", "spam", "held", "list", "seen", "new"]
    result = connector().push([friend(f"{e}@example.com") for e in emails])
    assert result.failed == {}
    assert [subscribed(c) for c in subscribe.calls] == [("RfMkt1", ["seen@example.com", "new@example.com"])]


@responses.activate
def test_a_marketing_list_new_to_the_mapping_is_plain_membership_not_a_subscription() -> None:
    responses.post(f"{BASE}/api/profile-import", status=200, json={"data": {"id": "01CLEO"}})
    lookup = responses.get(f"{BASE}/api/profiles", json={"data": [profile("cleo@example.com", "01CLEO")]})
    add = responses.post(f"{BASE}/api/lists/RfMkt2/relationships/profiles", status=204)
    remove = responses.delete(f"{BASE}/api/lists/RfMkt1/relationships/profiles", status=204)
    moved = ContactUpdate(email="cleo@example.com", lists={"RfMkt2": "marketing"}, marketing_consent=True,
                          previous_lists={"RfMkt1": "marketing"}, previous_consent=True)
    assert connector().push([moved]).failed == {}
    assert json.loads(add.calls[0].request.body) == {"data": [{"type": "profile", "id": "01CLEO"}]}
    # The list the mapping no longer names is left as plain membership too: consent is untouched.
    assert json.loads(remove.calls[0].request.body) == {"data": [{"type": "profile", "id": "01CLEO"}]}
    assert "additional-fields[profile]" not in query(lookup.calls[0])
    assert not any("subscription" in c.request.url for c in responses.calls)


@responses.activate
def test_consent_given_again_after_a_withdrawal_the_hub_sent_subscribes_when_klaviyo_holds_no_suppression() -> None:
    responses.post(f"{BASE}/api/profile-import", status=200, json={"data": {"id": "01CLEO"}})
    responses.get(f"{BASE}/api/profiles", json={"data": [profile("cleo@example.com", "01CLEO")]})
    subscribe = responses.post(f"{BASE}/api/profile-subscription-bulk-create-jobs", status=202)
    again = ContactUpdate(email="cleo@example.com", lists={"RfMkt1": "marketing"}, marketing_consent=True,
                          previous_lists={}, previous_consent=False)
    assert connector().push([again]).failed == {}
    assert [subscribed(c) for c in subscribe.calls] == [("RfMkt1", ["cleo@example.com"])]
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
    responses.post(f"{BASE}/api/profile-bulk-import-jobs", status=202, json=job_status(status="queued"))
    responses.get(f"{BASE}/api/profile-bulk-import-jobs/job1", json=job_status(failed=1))
    errors = responses.get(f"{BASE}/api/profile-bulk-import-jobs/job1/import-errors", json={"data": [{
        "type": "import-error", "id": "ie1", "attributes": {
            "code": "invalid", "title": "Invalid input.", "detail": "Invalid email address.",
            "source": {"pointer": "/data/attributes/profiles/data/1/attributes/email"},
            "original_payload": {"email": "Bad@Example.com"}}}], "links": {"self": "x"}})
    two = [referrer(), ContactUpdate(email="bad@example.com", fields={"x": 1})]
    result = connector().push(two)
    assert list(result.failed) == ["bad@example.com"]
    assert result.failed["bad@example.com"].code == "invalid"
    assert query(errors.calls[0]) == {"page[size]": ["100"]}


@responses.activate
def test_every_page_of_import_errors_is_read() -> None:
    emails = [f"p{i}@example.com" for i in range(5)]
    responses.post(f"{BASE}/api/profile-bulk-import-jobs", status=202, json=job_status(status="queued", total=5))
    responses.get(f"{BASE}/api/profile-bulk-import-jobs/job1", json=job_status(failed=3, total=5))
    url = f"{BASE}/api/profile-bulk-import-jobs/job1/import-errors"
    responses.get(url, match=[matchers.query_param_matcher({"page[size]": "100"})], json={
        "data": [import_error(0, "p0@example.com")], "links": {"self": url, "next": f"{url}?page[cursor]=B"}})
    responses.get(url, match=[matchers.query_param_matcher({"page[cursor]": "B"})], json={
        "data": [import_error(2, "p2@example.com")], "links": {"self": url, "next": f"{url}?page[cursor]=C"}})
    responses.get(url, match=[matchers.query_param_matcher({"page[cursor]": "C"})], json={
        "data": [import_error(4, "p4@example.com")], "links": {"self": url}})
    result = connector().push([ContactUpdate(email=e) for e in emails])
    assert sorted(result.failed) == ["p0@example.com", "p2@example.com", "p4@example.com"]


@responses.activate
def test_an_import_error_without_original_payload_is_placed_by_its_pointer() -> None:
    responses.post(f"{BASE}/api/profile-bulk-import-jobs", status=202, json=job_status(status="queued", total=3))
    responses.get(f"{BASE}/api/profile-bulk-import-jobs/job1", json=job_status(failed=1, total=3))
    responses.get(f"{BASE}/api/profile-bulk-import-jobs/job1/import-errors", json={"data": [import_error(1, None)]})
    result = connector().push([ContactUpdate(email=f"p{i}@example.com") for i in range(3)])
    assert list(result.failed) == ["p1@example.com"]


@responses.activate
def test_rejections_that_name_no_profile_call_none_of_the_batch_landed() -> None:
    responses.post(f"{BASE}/api/profile-bulk-import-jobs", status=202, json=job_status(status="queued", total=3))
    responses.get(f"{BASE}/api/profile-bulk-import-jobs/job1", json=job_status(failed=2, total=3))
    nameless = import_error(0, None)
    nameless["attributes"]["source"] = {}
    responses.get(f"{BASE}/api/profile-bulk-import-jobs/job1/import-errors",
                  json={"data": [import_error(1, "p1@example.com"), nameless]})
    result = connector().push([ContactUpdate(email=f"p{i}@example.com") for i in range(3)])
    assert result.failed["p1@example.com"].code == "invalid"
    assert {e: x.code for e, x in result.failed.items() if e != "p1@example.com"} == {
        "p0@example.com": "import_error_unnamed", "p2@example.com": "import_error_unnamed"}


@responses.activate
def test_a_job_still_processing_leaves_its_contacts_pending_and_subscribes_no_one_yet() -> None:
    responses.post(f"{BASE}/api/profile-bulk-import-jobs", status=202, json=job_status(status="queued"))
    responses.get(f"{BASE}/api/profile-bulk-import-jobs/job1", json=job_status(status="processing"))
    opted_in = ContactUpdate(email="dan@example.com", lists={"RfMkt1": "marketing"}, marketing_consent=True)
    result = connector().push([referrer(), opted_in])
    assert result.failed == {}
    assert result.pending == {"import:job1": ["anna@example.com", "dan@example.com"]}
    assert [c.request.method for c in responses.calls] == ["POST", "GET"]     # no lookup, no subscription


@responses.activate
def test_check_job_reads_the_status_once_and_finish_does_the_consent_steps() -> None:
    status = responses.get(f"{BASE}/api/profile-bulk-import-jobs/job1", json=job_status(status="processing"))
    k = connector()
    assert k.check_job("import:job1", ["anna@example.com", "cleo@example.com"]).done is False
    assert status.call_count == 1
    responses.replace(responses.GET, f"{BASE}/api/profile-bulk-import-jobs/job1", json=job_status())
    check = k.check_job("import:job1", ["anna@example.com", "cleo@example.com"])
    assert check.done is True and check.failed == {}
    responses.get(f"{BASE}/api/profiles", json={"data": [profile("cleo@example.com", "01CLEO")]})
    subscribe = responses.post(f"{BASE}/api/profile-subscription-bulk-create-jobs", status=202)
    assert k.finish([friend()]).failed == {}
    assert [subscribed(c) for c in subscribe.calls] == [("RfMkt1", ["cleo@example.com"])]


@responses.activate
def test_a_cancelled_job_fails_every_profile_in_it() -> None:
    responses.get(f"{BASE}/api/profile-bulk-import-jobs/job1", json=job_status(status="cancelled"))
    check = connector().check_job("import:job1", ["a@example.com", "b@example.com"])
    assert check.done and {e: x.code for e, x in check.failed.items()} == {
        "a@example.com": "job_cancelled", "b@example.com": "job_cancelled"}


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
    clock = [1_000_000.0]       # the limiter's time, moved only by the connector's waits

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    limited = KlaviyoConnector({"api_key": KEY}, sleep=sleep,
                               limiter=RateLimiter(redis_client, "test:rl", clock=lambda: clock[0]))
    limited.erase([f"p{i}@example.com" for i in range(4)])
    assert waits == [1.0], "the 4th deletion waits until the first leaves the 3/s burst window"
    assert len(responses.calls) == 4


SPEC = "klaviyo-openapi-stable-2026-07-15.json"


def closed(node: Any) -> Any:
    """The spec with every object that lists its properties closed (additionalProperties: false):
    the spec leaves them open, the live API refuses any name it does not list."""
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            closed(value)
    elif isinstance(node, list):
        for value in node:
            closed(value)
    return node


@pytest.fixture(scope="module")
def body_validator(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """check(method, path, body): validate a request body against the spec's operation, objects closed."""
    from openapi_schema_validator import OAS30Validator
    from referencing import Registry, Resource

    from tests.conftest import SHARED

    if not (SHARED / "specs" / SPEC).is_file():
        pytest.skip("../shared is not beside the project")
    spec = closed(copy.deepcopy(json.loads((SHARED / "specs" / SPEC).read_text())))
    registry = Registry().with_resource("urn:klaviyo", Resource.opaque(spec))

    def check(method: str, path: str, body: Any) -> None:
        template = next(t for t in spec["paths"] if re_path(t).fullmatch(path))
        schema = spec["paths"][template][method.lower()]["requestBody"]["content"]["application/vnd.api+json"]["schema"]
        ref = {"$ref": "urn:klaviyo" + schema["$ref"]} if "$ref" in schema else schema
        OAS30Validator(ref, registry=registry).validate(body)
    return check


def re_path(template: str):  # type: ignore[no-untyped-def]
    import re
    return re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)))


@responses.activate
def test_every_request_body_the_connector_sends_validates_against_the_spec_with_closed_objects(body_validator) -> None:  # type: ignore[no-untyped-def]
    responses.post(f"{BASE}/api/profile-import", status=200, json={"data": {"id": "01ABC"}})
    responses.post(f"{BASE}/api/profile-bulk-import-jobs", status=202, json=job_status(status="queued", total=5))
    responses.get(f"{BASE}/api/profile-bulk-import-jobs/job1", json=job_status(total=5))
    responses.get(f"{BASE}/api/profiles", json={"data": [profile(f"{n}@example.com", f"01{n.upper()}")
                                                         for n in ("cleo", "moved", "gone", "txn")]})
    for list_id in ("RfMkt1", "RfMkt2", "RfTxn1"):
        responses.post(f"{BASE}/api/lists/{list_id}/relationships/profiles", status=204)
        responses.delete(f"{BASE}/api/lists/{list_id}/relationships/profiles", status=204)
    responses.post(f"{BASE}/api/profile-subscription-bulk-create-jobs", status=202)
    responses.post(f"{BASE}/api/profile-subscription-bulk-delete-jobs", status=202)
    responses.post(f"{BASE}/api/data-privacy-deletion-jobs", status=202)
    k = connector()
    k.push([referrer()])
    k.push([referrer(), friend(),
            ContactUpdate(email="moved@example.com", fields={"referral_promo_code": "X-1"},
                          lists={"RfMkt2": "marketing"}, marketing_consent=True,
                          previous_lists={"RfMkt1": "marketing"}, previous_consent=True),
            ContactUpdate(email="gone@example.com", marketing_consent=False,
                          previous_lists={"RfMkt1": "marketing"}, previous_consent=True),
            ContactUpdate(email="txn@example.com", previous_lists={"RfTxn1": "transactional"})])
    k.erase(["cleo@example.com"])
    sent = [(c.request.method, urlsplit(c.request.url).path, json.loads(c.request.body))
            for c in responses.calls if c.request.body]
    for method, path, body in sent:
        body_validator(method, path, body)
    assert {(m, p) for m, p, _ in sent} == {
        ("POST", "/api/profile-import"), ("POST", "/api/profile-bulk-import-jobs"),
        ("POST", "/api/profile-subscription-bulk-create-jobs"), ("POST", "/api/profile-subscription-bulk-delete-jobs"),
        ("POST", "/api/lists/RfMkt2/relationships/profiles"), ("DELETE", "/api/lists/RfMkt1/relationships/profiles"),
        ("DELETE", "/api/lists/RfTxn1/relationships/profiles"), ("POST", "/api/data-privacy-deletion-jobs")}


@pytest.mark.parametrize("attributes", [
    {"email": "c@example.com", "referral_promo_code": "ANNA-20"},                  # custom property at the top
    {"email": "c@example.com", "first_name": 7},                                   # wrong type
    {"email": "c@example.com", "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}},
])
def test_the_closed_spec_refuses_what_klaviyo_refuses_in_a_profile(body_validator, attributes) -> None:  # type: ignore[no-untyped-def]
    from jsonschema.exceptions import ValidationError

    with pytest.raises(ValidationError):
        body_validator("POST", "/api/profile-import", {"data": {"type": "profile", "attributes": attributes}})


def test_the_closed_spec_refuses_consent_nested_in_the_wrong_place(body_validator) -> None:  # type: ignore[no-untyped-def]
    from jsonschema.exceptions import ValidationError

    body = KlaviyoConnector.subscribe_body(["c@example.com"], "RfMkt1")
    body_validator("POST", "/api/profile-subscription-bulk-create-jobs", body)
    body["data"]["attributes"]["profiles"]["data"][0]["attributes"]["subscriptions"] = {
        "email": {"consent": "SUBSCRIBED"}}
    with pytest.raises(ValidationError):
        body_validator("POST", "/api/profile-subscription-bulk-create-jobs", body)


@responses.activate
def test_check_reports_every_scope_the_key_has() -> None:
    responses.get(f"{BASE}/api/accounts", json={"data": [{"type": "account", "id": "ACC1", "attributes": {}}]})
    responses.get(f"{BASE}/api/lists", json={"data": []})
    responses.get(f"{BASE}/api/profiles", json={"data": []})
    for path in ("profile-import", "profile-bulk-import-jobs", "profile-subscription-bulk-create-jobs",
                 "data-privacy-deletion-jobs"):
        responses.post(f"{BASE}/api/{path}", status=400, json={"errors": [{
            "id": "e", "status": 400, "code": "invalid", "title": "Invalid input.", "detail": "'data' is required."}]})
    assert connector().check() == {"ok": True, "account": "ACC1", "missing": [], "permissions": {
        "accounts:read": "granted", "lists:read": "granted", "profiles:read": "granted",
        "profiles:write": "granted", "lists:write": "granted", "subscriptions:write": "granted",
        "data-privacy:write": "granted"}}
    posted = [c.request.body for c in responses.calls if c.request.method == "POST"]
    assert posted == ["{}"] * 4, "a write scope is probed with a body Klaviyo refuses, so nothing is written"


@responses.activate
def test_check_names_the_scopes_that_answer_403() -> None:
    denied = {"errors": [{"id": "e", "status": 403, "code": "permission_denied",
                          "title": "You do not have permission to perform this action.", "detail": "..."}]}
    responses.get(f"{BASE}/api/accounts", json={"data": [{"type": "account", "id": "ACC1", "attributes": {}}]})
    responses.get(f"{BASE}/api/lists", status=403, json=denied)
    responses.get(f"{BASE}/api/profiles", json={"data": []})
    responses.post(f"{BASE}/api/profile-import", status=403, json=denied)
    responses.post(f"{BASE}/api/data-privacy-deletion-jobs", status=400, json={"errors": []})
    result = connector().check()
    assert result["ok"] is False and result["missing"] == ["lists:read", "profiles:write"]
    assert result["permissions"]["lists:write"] == result["permissions"]["subscriptions:write"] == "unknown"
    assert result["permissions"]["data-privacy:write"] == "granted"


@responses.activate
def test_a_lookup_of_long_addresses_is_split_so_no_request_line_is_too_long() -> None:
    # 100 addresses of 80 characters would make a query of about 10 KB, which a server capping
    # request lines at 4 KB refuses whole (414): the lookup goes in several calls instead.
    emails = [f"{'x' * 60}{i:03d}@long-domain.example" for i in range(100)]
    lookup = responses.get(f"{BASE}/api/profiles", json={"data": []})
    assert connector().find_profiles(emails, subscriptions=True) == []
    asked = [parse_qs(urlsplit(call.request.url).query)["filter"][0] for call in responses.calls]
    assert lookup.call_count == len(asked) > 1
    assert all(len(urlsplit(call.request.url).query) <= 3_800 for call in responses.calls)
    assert sorted(e for f in asked for e in json.loads(f[len("any(email,"):-1])) == sorted(emails)


@responses.activate
def test_a_split_lookup_fills_each_call_as_far_as_the_request_line_allows() -> None:
    # Addresses of varied lengths, some with characters URL encoding spells long (+ ' é): each
    # call's query stays under the cap, and the next address would not have fitted in it.
    emails = [f"{'é' * (i % 7)}o'n+{'y' * (i * 37 % 90)}{i:03d}@example.com" for i in range(150)]
    lookup = responses.get(f"{BASE}/api/profiles", json={"data": []})
    connector().find_profiles(emails, subscriptions=True)
    asked = [json.loads(parse_qs(urlsplit(call.request.url).query)["filter"][0][len("any(email,"):-1])
             for call in responses.calls]
    assert lookup.call_count > 1 and [e for batch in asked for e in batch] == emails
    assert all(len(urlsplit(call.request.url).query) <= 3_800 for call in responses.calls)
    for batch, following in zip(asked, asked[1:]):
        longer = KlaviyoConnector.lookup_params([*batch, following[0]], True)
        assert len(batch) == 100 or len(urlencode(longer)) > 3_800

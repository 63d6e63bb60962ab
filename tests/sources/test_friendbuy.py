"""Friendbuy: base64 HMAC-SHA256 of the raw body, batched data[], the reward-validation callback."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from sources import PayloadError, SOURCES, SignatureError

from .helpers import NOW, NOW_ISO, dumps, published, published_json, run

ADAPTER = SOURCES["friendbuy"]
SECRET = "fb-secret-for-tests"
SETTINGS = ADAPTER.settings_from_env({"HUB_SOURCE_FRIENDBUY_SECRET": SECRET})


def sign(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {"X-Friendbuy-Hmac-SHA256": base64.b64encode(digest).decode()}


# --- settings and signatures -------------------------------------------------------------------

def test_settings() -> None:
    assert SETTINGS == {"secret": SECRET} and ADAPTER.configured(SETTINGS)
    assert not ADAPTER.configured(ADAPTER.settings_from_env({"HUB_SOURCE_FRIENDBUY_SECRET": "  "}))


def test_good_signature_over_raw_bytes(shared_dir) -> None:
    body = published(shared_dir, "friendbuy", "advocateReward.json")
    ADAPTER.verify(sign(body), body, SETTINGS, NOW)
    ADAPTER.verify({"x-friendbuy-hmac-sha256": sign(body)["X-Friendbuy-Hmac-SHA256"]}, body, SETTINGS, NOW)


def test_re_serialised_body_does_not_verify(shared_dir) -> None:
    """The docs sample signs JSON.stringify(data): our check is over the bytes received."""
    body = published(shared_dir, "friendbuy", "advocateReward.json")
    compact = json.dumps(json.loads(body), separators=(",", ":")).encode()
    with pytest.raises(SignatureError, match="does not match"):
        ADAPTER.verify(sign(compact), body, SETTINGS, NOW)


def test_bad_signature() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        ADAPTER.verify(sign(b"{}", "other"), b"{}", SETTINGS, NOW)


@pytest.mark.parametrize("value", ["", "not base64!", base64.b64encode(b"short").decode(), "a" * 64, "é"])
def test_malformed_header(value) -> None:
    with pytest.raises(SignatureError, match="malformed"):
        ADAPTER.verify({"X-Friendbuy-Hmac-SHA256": value}, b"{}", SETTINGS, NOW)


def test_missing_header() -> None:
    with pytest.raises(SignatureError, match="missing"):
        ADAPTER.verify({}, b"{}", SETTINGS, NOW)


# --- published examples -----------------------------------------------------------------------

ADVOCATE_REWARD = {
    "id": "friendbuy:73cb50ea-7ac8-4f90-9fe4-f5450866f3c0", "type": "reward.granted",
    "occurred_at": "2019-11-05T01:07:36.720Z", "source": "friendbuy",
    "referrer": {"email": "test@example.com", "customer_id": "asd123-abcfasdf"},
    "reward": {"recipient": "referrer", "kind": "coupon", "code": "test-coupon-code", "value": "20.00",
               "currency": "USD"}}


@pytest.mark.parametrize("name, expected", [
    ("advocateReward.json", ADVOCATE_REWARD),
    ("emailCapture.json", {
        "id": "friendbuy:e6c720d4-b721-4789-a110-0d680777b802", "type": "friend.registered",
        "occurred_at": "2019-11-05T01:07:38.509Z", "source": "friendbuy",
        "friend": {"email": "john.customer@example.com", "first_name": "John", "last_name": "Customer",
                   "marketing_opt_in": True, "promo_code": "Test couponCode"},
        "referrer": {"email": "sarah.advocate@example.com", "first_name": "Sarah", "last_name": "Advocate"}}),
    ("emailOptOut.json", {
        "id": "friendbuy:optout:fd2f5766-8c27-4bfe-b3d3-9f41e186b13e:0", "type": "contact.updated",
        "occurred_at": "2021-06-01T14:28:27.657Z", "source": "friendbuy",
        "contact": {"email": "a.friend@example.com", "marketing_opt_in": False}}),
    ("rewardValidationCallback.purchase.json", {
        "id": "friendbuy:purchase:89d78d25-6a33-4873-8b0e-410e3e7c10fa:order-66", "type": "friend.converted",
        "occurred_at": "2019-11-18T23:48:30.017Z", "source": "friendbuy",
        "friend": {"email": "test@example.org", "customer_id": "123"},
        "referrer": {"email": "britain+test@friendbuy.com", "customer_id": "66"},
        "order": {"id": "order-66", "total": "100.00", "currency": "USD"}}),
])
def test_published_examples(shared_dir, name, expected) -> None:
    result = run("friendbuy", published(shared_dir, "friendbuy", name), SETTINGS)
    assert result.events == [expected] and result.ignored == [] and result.identities == []


# --- our own fixtures -------------------------------------------------------------------------

def reward_item(reward_id: str, **extra) -> dict:
    return {"rewardId": reward_id, "rewardType": "credit", "rewardUnit": "GBP", "emailAddress": "Anna@Example.com",
            "rewardAmount": "10", "createdOn": "2026-01-02T03:04:05.000Z", "customerId": "c-1", **extra}


def test_several_events_in_one_body() -> None:
    body = {"id": "call-1", "type": "advocateReward", "createdOn": "2026-01-02T03:04:06.000Z",
            "data": [reward_item("r-1"), reward_item("r-2", rewardUnit="%", rewardAmount=15, rewardType="discount"),
                     "not an object"]}
    result = run("friendbuy", body, SETTINGS)
    assert [e["id"] for e in result.events] == ["friendbuy:r-1", "friendbuy:r-2"]
    assert result.events[0]["reward"] == {"recipient": "referrer", "kind": "credit", "value": "10.00",
                                          "currency": "GBP"}
    assert result.events[1]["reward"] == {"recipient": "referrer", "kind": "coupon"}  # 15 % is no money value
    assert result.events[0]["referrer"] == {"email": "anna@example.com", "customer_id": "c-1"}
    assert result.ignored == ["advocateReward"]


def test_duplicate_delivery_keeps_the_reward_id_across_calls() -> None:
    """A retry is a new call (new envelope id): rewardId, not the envelope id, is the dedupe key."""
    first = run("friendbuy", {"id": "call-1", "type": "advocateReward", "data": [reward_item("r-9")]}, SETTINGS)
    retry = run("friendbuy", {"id": "call-2", "type": "advocateReward", "data": [reward_item("r-9")]}, SETTINGS)
    assert first.events[0]["id"] == retry.events[0]["id"] == "friendbuy:r-9"


def test_friend_incentive_goes_to_the_friend() -> None:
    body = {"id": "call-3", "type": "friendIncentive", "data": [reward_item("r-3", couponCode="HELLO-5")]}
    event = run("friendbuy", body, SETTINGS).events[0]
    assert event["friend"] == {"email": "anna@example.com", "customer_id": "c-1"} and "referrer" not in event
    assert event["reward"]["recipient"] == "friend" and event["reward"]["code"] == "HELLO-5"


@pytest.mark.parametrize("kind", ["customerUpdate", "loyaltyReward", "receipt", "ledgerTransaction", "brandNew"])
def test_unknown_or_unmapped_type_is_ignored(kind) -> None:
    result = run("friendbuy", {"id": "c", "type": kind, "data": [{"emailAddress": "a@b.co"}]}, SETTINGS)
    assert result.events == [] and result.ignored == [kind]


def test_other_callback_types_are_ignored(shared_dir) -> None:
    body = published_json(shared_dir, "friendbuy", "rewardValidationCallback.purchase.json")
    body["eventType"] = "signup"
    assert run("friendbuy", body, SETTINGS).ignored == ["signup"]


def test_missing_email_keeps_the_customer_id() -> None:
    item = reward_item("r-4")
    del item["emailAddress"]
    event = run("friendbuy", {"id": "c", "type": "advocateReward", "data": [item]}, SETTINGS).events[0]
    assert event["referrer"] == {"customer_id": "c-1"}


def test_capture_without_email_is_ignored(shared_dir) -> None:
    body = published_json(shared_dir, "friendbuy", "emailCapture.json")
    body["data"][0]["emailAddress"] = None
    assert run("friendbuy", body, SETTINGS).ignored == ["emailCapture"]


def test_time_falls_back_to_now() -> None:
    item = reward_item("r-5")
    del item["createdOn"]
    assert run("friendbuy", {"type": "advocateReward", "data": [item]}, SETTINGS).events[0]["occurred_at"] == NOW_ISO


@pytest.mark.parametrize("body", [b"", b"[]", b'{"data": []}', dumps({"type": 4, "data": []})])
def test_not_friendbuy_shape_is_payload_error(body) -> None:
    with pytest.raises(PayloadError):
        run("friendbuy", body, SETTINGS)

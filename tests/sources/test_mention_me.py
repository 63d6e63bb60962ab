"""Mention Me: `sha256=` HMAC of the raw body; documented API bodies recognised by shape."""
from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from sources import PayloadError, SOURCES, SignatureError

from .helpers import NOW, NOW_ISO, published, published_json, run

ADAPTER = SOURCES["mention_me"]
SECRET = "mm-secret-for-tests"
SETTINGS = ADAPTER.settings_from_env({"HUB_SOURCE_MENTION_ME_SECRET": SECRET})


def sign(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-MentionMe-Signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


# --- settings and signatures -------------------------------------------------------------------

def test_settings() -> None:
    assert SETTINGS == {"secret": SECRET} and ADAPTER.configured(SETTINGS)
    assert not ADAPTER.configured(ADAPTER.settings_from_env({}))


def test_good_signature(shared_dir) -> None:
    body = published(shared_dir, "mention_me", "consumer.referee.register.request.json")
    ADAPTER.verify(sign(body), body, SETTINGS, NOW)
    ADAPTER.verify({"x-mentionme-signature": sign(body)["X-MentionMe-Signature"].upper().replace("SHA256=", "sha256=")},
                   body, SETTINGS, NOW)


def test_base64_digest_is_accepted_too() -> None:
    body = b'{"a": 1}'
    digest = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    ADAPTER.verify({"X-MentionMe-Signature": f"sha256={digest}"}, body, SETTINGS, NOW)


def test_bad_signature() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        ADAPTER.verify(sign(b"{}", "other"), b"{}", SETTINGS, NOW)
    with pytest.raises(SignatureError, match="does not match"):
        ADAPTER.verify(sign(b"{}"), b"{} ", SETTINGS, NOW)


@pytest.mark.parametrize("value", ["", "sha256", "sha256=", "sha256=zz", "sha1=" + "a" * 64, "a" * 64,
                                   "sha256=" + "a" * 63, "sha256=é"])
def test_malformed_header(value) -> None:
    with pytest.raises(SignatureError, match="malformed"):
        ADAPTER.verify({"X-MentionMe-Signature": value}, b"{}", SETTINGS, NOW)


def test_missing_header() -> None:
    with pytest.raises(SignatureError, match="missing"):
        ADAPTER.verify({}, b"{}", SETTINGS, NOW)


# --- published examples -----------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("entry-point.offer.enrol-referrer.request.json", {
        "id": "mention_me:enrol:jane.doe@example.com", "type": "referrer.enrolled", "occurred_at": NOW_ISO,
        "source": "mention_me", "referrer": {"email": "jane.doe@example.com", "locale": "en_GB"}}),
    ("consumer.referee.register.request.json", {
        "id": "mention_me:referee:jane.doe@example.com", "type": "friend.registered", "occurred_at": NOW_ISO,
        "source": "mention_me", "friend": {"email": "jane.doe@example.com"}}),
    ("consumer.coupon_redemption.record-order.request.json", {
        "id": "mention_me:order:123456", "type": "friend.converted", "occurred_at": "2026-03-19T11:55:45Z",
        "source": "mention_me", "friend": {"promo_code": "ABC23252"},
        "order": {"id": "123456", "total": "100.00", "currency": "GBP", "coupon_code": "ABC23252"}}),
])
def test_published_examples(shared_dir, name, expected) -> None:
    result = run("mention_me", published(shared_dir, "mention_me", name), SETTINGS)
    assert result.events == [expected] and result.ignored == []


def test_dashboard_response_is_not_an_event(shared_dir) -> None:
    body = published(shared_dir, "mention_me", "consumer.referrer.dashboard.response.json")
    result = run("mention_me", body, SETTINGS)
    assert result.events == [] and result.ignored == ["unrecognised"]


# --- our own fixtures -------------------------------------------------------------------------

def test_order_with_a_customer_is_their_conversion(shared_dir) -> None:
    body = published_json(shared_dir, "mention_me", "consumer.coupon_redemption.record-order.request.json")
    body["customer"] = {"emailAddress": " Friend@Example.com", "firstname": "Fran", "surname": "Friend",
                        "uniqueIdentifier": "cust-77"}
    body["order"]["total"] = "59.9"
    event = run("mention_me", body, SETTINGS).events[0]
    assert event["friend"] == {"email": "friend@example.com", "first_name": "Fran", "last_name": "Friend",
                               "customer_id": "cust-77", "promo_code": "ABC23252"}
    assert event["order"] == {"id": "123456", "total": "59.90", "currency": "GBP", "coupon_code": "ABC23252"}


def test_post_purchase_enrolment_with_an_order_is_an_enrolment(shared_dir) -> None:
    body = published_json(shared_dir, "mention_me", "entry-point.offer.enrol-referrer.request.json")
    body["order"] = {"orderIdentifier": "o-1", "total": "20", "currencyCode": "GBP"}
    assert run("mention_me", body, SETTINGS).events[0]["type"] == "referrer.enrolled"


def test_wrapped_body_and_a_known_referrer(shared_dir) -> None:
    inner = published_json(shared_dir, "mention_me", "consumer.referee.register.request.json")
    inner["referrerMentionMeIdentifier"] = "mm-ref-42"
    event = run("mention_me", {"event": "referee-registered", "data": inner}, SETTINGS).events[0]
    assert event["referrer"] == {"source_id": "mm-ref-42", "referrer_id": "mm-ref-42"}


def test_duplicate_delivery_has_the_same_dedupe_id(shared_dir) -> None:
    body = published(shared_dir, "mention_me", "consumer.coupon_redemption.record-order.request.json")
    assert run("mention_me", body, SETTINGS).events[0]["id"] == run("mention_me", body, SETTINGS).events[0]["id"]


def test_unknown_event_is_ignored() -> None:
    result = run("mention_me", {"event": "reward-issued", "data": {"something": "else"}}, SETTINGS)
    assert result.events == [] and result.ignored == ["reward-issued"]


def test_missing_email_gives_a_party_with_source_id_only(shared_dir) -> None:
    body = published_json(shared_dir, "mention_me", "consumer.referee.register.request.json")
    body["customer"] = {"emailAddress": "", "uniqueIdentifier": "cust-9"}
    body["referrerMentionMeIdentifier"] = "mm-ref-1"
    event = run("mention_me", body, SETTINGS).events[0]
    assert event["friend"] == {"customer_id": "cust-9"}
    assert event["referrer"] == {"source_id": "mm-ref-1", "referrer_id": "mm-ref-1"}


@pytest.mark.parametrize("body", [b"x=1&y=2", b"[]", b"null"])
def test_not_mention_me_shape_is_payload_error(body) -> None:
    with pytest.raises(PayloadError):
        run("mention_me", body, SETTINGS)

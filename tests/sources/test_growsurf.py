"""GrowSurf: ts/v signatures with a millisecond timestamp, published examples, own fixtures."""
from __future__ import annotations

import copy
import hashlib
import hmac

import pytest

from sources import PayloadError, SOURCES, SettingsError, SignatureError

from .helpers import NOW, dumps, published, published_json, run

ADAPTER = SOURCES["growsurf"]
SECRET = "gs-secret-for-tests"
SETTINGS = ADAPTER.settings_from_env({"HUB_SOURCE_GROWSURF_SECRET": SECRET, "HUB_SOURCE_GROWSURF_TOLERANCE": "300"})


def sign(body: bytes, ts_ms: int | None = None, secret: str = SECRET) -> dict[str, str]:
    ts = str(int(NOW * 1000) if ts_ms is None else ts_ms)
    digest = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"GrowSurf-Signature": f"ts={ts},v={digest}"}


# --- settings and signatures -------------------------------------------------------------------

def test_settings() -> None:
    assert SETTINGS == {"secret": SECRET, "tolerance": 300}
    assert ADAPTER.configured(SETTINGS) and not ADAPTER.configured(ADAPTER.settings_from_env({}))
    assert ADAPTER.settings_from_env({})["tolerance"] == 300
    with pytest.raises(SettingsError) as caught:
        ADAPTER.settings_from_env({"HUB_SOURCE_GROWSURF_TOLERANCE": "five minutes"})
    assert "five" not in str(caught.value)


def test_good_signature_over_raw_bytes(shared_dir) -> None:
    body = published(shared_dir, "growsurf", "PARTICIPANT_REACHED_A_GOAL.json")
    ADAPTER.verify(sign(body), body, SETTINGS, NOW)
    ADAPTER.verify({"growsurf-signature": sign(body)["GrowSurf-Signature"]}, body, SETTINGS, NOW + 299)


def test_header_parts_in_any_order_with_spaces_and_stray_commas() -> None:
    body = b'{"event":"X","data":{}}'
    ts, v = sign(body)["GrowSurf-Signature"].split(",")
    ADAPTER.verify({"GrowSurf-Signature": f" {v} , {ts} ,"}, body, SETTINGS, NOW)


def test_bad_signature() -> None:
    body = b'{"event":"X","data":{}}'
    with pytest.raises(SignatureError, match="does not match"):
        ADAPTER.verify(sign(body, secret="other"), body, SETTINGS, NOW)
    with pytest.raises(SignatureError, match="does not match"):
        ADAPTER.verify(sign(body), body.replace(b"X", b"Y"), SETTINGS, NOW)


@pytest.mark.parametrize("offset_ms", [-301_000, 301_000, -3 * 86_400_000])
def test_stale_or_future_timestamp(offset_ms) -> None:
    body = b'{"event":"X","data":{}}'
    with pytest.raises(SignatureError, match="tolerance"):
        ADAPTER.verify(sign(body, int(NOW * 1000) + offset_ms), body, SETTINGS, NOW)


def test_timestamp_in_seconds_is_stale() -> None:
    body = b"{}"
    with pytest.raises(SignatureError, match="tolerance"):
        ADAPTER.verify(sign(body, int(NOW)), body, SETTINGS, NOW)


@pytest.mark.parametrize("value", [
    "", "garbage", "v=" + "a" * 64, "ts=1767225600000", "t=1767225600000,v=" + "a" * 64,
    "ts=abc,v=" + "a" * 64, "ts=1767225600000,v=xyz", "ts=١٢٣,v=" + "a" * 64, "ts=" + "9" * 40 + ",v=" + "a" * 64,
])
def test_malformed_header(value) -> None:
    with pytest.raises(SignatureError, match="malformed"):
        ADAPTER.verify({"GrowSurf-Signature": value}, b"{}", SETTINGS, NOW)


def test_missing_header() -> None:
    with pytest.raises(SignatureError, match="missing"):
        ADAPTER.verify({}, b"{}", SETTINGS, NOW)


# --- published examples -----------------------------------------------------------------------

RICHARD = {"email": "richard@piedpiper.com", "first_name": "Richard", "last_name": "Hendricks", "source_id": "x9a7uu",
           "referrer_id": "x9a7uu", "share_url": "http://piedpiper.com?grsf=x9a7uu"}
GAVIN = {"email": "gavin.belson@hooli.com", "first_name": "Gavin", "last_name": "Belson", "source_id": "p88y0a"}
BILLY = {"email": "i_was_referred@somesite.com", "first_name": "Billy", "last_name": "Smith", "source_id": "uxjbxu"}
REGISTERED = {"id": "growsurf:NEW_PARTICIPANT_ADDED|1558345215720|ct8f71|p88y0a|", "type": "friend.registered",
              "occurred_at": "2019-05-20T09:40:15.720Z", "source": "growsurf", "friend": GAVIN, "referrer": RICHARD}


@pytest.mark.parametrize("name", ["NEW_PARTICIPANT_ADDED.json", "NEW_PARTICIPANT_ADDED.verbatim-invalid.json.txt"])
def test_participant_with_referrer_is_friend_registered(shared_dir, name) -> None:
    """The verbatim docs example has trailing commas: parsed leniently, it means the same."""
    result = run("growsurf", published(shared_dir, "growsurf", name), SETTINGS)
    assert result.events == [REGISTERED]
    assert {i["source_id"]: i["email"] for i in result.identities} == {"x9a7uu": "richard@piedpiper.com",
                                                                       "p88y0a": "gavin.belson@hooli.com"}


def test_goal_reached_by_referrer_is_reward_granted(shared_dir) -> None:
    result = run("growsurf", published(shared_dir, "growsurf", "PARTICIPANT_REACHED_A_GOAL.json"), SETTINGS)
    assert result.events == [{
        "id": "growsurf:PARTICIPANT_REACHED_A_GOAL|1558345202613|ct8f71|x9a7uu|prew_ccm2ue", "type": "reward.granted",
        "occurred_at": "2019-05-20T09:40:02.613Z", "source": "growsurf", "referrer": RICHARD, "friend": BILLY,
        "reward": {"recipient": "referrer", "kind": "coupon", "code": "PROMO_20_OFF", "value": "25.00",
                   "currency": "USD"}}]


@pytest.mark.parametrize("name", ["COMMISSION_ADJUSTED.json", "PARTICIPANT_FRAUD_STATUS_UPDATED.json"])
def test_reversal_and_fraud_are_acknowledged_not_mapped(shared_dir, name) -> None:
    result = run("growsurf", published(shared_dir, "growsurf", name), SETTINGS)
    assert result.events == [] and result.ignored == [name.removesuffix(".json")]


# --- our own fixtures -------------------------------------------------------------------------

def test_participant_without_referrer_is_referrer_enrolled(shared_dir) -> None:
    body = published_json(shared_dir, "growsurf", "NEW_PARTICIPANT_ADDED.json")
    for key in ("referrer", "referredBy"):
        del body["data"][key]
    body["data"]["referralSource"] = "DIRECT"
    assert run("growsurf", body, SETTINGS).events == [{
        "id": "growsurf:NEW_PARTICIPANT_ADDED|1558345215720|ct8f71|p88y0a|", "type": "referrer.enrolled",
        "occurred_at": "2019-05-20T09:40:15.720Z", "source": "growsurf",
        "referrer": {**GAVIN, "referrer_id": "p88y0a", "share_url": "http://piedpiper.com?grsf=p88y0a"}}]


def friend_side(goal: dict) -> dict:
    """The second delivery of a double-sided reward: the referred friend's side."""
    other = copy.deepcopy(goal)
    billy = other["data"]["participant"].pop("referee")
    richard = {k: v for k, v in other["data"]["participant"].items() if k != "referee"}
    other["data"]["participant"] = {**billy, "referrer": richard}
    other["data"]["reward"].update(isReferrer=False, id="prew_friend1", type="DOUBLE_SIDED", couponCode="WELCOME-10")
    return other


def test_double_sided_reward_is_two_events(shared_dir) -> None:
    goal = published_json(shared_dir, "growsurf", "PARTICIPANT_REACHED_A_GOAL.json")
    goal["data"]["reward"]["type"] = "DOUBLE_SIDED"
    referrer_side = run("growsurf", goal, SETTINGS).events
    friend_side_events = run("growsurf", friend_side(goal), SETTINGS).events
    assert friend_side_events == [{
        "id": "growsurf:PARTICIPANT_REACHED_A_GOAL|1558345202613|ct8f71|uxjbxu|prew_friend1", "type": "reward.granted",
        "occurred_at": "2019-05-20T09:40:02.613Z", "source": "growsurf", "friend": BILLY, "referrer": RICHARD,
        "reward": {"recipient": "friend", "kind": "coupon", "code": "WELCOME-10", "value": "25.00", "currency": "USD"}}]
    assert referrer_side[0]["id"] != friend_side_events[0]["id"]
    assert referrer_side[0]["reward"]["recipient"] == "referrer"


def test_manual_approval_counts_once(shared_dir) -> None:
    pending = published_json(shared_dir, "growsurf", "PARTICIPANT_REACHED_A_GOAL.json")
    pending["data"]["reward"]["approved"] = False
    approved = copy.deepcopy(pending)
    approved["data"]["reward"]["approved"] = True
    approved["createdAt"] += 60_000
    assert run("growsurf", pending, SETTINGS).ignored == ["PARTICIPANT_REACHED_A_GOAL"]
    assert len(run("growsurf", approved, SETTINGS).events) == 1


def test_duplicate_delivery_has_the_same_dedupe_id(shared_dir) -> None:
    body = published(shared_dir, "growsurf", "PARTICIPANT_REACHED_A_GOAL.json")
    assert run("growsurf", body, SETTINGS).events[0]["id"] == run("growsurf", body, SETTINGS).events[0]["id"]


def commission(sale_amount: int, currency_iso: str) -> dict:
    """NEW_COMMISSION_ADDED as the events reference describes it (its own example is mislabelled)."""
    return {"event": "NEW_COMMISSION_ADDED", "createdAt": 1767225600000, "data": {
        "participant": {"id": "f8g9nl", "email": "Ref@Example.com", "shareUrl": "https://x.example/?grsf=f8g9nl"},
        "referredParticipant": {"id": "xh345d"},
        "campaign": {"id": "ct8f71", "currencyISO": currency_iso},
        "commission": {"id": "comm_jp1ku7", "referrerId": "f8g9nl", "referredId": "xh345d", "amount": 2500,
                       "currencyISO": currency_iso, "saleAmount": sale_amount, "createdAt": 1731494175123}}}


def test_new_commission_is_friend_converted_with_minor_units() -> None:
    assert run("growsurf", commission(10000, "USD"), SETTINGS).events == [{
        "id": "growsurf:NEW_COMMISSION_ADDED|1767225600000|ct8f71|f8g9nl|comm_jp1ku7", "type": "friend.converted",
        "occurred_at": "2024-11-13T10:36:15.123Z", "source": "growsurf",
        "friend": {"source_id": "xh345d"},
        "referrer": {"email": "ref@example.com", "source_id": "f8g9nl", "referrer_id": "f8g9nl",
                     "share_url": "https://x.example/?grsf=f8g9nl"},
        "order": {"id": "comm_jp1ku7", "total": "100.00", "currency": "USD"}}]
    assert run("growsurf", commission(10000, "JPY"), SETTINGS).events[0]["order"]["total"] == "10000"


def test_unknown_event_is_ignored() -> None:
    result = run("growsurf", {"event": "PARTICIPANT_REACHED_REWARD", "createdAt": 1, "data": {"x": 1}}, SETTINGS)
    assert result.events == [] and result.ignored == ["PARTICIPANT_REACHED_REWARD"]


def test_missing_email_gives_a_party_with_source_id_only(shared_dir) -> None:
    body = published_json(shared_dir, "growsurf", "NEW_PARTICIPANT_ADDED.json")
    del body["data"]["referrer"]
    del body["data"]["email"]
    event = run("growsurf", body, SETTINGS).events[0]
    assert event["friend"] == {"first_name": "Gavin", "last_name": "Belson", "source_id": "p88y0a"}
    assert event["referrer"] == {"source_id": "x9a7uu", "referrer_id": "x9a7uu"}


@pytest.mark.parametrize("body", [b"nope", b"[]", b'{"data": {}}', b'{"event": 3}', dumps(["event"])])
def test_not_growsurf_shape_is_payload_error(body) -> None:
    with pytest.raises(PayloadError):
        run("growsurf", body, SETTINGS)

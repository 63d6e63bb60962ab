"""POST /v1/webhooks/<source>: each platform's webhook through the Flask app into the ledger,
with parking of events whose people the hub cannot name yet, and the ops views of both."""
from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from hub.core.ledger import get_ledger
from tests.sources.test_friendbuy import sign as friendbuy_sign
from tests.sources.test_growsurf import sign as growsurf_sign
from tests.sources.test_mention_me import sign as mention_me_sign
from tests.sources.test_saasquatch import KID, TENANT, signed as saasquatch_signed
from tests.sources.test_voucherify import envelope
from tests.sources.test_voucherify import sign as voucherify_sign

SECRETS = {"mention_me": "mm-hub-secret", "voucherify": "vf-hub-secret", "friendbuy": "fb-hub-secret",
           "growsurf": "gs-hub-secret", "talon_one": "Basic dGFsb246b25l-hub"}
OPS = {"Authorization": "Bearer ops-token"}


# --- signing, as each platform does it -----------------------------------------------------------

@pytest.fixture(scope="session")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_of(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**public, "kid": KID, "use": "sig", "alg": "RS256"}]}


def source_env(key: rsa.RSAPrivateKey) -> dict[str, str]:
    """Every source configured: the variables without their HUB_ prefix (config keys)."""
    return {
        "SOURCE_MENTION_ME_SECRET": SECRETS["mention_me"],
        "SOURCE_VOUCHERIFY_SECRET": SECRETS["voucherify"], "SOURCE_VOUCHERIFY_CURRENCY": "GBP",
        "SOURCE_TALON_ONE_HEADER_NAME": "Authorization", "SOURCE_TALON_ONE_HEADER_VALUE": SECRETS["talon_one"],
        "SOURCE_TALON_ONE_CURRENCY": "EUR", "SOURCE_TALON_ONE_LOYALTY_PROGRAMS": "5",
        "SOURCE_FRIENDBUY_SECRET": SECRETS["friendbuy"],
        "SOURCE_GROWSURF_SECRET": SECRETS["growsurf"],
        "SOURCE_SAASQUATCH_JWKS": json.dumps(jwks_of(key)), "SOURCE_SAASQUATCH_TENANT": TENANT,
    }


def sign(source: str, body: bytes, key: rsa.RSAPrivateKey, secret: str | None = None,
         ts_ms: int | None = None) -> dict[str, str]:
    """The headers the platform sends with this body (another secret or key makes a bad one)."""
    secret = secret or SECRETS.get(source, "")
    if source == "mention_me":
        return mention_me_sign(body, secret)
    if source == "voucherify":
        return voucherify_sign(body, secret)
    if source == "friendbuy":
        return friendbuy_sign(body, secret)
    if source == "growsurf":
        return growsurf_sign(body, int(time.time() * 1000) if ts_ms is None else ts_ms, secret)
    if source == "talon_one":
        return {"Authorization": secret}
    if source == "saasquatch":
        return saasquatch_signed(body, key)
    raise KeyError(source)


def dumps(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def post(client: Any, source: str, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(f"/v1/webhooks/{source}", data=body, headers={"Content-Type": "application/json", **headers})


def send(client: Any, source: str, payload: Any, key: rsa.RSAPrivateKey, **extra: str) -> Any:
    body = payload if isinstance(payload, bytes) else dumps(payload)
    return post(client, source, body, {**sign(source, body, key), **extra})


# --- the project's own fixtures: one delivery per platform and the state it must produce -------

def saasquatch(kind: str, data: dict[str, Any], hook_id: str) -> dict[str, Any]:
    return {"id": hook_id, "type": kind, "tenantAlias": TENANT, "live": False, "created": 1767225600000,
            "data": data}


def sq_user(user_id: str, address: str, first: str, code: str) -> dict[str, Any]:
    return saasquatch("user.created", {"id": user_id, "accountId": user_id, "email": address, "firstName": first,
                                       "referralCodes": {"classic": code}, "dateCreated": 1767225600000},
                      f"hook-user-{user_id}")


def sq_referral(kind: str, friend: str, referrer: str, hook_id: str, when: int = 1767229200000) -> dict[str, Any]:
    return saasquatch(kind, {"id": f"ref-{friend}", "referredUser": friend, "referrerUser": referrer,
                             "referred": {"id": friend}, "referrer": {"id": referrer}, "referralCodeUsed": "ROSA",
                             "moderationStatus": "PENDING", "dateReferralStarted": when, "dateConverted": when},
                      hook_id)


def vf_published(customer_id: str, address: str, code: str) -> dict[str, Any]:
    return envelope("publication.succeeded", {
        "publication": {"id": f"pub_{customer_id}", "created_at": "2026-01-02T09:00:00Z"},
        "customer": {"id": customer_id, "email": address, "name": "Rita Holder", "source_id": "rita-1"},
        "voucher": {"code": code, "is_referral_code": True, "holder_id": customer_id}},
        event_id=f"ev_pub_{customer_id}")


def vf_redeemed(customer: dict[str, Any], holder: str, code: str, order: str, cents: int) -> dict[str, Any]:
    return envelope("redemption.succeeded", {
        "redemption": {"id": f"r_{order}", "result": "SUCCESS", "date": "2026-01-05T12:00:00Z"},
        "customer": customer, "voucher": {"code": code, "is_referral_code": True, "holder_id": holder},
        "order": {"id": f"ord_{order}", "source_id": order, "amount": cents + 1000, "total_amount": cents}},
        event_id=f"ev_red_{order}")


GOOD: dict[str, Any] = {
    "mention_me": {"customer": {"emailAddress": "Fran@Example.com", "firstname": "Fran", "surname": "Ng"},
                   "order": {"orderIdentifier": "MM-1", "total": "59.90", "currencyCode": "GBP",
                             "couponCode": "FRAN-10", "dateString": "2026-03-01T10:00:00Z"}},
    "voucherify": vf_published("cust_rita", "rita@example.com", "RITA-REF"),
    "talon_one": {"type": "friend.converted", "occurred_at": "2026-03-02T10:00:00Z", "referral_code": "TOM-5",
                  "advocate_integration_id": "p-tom", "advocate_email": "tom@example.com",
                  "friend_integration_id": "p-tia", "friend_email": "tia@example.com", "order_id": "sess-7",
                  "order_total": "42.50", "currency": "EUR"},
    "friendbuy": {"id": "call-1", "type": "advocateReward", "createdOn": "2026-03-03T10:00:00Z",
                  "data": [{"rewardId": "rw-1", "rewardType": "discount", "rewardUnit": "USD",
                            "rewardAmount": "20.00", "emailAddress": "ada@example.com", "customerId": "c-ada",
                            "couponCode": "ADA-20", "createdOn": "2026-03-03T10:00:00Z"}]},
    "growsurf": {"event": "NEW_PARTICIPANT_ADDED", "createdAt": 1767225600000,
                 "data": {"campaign": {"id": "camp1", "currencyISO": "USD"},
                          "participant": {"id": "gs-gus", "email": "gus@example.com", "firstName": "Gus",
                                          "shareUrl": "https://shop.example/?grsf=gs-gus"}}},
    "saasquatch": sq_user("sq-sam", "sam@example.com", "Sam", "SAM1"),
}
# What the ledger holds afterwards (a subset of each contact's state).
GOOD_STATE: dict[str, dict[str, dict[str, Any]]] = {
    "mention_me": {"fran@example.com": {"is_friend": True, "first_name": "Fran", "promo_code": "FRAN-10",
                                        "first_order_total": Decimal("59.90"), "first_order_id": "MM-1",
                                        "converted_at": "2026-03-01T10:00:00.000000Z"}},
    "voucherify": {"rita@example.com": {"is_referrer": True, "referrer_id": "cust_rita", "first_name": "Rita",
                                        "enrolled_at": "2026-01-02T09:00:00.000000Z"}},
    "talon_one": {"tia@example.com": {"is_friend": True, "referred_by": "tom@example.com", "promo_code": "TOM-5",
                                      "first_order_total": Decimal("42.50"), "first_order_currency": "EUR"},
                  "tom@example.com": {"is_referrer": True, "friends_registered": 1, "friends_converted": 1,
                                      "turnover": {"EUR": Decimal("42.50")}, "referrer_id": "p-tom"}},
    "friendbuy": {"ada@example.com": {"is_referrer": True, "rewards_earned": 1, "reward_code": "ADA-20",
                                      "reward_value": {"USD": Decimal("20.00")}}},
    "growsurf": {"gus@example.com": {"is_referrer": True, "referrer_id": "gs-gus", "first_name": "Gus",
                                     "share_url": "https://shop.example/?grsf=gs-gus"}},
    "saasquatch": {"sam@example.com": {"is_referrer": True, "referrer_id": "sq-sam", "first_name": "Sam",
                                       "enrolled_at": "2026-01-01T00:00:00.000000Z"}},
}
UNKNOWN: dict[str, Any] = {
    "mention_me": {"event": "referrer.dashboard.viewed", "data": {"viewed": True}},
    "voucherify": envelope("campaign.enabled", {"campaign": {"id": "camp_1"}}),
    "talon_one": {"type": "session.closed", "sessionId": "s-1"},
    "friendbuy": {"id": "call-9", "type": "customerUpdate", "data": [{"customerId": "c-1"}]},
    "growsurf": {"event": "CAMPAIGN_ENDED", "createdAt": 1767225600000, "data": {"campaign": {"id": "camp1"}}},
    "saasquatch": saasquatch("theme.publish.finished", {}, "hook-theme"),
}
UNKNOWN_LABEL = {"mention_me": "referrer.dashboard.viewed", "voucherify": "campaign.enabled",
                 "talon_one": "session.closed", "friendbuy": "customerUpdate", "growsurf": "CAMPAIGN_ENDED",
                 "saasquatch": "theme.publish.finished"}
# A header of the right name that is not in the scheme's format at all (Talon.One has no format:
# its credential is a plain value, so the malformed case is the header missing).
MALFORMED: dict[str, dict[str, str]] = {
    "mention_me": {"X-MentionMe-Signature": "sha256=not-hex"},
    "voucherify": {"x-voucherify-signature": "zz" * 40},
    "talon_one": {},
    "friendbuy": {"X-Friendbuy-Hmac-SHA256": "%%% not base64 %%%"},
    "growsurf": {"GrowSurf-Signature": "ts=abc,v=xyz"},
    "saasquatch": {"X-Hook-JWS-RFC-7797": "one.two"},
}
PLATFORMS = sorted(GOOD)


@pytest.fixture
def app(make_app, key):  # type: ignore[no-untyped-def]
    return make_app(**source_env(key))


def states(app: Any, emails: list[str]) -> dict[str, dict[str, Any] | None]:
    with app.app_context():
        return get_ledger().states(emails)


def holds(app: Any, expected: dict[str, dict[str, Any]]) -> None:
    found = states(app, list(expected))
    for address, want in expected.items():
        assert found[address] is not None, address
        assert {k: found[address].get(k) for k in want} == want, address


def stats(app: Any) -> dict[str, int]:
    with app.app_context():
        raw = app.extensions["redis"].hgetall("hub:webhooks:stats")
    return {k.decode(): int(v) for k, v in raw.items()}


# --- per platform ----------------------------------------------------------------------------

@pytest.mark.parametrize("source", PLATFORMS)
def test_good_signature_is_accepted_into_the_ledger(app, key, source) -> None:
    response = send(app.test_client(), source, GOOD[source], key, **{"X-UUID": "msg-1"} if source == "talon_one" else {})
    assert response.status_code == 202, response.json
    assert response.json == {"accepted": 1, "duplicates": 0, "parked": 0, "rejected": 0, "ignored": 0}
    holds(app, GOOD_STATE[source])
    assert stats(app)[f"{source}:accepted:{dumps_type(source)}"] == 1


def dumps_type(source: str) -> str:
    return {"mention_me": "friend.converted", "voucherify": "referrer.enrolled", "talon_one": "friend.converted",
            "friendbuy": "reward.granted", "growsurf": "referrer.enrolled", "saasquatch": "referrer.enrolled"}[source]


@pytest.mark.parametrize("source", PLATFORMS)
def test_bad_signature_is_401_and_changes_nothing(app, key, source) -> None:
    body = dumps(GOOD[source])
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048) if source == "saasquatch" else key
    headers = sign(source, body, other, secret="not-the-secret")
    response = post(app.test_client(), source, body, headers)
    assert response.status_code == 401 and response.json["error"]["code"] == "unauthorized"
    assert "not-the-secret" not in response.get_data(as_text=True)
    assert all(state is None for state in states(app, list(GOOD_STATE[source])).values())
    assert stats(app) == {f"{source}:unauthorized:-": 1}


@pytest.mark.parametrize("source", PLATFORMS)
def test_tampered_body_is_401(app, key, source) -> None:
    body = dumps(GOOD[source])
    response = post(app.test_client(), source, body.replace(b"@", b"+x@", 1), sign(source, body, key))
    assert response.status_code == (202 if source == "talon_one" else 401)  # Talon.One signs nothing


def test_stale_or_future_growsurf_timestamp_is_401(app, key) -> None:
    body, now_ms = dumps(GOOD["growsurf"]), int(time.time() * 1000)
    for offset in (-301_000, 301_000):
        response = post(app.test_client(), "growsurf", body, sign("growsurf", body, key, ts_ms=now_ms + offset))
        assert response.status_code == 401 and "tolerance" in response.json["error"]["message"]
    assert post(app.test_client(), "growsurf", body, sign("growsurf", body, key, ts_ms=now_ms - 60_000)).status_code == 202


@pytest.mark.parametrize("source", PLATFORMS)
def test_malformed_or_missing_header_is_401_never_500(app, key, source) -> None:
    body = dumps(GOOD[source])
    for headers in (MALFORMED[source], {}):
        response = post(app.test_client(), source, body, headers)
        assert response.status_code == 401, (headers, response.json)


@pytest.mark.parametrize("source", PLATFORMS)
def test_duplicate_delivery_counts_once(app, key, source) -> None:
    client, extra = app.test_client(), {"X-UUID": "msg-1"} if source == "talon_one" else {}
    assert send(client, source, GOOD[source], key, **extra).json["accepted"] == 1
    before = states(app, list(GOOD_STATE[source]))
    again = send(client, source, GOOD[source], key, **extra)
    assert again.status_code == 202
    assert again.json == {"accepted": 0, "duplicates": 1, "parked": 0, "rejected": 0, "ignored": 0}
    assert states(app, list(GOOD_STATE[source])) == before


@pytest.mark.parametrize("source", PLATFORMS)
def test_unknown_type_is_acknowledged_and_counted(app, key, source) -> None:
    client = app.test_client()
    for _ in range(2):
        response = send(client, source, UNKNOWN[source], key)
        assert response.status_code == 202
        assert response.json == {"accepted": 0, "duplicates": 0, "parked": 0, "rejected": 0, "ignored": 1}
    assert stats(app) == {f"{source}:ignored:{UNKNOWN_LABEL[source]}": 2}


def test_body_not_json_is_400(app, key) -> None:
    # (SaaSquatch answers 401: its tenant alias, read from the body, is part of what is verified.)
    for source in ("mention_me", "voucherify", "growsurf", "talon_one"):
        body = b"{not json"
        response = post(app.test_client(), source, body, sign(source, body, key))
        assert response.status_code == 400 and response.json["error"]["code"] == "invalid_payload", source


def test_friendbuy_never_answers_400(app, key) -> None:
    """Friendbuy's reward validation reads 400 as "reject the reward": an unreadable body is 200,
    counted and kept for ops, never a rejected reward (nor a 5xx retried for three days)."""
    client = app.test_client()
    for body in (b"{not json", b"[1, 2]", b'{"neither": "type nor eventType"}'):
        response = post(client, "friendbuy", body, sign("friendbuy", body, key))
        assert response.status_code == 200 and response.json["rejected"] == 1, body
    assert stats(app) == {"friendbuy:rejected:unreadable": 3}
    listed = client.get("/v1/webhooks/rejected?source=friendbuy", headers=OPS).json
    assert [r["body"] for r in listed["rejected"]][-1] == "{not json"


def test_friendbuy_reward_validation_callback_answers_200(app, key) -> None:
    callback = {"eventType": "purchase", "campaignId": "camp-1", "createdOn": "2026-03-04T10:00:00Z",
                "purchase": {"id": "order-9", "amount": 80, "currency": "USD", "email": "fay@example.com",
                             "customerId": "c-fay", "isNewCustomer": True},
                "advocate": {"customerId": "c-ada", "email": "ada@example.com"}}
    response = send(app.test_client(), "friendbuy", callback, key)
    assert response.status_code == 200 and response.json["accepted"] == 1
    holds(app, {"ada@example.com": {"friends_converted": 1, "turnover": {"USD": Decimal("80.00")}},
                "fay@example.com": {"referred_by": "ada@example.com", "first_order_total": Decimal("80.00")}})


def test_an_adapter_bug_is_acknowledged_and_the_body_kept(app, key, monkeypatch) -> None:
    """A crash inside an adapter must not turn into 5xx retries that get the endpoint disabled."""
    from sources import SOURCES

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("adapter bug")
    monkeypatch.setattr(SOURCES["growsurf"], "map", broken)
    response = send(app.test_client(), "growsurf", GOOD["growsurf"], key)
    assert response.status_code == 202 and response.json["rejected"] == 1
    kept = app.test_client().get("/v1/webhooks/rejected", headers=OPS).json["rejected"][0]
    assert kept["source"] == "growsurf" and json.loads(kept["body"]) == GOOD["growsurf"]


def test_unknown_source_is_404(app) -> None:
    response = app.test_client().post("/v1/webhooks/referralcandy", data=b"{}")
    assert response.status_code == 404 and response.json["error"]["code"] == "unknown_source"


def test_unconfigured_source_is_404(make_app, key) -> None:
    env = {k: v for k, v in source_env(key).items() if not k.startswith("SOURCE_FRIENDBUY")}
    client = make_app(**env).test_client()
    body = dumps(GOOD["friendbuy"])
    response = post(client, "friendbuy", body, sign("friendbuy", body, key))
    assert response.status_code == 404 and response.json["error"]["code"] == "source_not_configured"
    assert "HUB_SOURCE_FRIENDBUY_" in response.json["error"]["message"]


def test_unusable_settings_are_503_without_the_value(make_app, key) -> None:
    client = make_app(**{**source_env(key), "SOURCE_SAASQUATCH_JWKS": "{secret-looking-json"}).test_client()
    body = dumps(GOOD["saasquatch"])
    response = post(client, "saasquatch", body, sign("saasquatch", body, key))
    assert response.status_code == 503 and response.json["error"]["code"] == "source_misconfigured"
    assert "secret-looking" not in response.get_data(as_text=True)


# --- people known only by an id or a promo code: parked, visible, applied later ----------------

def parked(app: Any) -> dict[str, Any]:
    return app.test_client().get("/v1/webhooks/parked", headers=OPS).json


def test_saasquatch_referral_before_the_users_is_parked_then_applied(app, key) -> None:
    client = app.test_client()
    started = send(client, "saasquatch", sq_referral("referral.started", "sq-fred", "sq-rosa", "hook-r1"), key)
    assert started.status_code == 202 and started.json["parked"] == 1 and started.json["accepted"] == 0
    with app.app_context():
        assert app.extensions["redis"].zscore("hub:parked", "saasquatch:id:sq-fred") is not None
    view = parked(app)
    assert view["total"] == 1
    assert view["parked"][0]["waiting_for"] == {"kind": "id", "value": "sq-fred"}
    assert "SaaSquatch id sq-fred" in view["parked"][0]["reason"]
    assert [e["id"] for e in view["parked"][0]["events"]] == ["saasquatch:hook-r1"]

    # The friend's user.created names the friend: the registration is applied; the referrer is
    # still unknown, so a copy waits to credit them.
    fred = send(client, "saasquatch", sq_user("sq-fred", "fred@example.com", "Fred", "FRED1"), key)
    assert fred.json == {"accepted": 2, "duplicates": 0, "parked": 1, "rejected": 0, "ignored": 0}
    holds(app, {"fred@example.com": {"is_friend": True, "registered_at": "2026-01-01T01:00:00.000000Z"}})
    assert "referred_by" not in states(app, ["fred@example.com"])["fred@example.com"]
    assert [p["waiting_for"]["value"] for p in parked(app)["parked"]] == ["sq-rosa"]

    rosa = send(client, "saasquatch", sq_user("sq-rosa", "rosa@example.com", "Rosa", "ROSA"), key)
    assert rosa.json["accepted"] == 2 and rosa.json["parked"] == 0
    holds(app, {"rosa@example.com": {"is_referrer": True, "friends_registered": 1, "friends_converted": 0},
                "fred@example.com": {"referred_by": "rosa@example.com"}})
    assert parked(app) == {"total": 0, "parked": []}

    # Once known, ids resolve at once; a repeat of the parked delivery is a duplicate.
    converted = send(client, "saasquatch", sq_referral("referral.converted", "sq-fred", "sq-rosa", "hook-r2"), key)
    assert converted.json["accepted"] == 1
    assert send(client, "saasquatch", sq_referral("referral.started", "sq-fred", "sq-rosa", "hook-r1"), key
                ).json["duplicates"] == 1
    holds(app, {"rosa@example.com": {"friends_registered": 1, "friends_converted": 1}})
    assert stats(app)["saasquatch:parked:friend.registered"] == 2


def test_voucherify_null_email_is_parked_until_the_customer_is_known(app, key) -> None:
    client = app.test_client()
    assert send(client, "voucherify", vf_published("cust_rita", "rita@example.com", "RITA-REF"), key).json["accepted"] == 1
    nobody = {"id": "cust_vic", "email": None, "name": None, "source_id": "vic-1"}
    redeemed = send(client, "voucherify", vf_redeemed(nobody, "cust_rita", "RITA-REF", "O-1", 7000), key)
    assert redeemed.status_code == 202 and redeemed.json["parked"] == 1
    assert states(app, ["rita@example.com"])["rita@example.com"]["friends_converted"] == 0
    assert parked(app)["parked"][0]["waiting_for"] == {"kind": "id", "value": "cust_vic"}

    created = envelope("customer.created", {"customer": {"id": "cust_vic", "email": "Vic@Example.com",
                                                         "source_id": "vic-1"}}, event_id="ev_cus_vic")
    response = send(client, "voucherify", created, key)
    assert response.json == {"accepted": 1, "duplicates": 0, "parked": 0, "rejected": 0, "ignored": 1}
    holds(app, {"vic@example.com": {"is_friend": True, "referred_by": "rita@example.com", "promo_code": "RITA-REF",
                                    "first_order_total": Decimal("70.00"), "first_order_currency": "GBP"},
                "rita@example.com": {"friends_converted": 1, "turnover": {"GBP": Decimal("70.00")}}})
    assert parked(app)["total"] == 0


def test_mention_me_in_store_coupon_resolves_by_promo_code(app, key) -> None:
    """An in-store coupon redemption names no customer: the friend is found by the coupon."""
    client = app.test_client()
    in_store = {"order": {"orderIdentifier": "SHOP-1", "total": "100", "currencyCode": "GBP",
                          "couponCode": "abc23252", "dateString": "2026-03-19T11:55:45+00:00"},
                "request": {"partnerCode": "P", "situation": "in-store"}}
    first = send(client, "mention_me", in_store, key)
    assert first.status_code == 202 and first.json["parked"] == 1
    assert parked(app)["parked"][0]["waiting_for"] == {"kind": "code", "value": "ABC23252"}

    online = {"customer": {"emailAddress": "june@example.com", "firstname": "June"},
              "order": {"orderIdentifier": "WEB-1", "total": "30.00", "currencyCode": "GBP",
                        "couponCode": "ABC23252", "dateString": "2026-03-18T10:00:00Z"}}
    taught = send(client, "mention_me", online, key)
    assert taught.json["accepted"] == 2 and parked(app)["total"] == 0
    # The in-store redemption is the later one, so the code as it was typed there is the latest.
    holds(app, {"june@example.com": {"is_friend": True, "first_order_id": "WEB-1", "promo_code": "abc23252"}})
    # Both orders are the friend's; the earlier one stays the first order.
    with app.app_context():
        orders = app.extensions["redis"].hgetall("hub:c:june@example.com:orders")
    assert sorted(orders) == [b"SHOP-1", b"WEB-1"]

    # Now known: the next in-store redemption of that code resolves at once.
    again = send(client, "mention_me", {**in_store, "order": {**in_store["order"], "orderIdentifier": "SHOP-2"}}, key)
    assert again.json["accepted"] == 1 and again.json["parked"] == 0


def test_a_code_shared_by_several_people_resolves_nobody(app, key) -> None:
    client = app.test_client()
    for n, person in enumerate(("kim@example.com", "lee@example.com")):
        body = {"customer": {"emailAddress": person}, "order": {"orderIdentifier": f"W-{n}", "total": "10",
                                                                "currencyCode": "GBP", "couponCode": "SPRING"}}
        assert send(client, "mention_me", body, key).json["accepted"] == 1
    in_store = {"order": {"orderIdentifier": "S-1", "total": "5", "currencyCode": "GBP", "couponCode": "SPRING"}}
    response = send(client, "mention_me", in_store, key)
    assert response.status_code == 202 and response.json["rejected"] == 1
    rejected = client.get("/v1/webhooks/rejected", headers=OPS).json["rejected"][0]
    assert rejected["event_id"] == "mention_me:order:S-1" and "shared by several people" in rejected["reasons"]


def test_invalid_event_is_acknowledged_rejected_and_listed(app, key) -> None:
    """An event the canonical schema refuses never blocks the platform: 202, counted, listed."""
    client = app.test_client()
    body = json.loads(json.dumps(GOOD["growsurf"]))
    body["data"]["participant"]["shareUrl"] = "not a url"
    response = send(client, "growsurf", body, key)
    assert response.status_code == 202 and response.json["rejected"] == 1 and response.json["accepted"] == 0
    view = client.get("/v1/webhooks/rejected?source=growsurf", headers=OPS).json
    entry = view["rejected"][0]
    assert entry["type"] == "referrer.enrolled" and entry["reasons"].startswith("referrer.share_url:")
    assert entry["event"]["referrer"]["email"] == "gus@example.com"
    assert stats(app)["growsurf:rejected:referrer.enrolled"] == 1


def test_erasure_forgets_the_identities(app, key) -> None:
    client = app.test_client()
    send(client, "voucherify", vf_published("cust_rita", "rita@example.com", "RITA-REF"), key)
    erased = envelope("customer.deleted", {"customer": {"id": "cust_rita", "email": "rita@example.com",
                                                        "source_id": "rita-1_deleted2026-02-01T11:16:40.918Z"}},
                      event_id="ev_del")
    assert send(client, "voucherify", erased, key).json["accepted"] == 1
    with app.app_context():
        assert get_ledger().is_erased("rita@example.com")
        assert app.extensions["redis"].hget("hub:ident:voucherify", "cust_rita") is None


def test_ops_views_need_the_ops_role(app) -> None:
    client = app.test_client()
    for path in ("/v1/webhooks/parked", "/v1/webhooks/rejected", "/v1/webhooks/stats"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer ingest-token"}).status_code == 403
        assert client.get(path, headers=OPS).status_code == 200
        assert client.get(path, headers={"Authorization": "Bearer admin-token"}).status_code == 200


def test_stats_view(app, key) -> None:
    client = app.test_client()
    send(client, "growsurf", GOOD["growsurf"], key)
    send(client, "growsurf", UNKNOWN["growsurf"], key)
    assert client.get("/v1/webhooks/stats", headers=OPS).json == {
        "growsurf": {"accepted": {"referrer.enrolled": 1}, "ignored": {"CAMPAIGN_ENDED": 1}}}


# --- the published payloads, posted signed through the endpoint ----------------------------------

# In this order, so what one teaches (GrowSurf participants, SaaSquatch users) is known when needed.
PUBLISHED = [
    ("mention_me", "entry-point.offer.enrol-referrer.request.json", {"accepted": 1}),
    ("mention_me", "consumer.referee.register.request.json", {"accepted": 1}),
    ("mention_me", "consumer.coupon_redemption.record-order.request.json", {"parked": 1}),
    ("mention_me", "consumer.referrer.dashboard.response.json", {"ignored": 1}),
    ("voucherify", "customer.holder.assignment.created.referee.data.json", {"parked": 1}),
    ("voucherify", "customer.rewarded.data.json", {"ignored": 1}),               # a loyalty reward
    ("voucherify", "redemption.succeeded.data.json", {"ignored": 1}),           # not a referral code
    ("voucherify", "redemption.rollback.succeeded.referral-code.data.json", {"ignored": 1}),
    ("voucherify", "voucher.published.envelope.json", {"ignored": 1}),
    ("voucherify", "customer.deleted.data.json", {"accepted": 1}),
    ("talon_one", "LoyaltyPointsAdded-or-Deducted.notification.json", {"ignored": 1}),
    ("talon_one", "createCouponData.data-array.json", {"ignored": 2}),
    ("friendbuy", "advocateReward.json", {"accepted": 1}),
    ("friendbuy", "emailCapture.json", {"accepted": 1}),
    ("friendbuy", "emailOptOut.json", {"accepted": 1}),
    ("friendbuy", "rewardValidationCallback.purchase.json", {"accepted": 1}),
    ("growsurf", "NEW_PARTICIPANT_ADDED.json", {"accepted": 1}),
    ("growsurf", "NEW_PARTICIPANT_ADDED.verbatim-invalid.json.txt", {"duplicates": 1}),
    ("growsurf", "PARTICIPANT_REACHED_A_GOAL.json", {"accepted": 1}),
    ("growsurf", "COMMISSION_ADJUSTED.json", {"ignored": 1}),
    ("growsurf", "PARTICIPANT_FRAUD_STATUS_UPDATED.json", {"ignored": 1}),
    ("saasquatch", "referral.started.json", {"parked": 1}),
    ("saasquatch", "referral.automoderation.complete.mislabeled-type.json", {"parked": 1}),
    ("saasquatch", "referral.converted.json", {"parked": 1}),
    ("saasquatch", "reward.created.json", {"parked": 1}),
    ("saasquatch", "user.created.json", {"accepted": 1}),
    ("saasquatch", "user.reward.balance.changed.json", {"ignored": 1}),
]
PUBLISHED_STATE = {
    "jane.doe@example.com": {"is_referrer": True, "is_friend": True, "locale": "en_GB"},
    "test@example.com": {"is_referrer": True, "rewards_earned": 1, "reward_code": "test-coupon-code",
                         "reward_value": {"USD": Decimal("20.00")}},
    "john.customer@example.com": {"is_friend": True, "marketing_opt_in": True, "promo_code": "Test couponCode",
                                  "referred_by": "sarah.advocate@example.com", "first_name": "John"},
    "sarah.advocate@example.com": {"is_referrer": True, "friends_registered": 1, "first_name": "Sarah"},
    "a.friend@example.com": {"marketing_opt_in": False},
    "test@example.org": {"is_friend": True, "referred_by": "britain+test@friendbuy.com",
                         "first_order_total": Decimal("100.00"), "first_order_currency": "USD"},
    "britain+test@friendbuy.com": {"friends_converted": 1, "turnover": {"USD": Decimal("100.00")}},
    "gavin.belson@hooli.com": {"is_friend": True, "referred_by": "richard@piedpiper.com"},
    "richard@piedpiper.com": {"is_referrer": True, "friends_registered": 1, "rewards_earned": 1,
                              "reward_value": {"USD": Decimal("25.00")}, "reward_code": "PROMO_20_OFF",
                              "share_url": "http://piedpiper.com?grsf=x9a7uu", "referrer_id": "x9a7uu"},
    "mike.keenerson@example.com": {"is_referrer": True, "referrer_id": "sat09jsaet09setset", "locale": "fr_CA",
                                   "first_name": "Mike"},
}


def test_published_payloads_through_the_endpoint(app, key, shared_dir) -> None:
    client = app.test_client()
    for source, name, outcome in PUBLISHED:
        body = (shared_dir / "payloads" / source / name).read_bytes()
        extra = {"X-UUID": f"uuid-{name}"} if source == "talon_one" else {}
        response = post(client, source, body, {**sign(source, body, key), **extra})
        want = {"accepted": 0, "duplicates": 0, "parked": 0, "rejected": 0, "ignored": 0, **outcome}
        assert response.status_code == (200 if "Callback" in name else 202), (name, response.json)
        assert response.json == want, name
    holds(app, PUBLISHED_STATE)
    with app.app_context():
        assert get_ledger().is_erased("lionel-johnson@lion.io")
    waiting = {(p["source"], p["waiting_for"]["value"]) for p in parked(app)["parked"]}
    assert waiting == {("mention_me", "ABC23252"), ("voucherify", "cust_3yngSdlObyvUtdDcnHiGu6Yx"),
                       ("saasquatch", "5773073ee4b08b14ab979fb8"), ("saasquatch", "56f2e6a9e4b08a1cbef6c561")}

"""SaaSquatch: detached RS256 JWS against a JWKS made here, published examples, own fixtures."""
from __future__ import annotations

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sources import PayloadError, SOURCES, SettingsError, SignatureError

from .helpers import NOW, dumps, published, published_json, run

ADAPTER = SOURCES["saasquatch"]
TENANT = "aohgcctyskc0p"  # the alias in the published examples
KID = "test-key-1"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks(key) -> dict:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**public, "kid": KID, "use": "sig", "alg": "RS256"}]}


@pytest.fixture(scope="module")
def settings(jwks) -> dict:
    return ADAPTER.settings_from_env({"HUB_SOURCE_SAASQUATCH_JWKS": json.dumps(jwks),
                                      "HUB_SOURCE_SAASQUATCH_TENANT": TENANT})


def detached(body: bytes, key, kid: str | None = KID, **header) -> str:
    """What SaaSquatch sends: the compact JWS over base64url(body) with the payload cut out."""
    headers = {"typ": "JWT", **({"kid": kid} if kid else {}), **header}
    token = jwt.PyJWS().encode(body, key, algorithm="RS256", headers=headers)
    first, _, last = token.split(".")
    return f"{first}..{last}"


def signed(body: bytes, key, **kw) -> dict[str, str]:
    return {"X-Hook-JWS-RFC-7797": detached(body, key, **kw)}


# --- settings and signatures -------------------------------------------------------------------

def test_settings_from_json_or_file(tmp_path, jwks, settings) -> None:
    assert settings["jwks"] == jwks and ADAPTER.configured(settings)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    from_file = ADAPTER.settings_from_env({"HUB_SOURCE_SAASQUATCH_JWKS": str(path),
                                           "HUB_SOURCE_SAASQUATCH_TENANT": "t"})
    assert from_file["jwks"] == jwks
    assert not ADAPTER.configured(ADAPTER.settings_from_env({"HUB_SOURCE_SAASQUATCH_JWKS": str(path)}))


@pytest.mark.parametrize("value", ["/no/such/file.json", "{not json", '{"keys": "nope"}', '{"keys": []}'])
def test_unusable_jwks_is_a_settings_error(value) -> None:
    with pytest.raises(SettingsError):
        ADAPTER.settings_from_env({"HUB_SOURCE_SAASQUATCH_JWKS": value})


def test_good_signature(shared_dir, key, settings) -> None:
    body = published(shared_dir, "saasquatch", "user.created.json")
    ADAPTER.verify(signed(body, key), body, settings, NOW)
    ADAPTER.verify({"x-hook-jws-rfc-7797": detached(body, key)}, body, settings, NOW)


def test_single_key_without_kid(shared_dir, key, settings) -> None:
    body = published(shared_dir, "saasquatch", "user.created.json")
    ADAPTER.verify(signed(body, key, kid=None), body, settings, NOW)


def test_rfc7797_unencoded_form_also_verifies(key, settings) -> None:
    body = dumps({"id": "1", "type": "test", "tenantAlias": TENANT, "data": {}})
    token = jwt.PyJWS().encode(body, key, algorithm="RS256", headers={"kid": KID, "b64": False},
                               is_payload_detached=True)
    ADAPTER.verify({"X-Hook-JWS-RFC-7797": token}, body, settings, NOW)


def test_bad_signature(shared_dir, key, settings) -> None:
    body = published(shared_dir, "saasquatch", "referral.converted.json")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(SignatureError, match="does not match"):
        ADAPTER.verify(signed(body, other), body, settings, NOW)
    with pytest.raises(SignatureError, match="does not match"):
        ADAPTER.verify(signed(body, key), body.replace(b"LORETTA", b"LORETTO"), settings, NOW)


def test_signed_for_another_tenant_is_refused(key, settings) -> None:
    body = dumps({"id": "1", "type": "user.created", "tenantAlias": "someoneelse", "data": {}})
    with pytest.raises(SignatureError, match="tenant"):
        ADAPTER.verify(signed(body, key), body, settings, NOW)


def test_unknown_kid(key, settings) -> None:
    body = dumps({"tenantAlias": TENANT})
    with pytest.raises(SignatureError, match="kid"):
        ADAPTER.verify(signed(body, key, kid="hLX/ydWw4C0mwdrvyPhUYmdCkD8="), body, settings, NOW)


def b64(value: dict | bytes) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("value", [
    "", "abc", "a.b", "a..", "..sig", f"{b64(b'not json')}..c2ln", f"{b64([1])}..c2ln",
    f"{b64({'alg': 'none', 'kid': KID})}..c2ln", f"{b64({'alg': 'HS256', 'kid': KID})}..c2ln",
    f"{b64({'alg': 'RS256', 'kid': KID})}..%%%", f"{b64({'alg': 'RS256', 'kid': KID})}..c2ln.extra",
    "%%%..c2ln", "é..é",
])
def test_malformed_header(value, settings) -> None:
    with pytest.raises(SignatureError):
        ADAPTER.verify({"X-Hook-JWS-RFC-7797": value}, b'{"tenantAlias": "aohgcctyskc0p"}', settings, NOW)


def test_attached_payload_must_be_the_body(key, settings) -> None:
    body = dumps({"tenantAlias": TENANT})
    token = jwt.PyJWS().encode(b'{"tenantAlias": "other"}', key, algorithm="RS256", headers={"kid": KID})
    with pytest.raises(SignatureError, match="payload"):
        ADAPTER.verify({"X-Hook-JWS-RFC-7797": token}, body, settings, NOW)


def test_missing_header(settings) -> None:
    with pytest.raises(SignatureError, match="missing"):
        ADAPTER.verify({}, b"{}", settings, NOW)


# --- published examples -----------------------------------------------------------------------

FRIEND = {"source_id": "5773073ee4b08b14ab979fb8", "promo_code": "LORETTABURKE10"}
REFERRER = {"source_id": "577306eae4b08b14ab979f70", "referrer_id": "577306eae4b08b14ab979f70"}


def test_user_created_is_referrer_enrolled_and_teaches_identity(shared_dir, settings) -> None:
    result = run("saasquatch", published(shared_dir, "saasquatch", "user.created.json"), settings)
    assert result.events == [{
        "id": "saasquatch:577303ece4b066c5cb171835", "type": "referrer.enrolled",
        "occurred_at": "2016-06-28T23:10:36.418Z", "source": "saasquatch",
        "referrer": {"email": "mike.keenerson@example.com", "first_name": "Mike", "last_name": "Keenerson",
                     "locale": "fr_CA", "source_id": "sat09jsaet09setset", "referrer_id": "sat09jsaet09setset"}}]
    assert result.identities == [{"source_id": "sat09jsaet09setset", "email": "mike.keenerson@example.com",
                                  "first_name": "Mike", "last_name": "Keenerson", "locale": "fr_CA"}]


def test_user_created_with_a_configured_program_takes_its_share_link(shared_dir, settings) -> None:
    event = run("saasquatch", published(shared_dir, "saasquatch", "user.created.json"),
                {**settings, "program": "partner-program"}).events[0]
    assert event["programme"] == "partner-program"
    assert event["referrer"]["share_url"] == "http://example.com/free"


@pytest.mark.parametrize("name", ["referral.started.json", "referral.automoderation.complete.mislabeled-type.json"])
def test_referral_started_is_friend_registered_with_ids_only(shared_dir, settings, name) -> None:
    """The automoderation example is labelled referral.started as published: it is taken at its word."""
    result = run("saasquatch", published(shared_dir, "saasquatch", name), settings)
    assert result.events == [{"id": "saasquatch:5773073fe4b066c5cb171900", "type": "friend.registered",
                              "occurred_at": "2016-06-28T23:24:46.882Z", "source": "saasquatch",
                              "friend": FRIEND, "referrer": REFERRER}]
    assert result.identities == []


def test_referral_converted_is_friend_converted_without_order(shared_dir, settings) -> None:
    result = run("saasquatch", published(shared_dir, "saasquatch", "referral.converted.json"), settings)
    assert result.events == [{"id": "saasquatch:57731b5ee4b07320b5c0980a", "type": "friend.converted",
                              "occurred_at": "2016-06-29T00:50:38.415Z", "source": "saasquatch",
                              "friend": FRIEND, "referrer": REFERRER}]


def test_reward_created_is_reward_granted(shared_dir, settings) -> None:
    result = run("saasquatch", published(shared_dir, "saasquatch", "reward.created.json"), settings)
    assert result.events == [{"id": "saasquatch:577405e3e4b0cc57c1e2e687", "type": "reward.granted",
                              "occurred_at": "2016-06-29T17:31:15.151Z", "source": "saasquatch",
                              "referrer": {"source_id": "56f2e6a9e4b08a1cbef6c561",
                                           "referrer_id": "56f2e6a9e4b08a1cbef6c561"},
                              "reward": {"recipient": "referrer", "kind": "percent"}}]


def test_balance_change_is_acknowledged_not_mapped(shared_dir, settings) -> None:
    result = run("saasquatch", published(shared_dir, "saasquatch", "user.reward.balance.changed.json"), settings)
    assert result.events == [] and result.ignored == ["user.reward.balance.changed"]


# --- our own fixtures -------------------------------------------------------------------------

def test_reward_for_being_referred_goes_to_the_friend(shared_dir, settings) -> None:
    body = published_json(shared_dir, "saasquatch", "reward.created.json")
    body["data"].update(rewardSource="REFERRED", type="CREDIT")
    event = run("saasquatch", body, settings).events[0]
    assert event["friend"] == {"source_id": "56f2e6a9e4b08a1cbef6c561"} and "referrer" not in event
    assert event["reward"] == {"recipient": "friend", "kind": "credit"}
    body["data"]["rewardSource"] = "MANUAL"
    assert run("saasquatch", body, settings).ignored == ["reward.created"]


def test_denied_referral_is_not_registered(shared_dir, settings) -> None:
    body = published_json(shared_dir, "saasquatch", "referral.started.json")
    body["data"]["moderationStatus"] = "DENIED"
    assert run("saasquatch", body, settings).ignored == ["referral.started"]


def test_duplicate_delivery_has_the_same_dedupe_id(shared_dir, settings) -> None:
    body = published(shared_dir, "saasquatch", "referral.converted.json")
    assert run("saasquatch", body, settings).events[0]["id"] == run("saasquatch", body, settings).events[0]["id"]


@pytest.mark.parametrize("kind", ["referral.ended", "referral.automoderation.complete", "export.completed", "test",
                                  "email.referral.paid", "brand.new.event"])
def test_unknown_or_unmapped_type_is_ignored(kind, settings) -> None:
    result = run("saasquatch", {"id": "x", "type": kind, "tenantAlias": TENANT, "data": {"anything": 1}}, settings)
    assert result.events == [] and result.ignored == [kind]


def test_missing_email_gives_a_party_with_source_id_only(shared_dir, settings) -> None:
    body = published_json(shared_dir, "saasquatch", "user.created.json")
    body["data"]["email"] = None
    event = run("saasquatch", body, settings).events[0]
    assert "email" not in event["referrer"] and event["referrer"]["source_id"] == "sat09jsaet09setset"
    assert run("saasquatch", body, settings).identities == []


@pytest.mark.parametrize("body", [b"<xml/>", b"[]", b'{"data": {}}', b'{"type": 1}'])
def test_not_saasquatch_shape_is_payload_error(body, settings) -> None:
    with pytest.raises(PayloadError):
        run("saasquatch", body, settings)


def test_raw_unusable_key_set_in_settings_is_a_signature_error() -> None:
    with pytest.raises(SignatureError):
        ADAPTER.verify({"X-Hook-JWS-RFC-7797": "a..b"}, b"{}", {"jwks": "{oops", "tenant": TENANT}, NOW)

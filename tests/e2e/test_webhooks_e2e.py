"""Signed webhooks from each referral platform, posted over real HTTP (curl when the machine has
it), land in the sandbox's Klaviyo as exactly the state the same facts posted to /v1/events give;
and the curl/openssl recipes of docs/webhooks.md work as written."""
from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.docs import sh_blocks
from tests.hub.test_webhooks import (GOOD, SECRETS, dumps, envelope, jwks_of, sign, sq_referral, sq_user,
                                     vf_published, vf_redeemed)
from tests.sources.test_saasquatch import TENANT

pytestmark = pytest.mark.e2e

WH, EV = "@wh.example.com", "@ev.example.com"
CURL = shutil.which("curl")
OPENSSL = shutil.which("openssl")


def env_for(jwks_path: pathlib.Path, tenant: str = TENANT) -> dict[str, str]:
    return {
        "HUB_SOURCE_MENTION_ME_SECRET": SECRETS["mention_me"],
        "HUB_SOURCE_VOUCHERIFY_SECRET": SECRETS["voucherify"], "HUB_SOURCE_VOUCHERIFY_CURRENCY": "GBP",
        "HUB_SOURCE_TALON_ONE_HEADER_NAME": "Authorization", "HUB_SOURCE_TALON_ONE_HEADER_VALUE": SECRETS["talon_one"],
        "HUB_SOURCE_TALON_ONE_CURRENCY": "EUR",
        "HUB_SOURCE_FRIENDBUY_SECRET": SECRETS["friendbuy"],
        "HUB_SOURCE_GROWSURF_SECRET": SECRETS["growsurf"],
        "HUB_SOURCE_SAASQUATCH_JWKS": str(jwks_path), "HUB_SOURCE_SAASQUATCH_TENANT": tenant,
    }


def deliver(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    """POST as the platform would: with curl when installed, else requests."""
    headers = {"Content-Type": "application/json", **headers}
    if not CURL:
        response = requests.post(url, data=body, headers=headers, timeout=10)
        return response.status_code, response.json()
    args = [CURL, "-sS", "-X", "POST", url, "--data-binary", "@-", "-w", "\n%{http_code}"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    done = subprocess.run(args, input=body, capture_output=True, timeout=30, check=True)
    text, _, status = done.stdout.decode().rpartition("\n")
    return int(status), json.loads(text)


def with_email(payload: Any, domain: str) -> Any:
    return json.loads(re.sub("@example\\.com", domain, json.dumps(payload), flags=re.I))


# --- per platform: the webhooks, and the canonical events that mean the same ---------------------

def webhooks(domain: str) -> list[tuple[str, Any, dict[str, str]]]:
    """(source, payload, extra headers), in the order the platforms send them."""
    vic = {"id": "cust_vic", "email": None, "name": None, "source_id": "vic-1"}
    capture = {"id": "call-2", "type": "emailCapture", "createdOn": "2026-03-03T11:00:00Z", "data": [{
        "eventId": "cap-1", "emailAddress": "finn@example.com", "name": "Finn Lee", "createdOn": "2026-03-03T11:00:00Z",
        "advocate": {"email": "ada@example.com", "name": "Ada Lovelace", "customerId": "c-ada"},
        "referral": {"code": "ADA", "channel": "email"}, "incentive": {"couponCode": "FINN-15"}}]}
    gia = {"event": "NEW_PARTICIPANT_ADDED", "createdAt": 1767229200000, "data": {
        "campaign": {"id": "camp1"}, "participant": {"id": "gs-gia", "email": "gia@example.com", "firstName": "Gia",
                                                     "referrer": {"id": "gs-gus", "email": "gus@example.com",
                                                                  "firstName": "Gus",
                                                                  "shareUrl": "https://shop.example/?grsf=gs-gus"}}}}
    sent = [
        ("mention_me", GOOD["mention_me"], {}),
        ("voucherify", vf_published("cust_rita", "rita@example.com", "RITA-REF"), {}),
        ("voucherify", vf_redeemed(vic, "cust_rita", "RITA-REF", "O-1", 7000), {}),       # parked: no email
        ("voucherify", envelope("customer.created", {"customer": {"id": "cust_vic", "email": "vic@example.com",
                                                                  "source_id": "vic-1"}}, event_id="ev_cus_vic"), {}),
        ("talon_one", GOOD["talon_one"], {"X-UUID": "msg-tom-1"}),
        ("friendbuy", GOOD["friendbuy"], {}),
        ("friendbuy", capture, {}),
        ("growsurf", GOOD["growsurf"], {}),
        ("growsurf", gia, {}),
        ("saasquatch", sq_referral("referral.started", "sq-fred", "sq-rosa", "hook-r1"), {}),   # parked
        ("saasquatch", sq_user("sq-fred", "fred@example.com", "Fred", "FRED1"), {}),
        ("saasquatch", sq_user("sq-rosa", "rosa@example.com", "Rosa", "ROSA"), {}),
        ("saasquatch", sq_referral("referral.converted", "sq-fred", "sq-rosa", "hook-r2", 1767232800000), {}),
    ]
    return [(source, with_email(payload, domain), extra) for source, payload, extra in sent]


def canonical(domain: str) -> list[dict[str, Any]]:
    """The same facts as event API events, written from the platforms' documentation."""
    def e(n: int, kind: str, at: str, **parts: Any) -> dict[str, Any]:
        return {"id": f"canon-{n}", "type": kind, "occurred_at": at, **parts}
    gus = {"email": "gus@example.com", "first_name": "Gus", "referrer_id": "gs-gus",
           "share_url": "https://shop.example/?grsf=gs-gus"}
    events = [
        e(1, "friend.converted", "2026-03-01T10:00:00Z",
          friend={"email": "fran@example.com", "first_name": "Fran", "last_name": "Ng", "promo_code": "FRAN-10"},
          order={"id": "EV-MM-1", "total": "59.90", "currency": "GBP", "coupon_code": "FRAN-10"}),
        e(2, "referrer.enrolled", "2026-01-02T09:00:00Z",
          referrer={"email": "rita@example.com", "first_name": "Rita", "last_name": "Holder", "customer_id": "rita-1",
                    "referrer_id": "cust_rita"}),
        e(3, "friend.converted", "2026-01-05T12:00:00Z",
          referrer={"email": "rita@example.com", "referrer_id": "cust_rita"},
          friend={"email": "vic@example.com", "customer_id": "vic-1", "promo_code": "RITA-REF"},
          order={"id": "EV-O-1", "total": "70.00", "currency": "GBP", "coupon_code": "RITA-REF"}),
        e(4, "friend.converted", "2026-03-02T10:00:00Z",
          referrer={"email": "tom@example.com", "referrer_id": "p-tom"},
          friend={"email": "tia@example.com", "promo_code": "TOM-5"},
          order={"id": "EV-sess-7", "total": "42.50", "currency": "EUR", "coupon_code": "TOM-5"}),
        e(5, "reward.granted", "2026-03-03T10:00:00Z", referrer={"email": "ada@example.com", "customer_id": "c-ada"},
          reward={"recipient": "referrer", "kind": "coupon", "value": "20.00", "currency": "USD", "code": "ADA-20"}),
        e(6, "friend.registered", "2026-03-03T11:00:00Z",
          referrer={"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "customer_id": "c-ada"},
          friend={"email": "finn@example.com", "first_name": "Finn", "last_name": "Lee", "marketing_opt_in": True,
                  "promo_code": "FINN-15"}),
        e(7, "referrer.enrolled", "2026-01-01T00:00:00Z", referrer=gus),
        e(8, "friend.registered", "2026-01-01T01:00:00Z", referrer=gus,
          friend={"email": "gia@example.com", "first_name": "Gia"}),
        e(9, "referrer.enrolled", "2026-01-01T00:00:00Z", programme="classic",
          referrer={"email": "fred@example.com", "first_name": "Fred", "referrer_id": "sq-fred"}),
        e(10, "referrer.enrolled", "2026-01-01T00:00:00Z", programme="classic",
          referrer={"email": "rosa@example.com", "first_name": "Rosa", "referrer_id": "sq-rosa"}),
        e(11, "friend.registered", "2026-01-01T01:00:00Z", referrer={"email": "rosa@example.com", "referrer_id": "sq-rosa"},
          friend={"email": "fred@example.com", "promo_code": "ROSA"}),
        e(12, "friend.converted", "2026-01-01T02:00:00Z", referrer={"email": "rosa@example.com", "referrer_id": "sq-rosa"},
          friend={"email": "fred@example.com", "promo_code": "ROSA"}),
    ]
    return with_email(events, domain)


PEOPLE = ["fran", "rita", "vic", "tom", "tia", "ada", "finn", "gus", "gia", "fred", "rosa"]


def held(stack: Any, domain: str) -> dict[str, Any]:
    """What Klaviyo holds for everyone, with the run's domain written as @example.com."""
    out = {}
    for person in PEOPLE:
        got = stack.holds("klaviyo", f"{person}{domain}")
        out[person] = None if got is None else json.loads(json.dumps(
            {k: got[k] for k in ("fields", "lists", "marketing_consent", "deleted")}).replace(domain, "@example.com"))
    return out


def settled(stack: Any) -> bool:
    wh, ev = held(stack, WH), held(stack, EV)
    done = all(wh.values()) and all(ev.values())
    return done and wh == ev and wh["rosa"]["fields"].get("referral_friends_converted") == 1 \
        and wh["rita"]["fields"].get("referral_friends_converted") == 1


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_each_platform_lands_in_klaviyo_like_the_event_api(stack_factory, tmp_path, key) -> None:  # type: ignore[no-untyped-def]
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(jwks_of(key)))
    stack = stack_factory(env=env_for(jwks))
    for source, payload, extra in webhooks(WH):
        body = dumps(payload)
        status, answer = deliver(f"{stack.hub}/v1/webhooks/{source}", body, {**sign(source, body, key), **extra})
        assert status == 202 and answer["rejected"] == 0 and answer["ignored"] <= 1, (source, answer)
    assert stack.post(canonical(EV), msg_id="canonical").json() == {"accepted": 12, "duplicates": 0}
    stack.wait_for(lambda: settled(stack), what="webhook and event API states to match in Klaviyo")
    wh, ev = held(stack, WH), held(stack, EV)
    assert wh == ev
    # And the state is the referral story, not two identical mistakes.
    assert wh["rosa"]["fields"]["referral_friends_signed_up"] == 1
    assert wh["fred"]["fields"]["referral_referred_by"] == "rosa@example.com"
    assert wh["rita"]["fields"]["referral_turnover"] == 70.0 or wh["rita"]["fields"]["referral_turnover"] == "70.00"
    assert wh["finn"]["marketing_consent"] and "RfMkt1" in wh["finn"]["lists"]
    ops = requests.get(f"{stack.hub}/v1/webhooks/parked", headers={"Authorization": "Bearer ops-token"}, timeout=5)
    assert ops.json() == {"total": 0, "parked": []}


# --- the docs' recipes, run as written - ------------------------------------------------------

def readme_blocks() -> list[str]:
    """The sh blocks of docs/webhooks.md's curl recipes."""
    blocks = sh_blocks("docs/webhooks.md", "## Try it with curl")
    assert any("/v1/webhooks/" in b and "--data-binary" in b for b in blocks), "the docs show a curl example"
    return blocks


@pytest.mark.skipif(not (CURL and OPENSSL and shutil.which("bash")), reason="needs curl, openssl and bash")
def test_readme_curl_recipes_land_in_klaviyo(stack_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    blocks = readme_blocks()
    shell_env = {**os.environ, "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    keygen = next(b for b in blocks if "genpkey" in b)
    made = subprocess.run(["bash", "-euo", "pipefail", "-c", keygen + '\nprintf "%s\\n%s" "$HUB_SOURCE_SAASQUATCH_JWKS" '
                           '"$HUB_SOURCE_SAASQUATCH_TENANT"'], cwd=tmp_path, env=shell_env, capture_output=True,
                          timeout=60, check=True)
    jwks, tenant = made.stdout.decode().rsplit("\n", 1)
    (tmp_path / "jwks.json").write_text(jwks)
    env = env_for(tmp_path / "jwks.json", tenant)
    stack = stack_factory(env=env)
    posts = [b for b in blocks if "/v1/webhooks/" in b and "--data-binary" in b]
    assert len(posts) == 6
    for block in posts:
        for attempt in ("accepted", "duplicates"):
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, capture_output=True,
                                  env={**shell_env, **env, "HUB": stack.hub}, timeout=60)
            assert done.returncode == 0, (block, done.stderr.decode())
            answer = json.loads(done.stdout)
            assert answer[attempt] == 1, (block, answer)
    expected = {"fran": ("referral_promo_code", "FRAN-10"), "rita": ("referral_referrer_id", "cust_rita"),
                "tom": ("referral_friends_converted", 1), "ada": ("referral_rewards_earned", 1),
                "gus": ("referral_referrer_id", "gs-gus"), "sam": ("referral_referrer_id", "u-sam")}

    def landed() -> bool:
        for person, (field, value) in expected.items():
            got = stack.holds("klaviyo", f"{person}@example.com")
            if not got or got["fields"].get(field) != value:
                return False
        return True
    stack.wait_for(landed, what="every docs example at Klaviyo")

"""After an erasure nothing in Redis names the person, in any form, and no vendor keeps a field
that points at them.

A real stack (hub, workers, sandbox, all five connectors) takes a story in which the person is a
referrer and a friend, arrives by webhook too (a parked copy, a learnt promo code, a rejected
body), and is named by failed syncs (one shared with someone else, one their own, one retried
and failed again by RQ itself). After the erasure has settled, EVERY key of the database is read
whole, whatever its type and whoever wrote it (the hub, RQ), and searched for the address as
written, lower-cased, upper-cased, and hashed each way the hub hashes people, with compressed and
encoded values opened first. A store added later is covered without touching this test.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import zlib
from typing import Any, Iterator

import pytest
import redis as redis_lib
import requests

from cryptography.fernet import Fernet

from hub.core.ledger import contact_id
from sandbox import DEMO_SETTINGS
from tests.console.conftest import signed_in_session
from tests.feed.receiver import Receiver
from tests.hub.test_webhooks import SECRETS
from tests.sources.test_mention_me import sign as mention_me_sign

pytestmark = pytest.mark.faults

ERASURE_KEY = "erasure-scan-test-key-0123456789"
WRITTEN = "Zara.Erase@Example.com"          # as the platforms and the API send it
PERSON = WRITTEN.lower()                     # as the hub keys people
FRIEND, OTHER, LATER = "fred.friend@example.com", "ben.other@example.com", "gail.later@example.com"
ADMIN = {"Authorization": "Bearer admin-token"}
OPS = {"Authorization": "Bearer ops-token"}
# Where each vendor's default mapping puts referred_by.
REFERRED_BY = {"klaviyo": "referral_referred_by", "emarsys": "12007", "salesforce": "Referral_Referred_By__c",
               "ometria": "referred_by", "splio": "referral_referred_by"}


def needles(address: str) -> dict[str, bytes]:
    """Every form the address could be kept in, computed here independently of the hub: as
    written, lower and upper case, the ledger's distinct-friend member (SHA-1 hex of the
    address), the vendor-facing contact id (SHA-256 hex; its first 24 digits are the id), the
    raw digests, and the keyed hash (allowed only as the erasure marker's name)."""
    forms: dict[str, bytes] = {}
    for variant in {address, address.lower(), address.upper(), WRITTEN}:
        forms[f"clear {variant}"] = variant.encode()
        raw = variant.encode()
        forms[f"sha1 hex of {variant}"] = hashlib.sha1(raw).hexdigest().encode()
        forms[f"sha256 hex (contact id) of {variant}"] = hashlib.sha256(raw).hexdigest()[:24].encode()
        forms[f"md5 hex of {variant}"] = hashlib.md5(raw).hexdigest().encode()
        forms[f"sha1 digest of {variant}"] = hashlib.sha1(raw).digest()
        forms[f"sha256 digest of {variant}"] = hashlib.sha256(raw).digest()
    forms["keyed hash"] = keyed(address).encode()
    return forms


def keyed(address: str) -> str:
    return hmac.new(ERASURE_KEY.encode(), address.encode(), hashlib.sha256).hexdigest()


def openings(blob: bytes) -> Iterator[bytes]:
    """The value and what it may hide: RQ keeps job data and exception text zlib-compressed
    (results base64 of that too)."""
    yield blob
    candidates = [blob]
    try:
        candidates.append(base64.b64decode(blob, validate=True))
    except (binascii.Error, ValueError):
        pass
    for candidate in candidates:
        try:
            yield zlib.decompress(candidate)
        except zlib.error:
            pass
        if candidate is not blob:
            yield candidate


def contents(client: redis_lib.Redis, key: bytes) -> Iterator[tuple[str, bytes]]:
    """(where, bytes) for everything a key holds, whatever its type."""
    kind = client.type(key).decode()
    if kind == "none":
        return  # expired since the scan listed it (rate-limit windows, flags)
    if kind == "string":
        yield "value", client.get(key) or b""
    elif kind == "hash":
        for field, value in client.hgetall(key).items():
            yield f"field {field[:60]!r}", field
            yield f"value of {field[:60]!r}", value
    elif kind == "set":
        for member in client.smembers(key):
            yield "member", member
    elif kind == "zset":
        for member, _ in client.zrange(key, 0, -1, withscores=True):
            yield "member", member
    elif kind == "list":
        for item in client.lrange(key, 0, -1):
            yield "item", item
    elif kind == "stream":
        for entry_id, fields in client.xrange(key):
            for field, value in fields.items():
                yield f"entry {entry_id.decode()} field {field!r}", field
                yield f"entry {entry_id.decode()} value of {field!r}", value
    else:
        raise AssertionError(f"{key!r} is a {kind}: teach this scan to read it")


def scan(client: redis_lib.Redis, address: str) -> list[str]:
    """Every place in the database that holds the address in any form, as 'key: where (form)'."""
    forms = needles(address)
    allowed = f"hub:erased:{keyed(address)}".encode()
    found = []
    for key in client.scan_iter(count=1000):
        places = [("the key name", key)] if key != allowed else []
        places += list(contents(client, key))
        for where, blob in places:
            for opened in openings(blob):
                low = opened.lower()
                for form, needle in forms.items():
                    if needle in opened or needle.lower() in low:
                        found.append(f"{key.decode(errors='replace')}: {where} ({form})")
    return sorted(set(found))


# --- the story -------------------------------------------------------------------------------

def event(n: str, kind: str, when: str, **parts: Any) -> dict[str, Any]:
    return {"id": f"scan-{n}", "type": kind, "occurred_at": f"2026-11-20T10:00:{when}Z", **parts}


def story() -> list[dict[str, Any]]:
    """The person refers a friend, and is a friend (who buys and is rewarded) of someone else."""
    return [
        event("1", "referrer.enrolled", "01", referrer={"email": WRITTEN, "first_name": "Zara", "referrer_id": "ref-zara",
                                                        "share_url": "https://shop.example/r/zara"}),
        event("2", "referral.invited", "02", referrer={"email": WRITTEN}, friend={"email": FRIEND}),
        event("3", "friend.registered", "03", referrer={"email": WRITTEN},
              friend={"email": FRIEND, "first_name": "Fred", "marketing_opt_in": True, "promo_code": "ZARA-10"}),
        event("4", "friend.converted", "04", referrer={"email": WRITTEN}, friend={"email": FRIEND},
              order={"id": "ord-fred-1", "total": "40.00", "currency": "GBP"}),
        event("5", "referrer.enrolled", "05", referrer={"email": OTHER, "first_name": "Ben", "referrer_id": "ref-ben"}),
        event("6", "friend.registered", "06", referrer={"email": OTHER},
              friend={"email": WRITTEN, "first_name": "Zara", "marketing_opt_in": True, "promo_code": "BEN-5"}),
        event("7", "friend.converted", "07", referrer={"email": OTHER}, friend={"email": WRITTEN},
              order={"id": "ord-zara-1", "total": "25.00", "currency": "GBP"}),
        event("8", "reward.granted", "08", referrer={"email": WRITTEN}, friend={"email": FRIEND},
              reward={"recipient": "referrer", "code": "THANKS-ZARA", "value": "5.00", "currency": "GBP"}),
    ]


def mention_me(stack: Any, payload: Any) -> requests.Response:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **mention_me_sign(body, SECRETS["mention_me"])}
    return requests.post(f"{stack.hub}/v1/webhooks/mention_me", data=body, headers=headers, timeout=10)


def held(stack: Any, vendor: str, email: str) -> dict[str, Any] | None:
    person = stack.holds(vendor, email)
    return None if person is None or person["deleted"] else person


def points_at(stack: Any, vendor: str, email: str) -> Any:
    person = held(stack, vendor, email)
    return None if person is None else person["fields"].get(REFERRED_BY[vendor])


def failed(stack: Any) -> list[dict[str, Any]]:
    return requests.get(f"{stack.hub}/v1/failed", headers=OPS, timeout=10).json()["failed"]


def settled(client: redis_lib.Redis, connectors: list[str]) -> bool:
    """Nothing dirty, nothing waiting to be erased, no job queued or running."""
    for name in connectors:
        if client.zcard(f"hub:dirty:{name}") or client.zcard(f"hub:erase:{name}"):
            return False
        if client.llen(f"rq:queue:sync-{name}") or client.zcard(f"rq:wip:sync-{name}"):
            return False
    return True


WAIT = 180.0   # generous: the machine may be loaded; nothing here depends on how fast it is


def test_erasure_leaves_no_trace(stack_factory, redis_url) -> None:  # type: ignore[no-untyped-def]
    connectors = {vendor: {k.upper(): v for k, v in settings.items()} for vendor, settings in DEMO_SETTINGS.items()}
    receiver = Receiver()       # an event-feed endpoint: its stored messages must forget too
    stack = stack_factory(connectors=connectors, env={
        "HUB_SECRET_KEY": Fernet.generate_key().decode(), "HUB_FEED_ALLOW": "127.0.0.0/8",
        "HUB_ERASURE_KEY": ERASURE_KEY, "HUB_SOURCE_MENTION_ME_SECRET": SECRETS["mention_me"],
        # A short burst cap: contacts touched together come due together (one batch, one failure).
        "HUB_RETRY_SCHEDULE": "1", "HUB_FLUSH_MAX_DEFER": "0.5"})
    client = redis_lib.Redis.from_url(redis_url)
    vendors = list(REFERRED_BY)
    assert requests.post(f"{stack.hub}/v1/endpoints", json={"url": receiver.url}, headers=ADMIN,
                         timeout=10).status_code == 201

    # The story by the API; then by webhook: the person as a friend of a referrer Mention Me has
    # not named yet (a copy parks), buying with a code (the code is learnt), and a body the hub
    # cannot read that quotes the address (kept in the rejected list).
    assert stack.post(story(), msg_id="story").status_code == 202
    referee = {"customer": {"emailAddress": WRITTEN, "firstname": "Zara"}, "referrerMentionMeIdentifier": "mm-ref-77"}
    assert mention_me(stack, referee).json()["accepted"] == 1
    order = {"customer": {"emailAddress": WRITTEN}, "order": {"orderIdentifier": "MM-ZARA-1", "total": "12.00",
                                                             "currencyCode": "GBP", "couponCode": "ZARA-MM"}}
    assert mention_me(stack, order).json()["accepted"] == 1
    assert mention_me(stack, [f"unsubscribe {WRITTEN.upper()}"]).status_code == 400
    for vendor in vendors:
        stack.wait_for(lambda v=vendor: points_at(stack, v, FRIEND) == PERSON, what=f"{vendor} to hold the friend", timeout=WAIT)
        stack.wait_for(lambda v=vendor: held(stack, v, PERSON), what=f"{vendor} to hold the person", timeout=WAIT)
    stack.wait_for(lambda: settled(client, vendors), what="the story to settle", timeout=WAIT)

    # Failed syncs: one the person shares with someone else (the vendor's message quotes the
    # address; ops retry it and RQ fails it again), and one that names only the person.
    quoted = {"message": f"Payload invalid: {WRITTEN} is not allowed here"}
    stack.fault("ometria", 400, count=2, body=quoted, path="/ometria/v2/push")
    touch = [event("9", "contact.updated", "09", contact={"email": WRITTEN, "first_name": "Zed"}),
             event("10", "contact.updated", "10", contact={"email": OTHER, "first_name": "Benjamin"})]
    assert stack.post(touch, msg_id="touch").status_code == 202
    shared = stack.wait_for(lambda: [f for f in failed(stack) if f["connector"] == "ometria"], what="a shared failure", timeout=WAIT)[0]
    assert shared["contacts"] == sorted([PERSON, OTHER])
    assert requests.post(f"{stack.hub}/v1/failed/{shared['id']}/retry", headers=OPS, timeout=10).status_code == 202
    stack.wait_for(lambda: any(f["id"] == shared["id"] and f["retries"] == 1 and f["attempts"] == 1
                               for f in failed(stack)), what="RQ to fail the retried sync again", timeout=WAIT)
    stack.fault("splio", 400, count=1, body={"errors": [{"error": "bad", "error_description": f"no {PERSON}"}]},
                path="/splio/data/contacts")
    assert stack.post([event("11", "contact.updated", "11", contact={"email": WRITTEN, "last_name": "Erase"})],
                      msg_id="own").status_code == 202
    own = stack.wait_for(lambda: [f for f in failed(stack) if f["connector"] == "splio"], what="the person's own failure", timeout=WAIT)[0]
    assert own["contacts"] == [PERSON]
    stack.wait_for(lambda: settled(client, vendors), what="the failures to settle", timeout=WAIT)
    assert PERSON in str(scan(client, PERSON)), "the story never reached Redis: this scan would prove nothing"

    # The console's own stores: the contact index and the timeline (written by the ingest and the
    # pushes above), the failed-sync index (filled when the failed-syncs page is read), and a
    # signed-in session (which holds no address).
    console = signed_in_session(stack, "admin-token")
    assert console.get(f"{stack.hub}/console/failed", timeout=30).status_code == 200
    page = console.get(f"{stack.hub}/console/contacts/{PERSON}", timeout=30)
    assert page.status_code == 200 and "pushed to ometria" in page.text
    assert client.llen(f"hub:tl:{PERSON}") and client.zscore("hub:contacts", PERSON) is not None
    assert client.scard(f"hub:fx:p:{contact_id(PERSON)}") == 2      # the shared failure and the own one

    # Erase, then a friend registers naming the erased referrer.
    erased = requests.post(f"{stack.hub}/v1/contacts/{WRITTEN}/erase", headers=ADMIN, timeout=10)
    assert erased.status_code == 202
    later = event("12", "friend.registered", "12", referrer={"email": WRITTEN},
                  friend={"email": LATER, "first_name": "Gail"})
    assert stack.post([later], msg_id="later").json() == {"accepted": 1, "duplicates": 0}
    for vendor in vendors:
        stack.wait_for(lambda v=vendor: held(stack, v, PERSON) is None, what=f"{vendor} to delete the person", timeout=WAIT)
        stack.wait_for(lambda v=vendor: held(stack, v, FRIEND) and points_at(stack, v, FRIEND) in (None, ""),
                       what=f"{vendor} to clear the friend's referred_by", timeout=WAIT)
        stack.wait_for(lambda v=vendor: held(stack, v, LATER), what=f"{vendor} to hold the later friend", timeout=WAIT)
        assert points_at(stack, vendor, LATER) in (None, ""), f"{vendor}: a later friend points at the erased person"
    stack.wait_for(lambda: settled(client, vendors), what="the erasure to settle", timeout=WAIT)

    # What is left of the failed syncs: the shared one without the person, their own one gone.
    left = {f["id"]: f for f in failed(stack)}
    assert own["id"] not in left
    assert left[shared["id"]]["contacts"] == [OTHER] and PERSON not in left[shared["id"]]["message"].lower()
    state = requests.get(f"{stack.hub}/v1/contacts/{PERSON}", headers=OPS, timeout=10).json()
    assert state["erased"] is True and state["state"] is None

    stack.wait_for(lambda: not any(client.zcard(k) for k in client.scan_iter("hub:feed:lane:*")),
                   what="the event feed to deliver", timeout=WAIT)
    assert any(m["type"] == "contact.erased" for m in receiver.accepted())
    receiver.stop()
    assert console.get(f"{stack.hub}/console/failed", timeout=30).status_code == 200   # the index catches up
    assert console.get(f"{stack.hub}/console/contacts/{PERSON}", timeout=30).status_code == 404
    found = scan(client, PERSON)
    assert not found, "the erased address is still in Redis:\n" + "\n".join(found)
    assert client.exists(f"hub:erased:{keyed(PERSON)}"), "the keyed erasure marker is what refuses re-creation"

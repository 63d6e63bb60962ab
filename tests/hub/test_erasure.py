"""Erasure that forgets, one guarantee at a time (the whole-database proof is
tests/faults/test_erasure_scan.py): the keyed marker, the log, the links, the vendors' copies of
referred_by, failed syncs."""
from __future__ import annotations

import hashlib
import hmac
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ContactUpdate
from connectors.errors import FatalVendorError
from connectors.emarsys import EmarsysConnector
from connectors.klaviyo import KlaviyoConnector
from connectors.ometria import OmetriaConnector
from connectors.salesforce import SalesforceConnector
from connectors.splio import SplioConnector
from hub.core import erasure, failed, sync
from hub.core.ledger import dirty_key, get_ledger
from hub.core.schemas import load_events
from mappings import default_mapping, render

KEY = "unit-test-erasure-key-0123456789"
ANNA, CLEO, DAN, GAIL = "anna@example.com", "cleo@example.com", "dan@example.com", "gail@example.com"
REFERRED_BY = {"klaviyo": "referral_referred_by", "emarsys": "12007", "salesforce": "Referral_Referred_By__c",
               "ometria": "referred_by", "splio": "referral_referred_by"}


@pytest.fixture
def app(make_app):  # type: ignore[no-untyped-def]
    return make_app(ERASURE_KEY=KEY, KLAVIYO_API_KEY="pk_sandbox_demo", KLAVIYO_BASE_URL="http://127.0.0.1:9/klaviyo")


def ev(n: int, kind: str, **parts: Any) -> dict[str, Any]:
    return {"id": f"e-{n}", "type": kind, "occurred_at": f"2026-11-20T10:00:{n:02d}Z", **parts}


def apply(app, events: list[dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        valid, errors = load_events(events)
        assert not errors
        get_ledger().apply(valid, ["klaviyo"])


def erase(app, email: str, n: int = 50) -> None:  # type: ignore[no-untyped-def]
    apply(app, [ev(n, "contact.erased", contact={"email": email})])


def story(app) -> None:  # type: ignore[no-untyped-def]
    """Anna refers Cleo (who buys) and Dan, and is herself Dan's friend."""
    apply(app, [
        ev(1, "referrer.enrolled", referrer={"email": ANNA, "first_name": "Anna"}),
        ev(2, "friend.registered", referrer={"email": ANNA}, friend={"email": CLEO}),
        ev(3, "friend.converted", referrer={"email": ANNA}, friend={"email": CLEO},
           order={"id": "o-1", "total": "10.00", "currency": "GBP"}),
        ev(4, "friend.registered", referrer={"email": ANNA}, friend={"email": DAN}),
        ev(5, "friend.registered", referrer={"email": DAN}, friend={"email": ANNA}),
    ])


def test_the_marker_is_a_keyed_hash_not_the_address(app, redis_client) -> None:  # type: ignore[no-untyped-def]
    story(app)
    erase(app, ANNA)
    marker = hmac.new(KEY.encode(), ANNA.encode(), hashlib.sha256).hexdigest()
    assert redis_client.exists(f"hub:erased:{marker}") and not redis_client.exists(f"hub:erased:{ANNA}")
    with app.app_context():
        assert get_ledger().is_erased(ANNA) and not get_ledger().is_erased(CLEO)
    # It refuses re-creation: a later event naming her writes nothing for her.
    apply(app, [ev(6, "referrer.enrolled", referrer={"email": ANNA, "first_name": "Anna"})])
    assert not redis_client.exists(f"hub:c:{ANNA}")


def test_the_key_is_kept_under_the_data_folder_when_unset(tmp_path: Path) -> None:
    first = erasure.load_key({"DATA_DIR": str(tmp_path)})
    path = tmp_path / erasure.KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) == 64
    assert erasure.load_key({"DATA_DIR": str(tmp_path)}) == first           # kept, never regenerated
    assert erasure.load_key({"DATA_DIR": str(tmp_path), "ERASURE_KEY": KEY}) == KEY.encode()
    with pytest.raises(erasure.ErasureKeyError, match="at least 16") as caught:
        erasure.load_key({"DATA_DIR": str(tmp_path), "ERASURE_KEY": "short-key"})
    assert "short-key" not in str(caught.value)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    with pytest.raises(erasure.ErasureKeyError, match="set HUB_ERASURE_KEY or make HUB_DATA_DIR writable"):
        erasure.load_key({"DATA_DIR": str(blocked)})
    for key in (KEY.encode(), b"k" * 64, b"long" * 40):  # the hot-path HMAC is RFC 2104's
        assert erasure.Keyed(key)("Zoe@Example.com") == hmac.new(key, b"Zoe@Example.com", hashlib.sha256).hexdigest()


def test_their_log_entries_leave_and_later_events_are_logged_without_them(app, redis_client) -> None:  # type: ignore[no-untyped-def]
    story(app)
    before = redis_client.xlen("hub:events")
    erase(app, DAN)
    entries = [json.loads(fields[b"event"]) for _, fields in redis_client.xrange("hub:events")]
    assert not any(DAN in json.dumps(e) for e in entries)
    # Entries 4 and 5 named Dan and are gone; the erasure is logged without the address.
    assert [e["id"] for e in entries] == ["e-1", "e-2", "e-3", "e-50"] and before == 5
    assert {k: entries[-1][k] for k in ("id", "type")} == {"id": "e-50", "type": "contact.erased"}
    assert "contact" not in entries[-1]
    apply(app, [ev(7, "friend.registered", referrer={"email": DAN}, friend={"email": GAIL})])
    last = json.loads(redis_client.xrevrange("hub:events", count=1)[0][1][b"event"])
    assert last["friend"]["email"] == GAIL and "referrer" not in last


def test_friends_lose_referred_by_everywhere_and_later_friends_never_get_it(app, redis_client) -> None:  # type: ignore[no-untyped-def]
    story(app)
    redis_client.delete(dirty_key("klaviyo"))
    erase(app, ANNA)
    with app.app_context():
        states = get_ledger().states([CLEO, DAN])
    # Cleo and Dan keep their own state, with referred_by forgotten (None) and a dirty mark.
    assert states[CLEO]["referred_by"] is None and states[CLEO]["first_order_id"] == "o-1"
    assert states[DAN]["referred_by"] is None
    assert {m.decode() for m in redis_client.zrange(dirty_key("klaviyo"), 0, -1)} == {CLEO, DAN}
    # Every default mapping sends an explicit null, so each vendor's old value is overwritten.
    for vendor, field in REFERRED_BY.items():
        rendered = render(default_mapping(vendor), states[CLEO])
        assert field in rendered["fields"] and rendered["fields"][field] is None, vendor
    # Each connector puts that null on the wire, where the vendor overwrites the old value with it.
    def sent(vendor: str) -> ContactUpdate:
        rendered = render(default_mapping(vendor), states[CLEO])
        return ContactUpdate(email=CLEO, fields=rendered["fields"], identity=rendered["identity"], previous_lists={})

    assert KlaviyoConnector.profile(sent("klaviyo"))["attributes"]["properties"]["referral_referred_by"] is None
    assert EmarsysConnector.contact(sent("emarsys"))["12007"] is None
    assert SalesforceConnector({"client_id": "x"}).record(sent("salesforce"))["Referral_Referred_By__c"] is None
    assert OmetriaConnector({"api_key": "x"}).record(sent("ometria"))["properties"]["referred_by"] is None
    # Splio keeps a custom field until it is overwritten: the connector sends an empty value.
    assert {"name": "referral_referred_by", "value": ""} in SplioConnector.attributes(sent("splio"))["custom_fields"]
    # A friend who registers later, naming Anna, never carries her address.
    apply(app, [ev(8, "friend.registered", referrer={"email": ANNA}, friend={"email": GAIL})])
    with app.app_context():
        gail = get_ledger().state(GAIL)
    assert gail is not None and "referred_by" not in gail
    assert all(field not in render(default_mapping(v), gail)["fields"] for v, field in REFERRED_BY.items())


def test_an_erasure_in_the_batch_that_touched_the_person_leaves_nothing_of_them_to_push(app, redis_client) -> None:  # type: ignore[no-untyped-def]
    """The ledger settles what a batch touched once, after its last event: a person erased in the
    same batch as their earlier events is not left dirty, versioned or re-created by it."""
    batch = [
        ev(1, "referrer.enrolled", referrer={"email": ANNA}),
        ev(2, "friend.registered", referrer={"email": ANNA}, friend={"email": CLEO}),
        ev(3, "friend.registered", referrer={"email": ANNA}, friend={"email": DAN}),
        ev(50, "contact.erased", contact={"email": CLEO}),
        ev(4, "referral.invited", referrer={"email": ANNA}),
        ev(5, "friend.converted", referrer={"email": ANNA}, friend={"email": CLEO},
           order={"id": "o-9", "total": "10.00", "currency": "GBP"}),
    ]
    apply(app, batch)
    dirty = {m.decode() for m in redis_client.zrange(dirty_key("klaviyo"), 0, -1)}
    assert dirty == {ANNA, DAN}
    assert redis_client.hget("hub:ver", CLEO) is None and not redis_client.exists(f"hub:c:{CLEO}")
    with app.app_context():
        anna = get_ledger().state(ANNA)
    # Cleo's registration counted before she was erased; the conversion after it names no one.
    assert anna is not None and (anna["friends_registered"], anna["invites_sent"], anna["friends_converted"]) == (2, 1, 0)
    assert anna["turnover"] == {} and anna["last_activity_at"] == "2026-11-20T10:00:05.000000Z"
    # The same batch again is six duplicates and changes nothing.
    versions = redis_client.hgetall("hub:ver")
    apply(app, batch)
    assert redis_client.hgetall("hub:ver") == versions
    assert {m.decode() for m in redis_client.zrange(dirty_key("klaviyo"), 0, -1)} == dirty


def test_referrers_forget_an_erased_friend_but_keep_their_counts(app, redis_client) -> None:  # type: ignore[no-untyped-def]
    story(app)
    member = hashlib.sha1(CLEO.encode()).hexdigest().encode()
    links = f"hub:c:{ANNA}:n"
    assert redis_client.hexists(links, b"g:" + member) and redis_client.hexists(links, b"v:" + member)
    assert redis_client.hexists(links, f"f:{CLEO}")
    erase(app, CLEO)
    assert not redis_client.hexists(links, b"g:" + member) and not redis_client.hexists(links, b"v:" + member)
    assert not redis_client.hexists(links, f"f:{CLEO}")
    with app.app_context():
        anna = get_ledger().state(ANNA)
    assert anna is not None and (anna["friends_registered"], anna["friends_converted"]) == (2, 1)
    assert str(anna["turnover"]["GBP"]) == "10.00"
    # Her events, replayed, change nothing.
    apply(app, [ev(2, "friend.registered", referrer={"email": ANNA}, friend={"email": CLEO})])
    with app.app_context():
        assert get_ledger().state(ANNA)["friends_registered"] == 2  # type: ignore[index]


def test_failed_syncs_are_rewritten_without_them_or_discarded(app, redis_client) -> None:  # type: ignore[no-untyped-def]
    story(app)
    with app.app_context():
        error = FatalVendorError(f"Payload invalid: {ANNA.upper()} refused", status=400, code="400")
        shared = sync.record_failure("klaviyo", [ANNA, CLEO], error)
        own = sync.record_failure("klaviyo", [ANNA], error)
        deletion = sync.record_failure("klaviyo", [ANNA], error, func="hub.jobs.entry.erase_contacts")
    erase(app, ANNA)
    with app.app_context():
        left = {f["id"]: f for f in failed.list_failed()}
        assert own not in left
        assert left[shared]["contacts"] == [CLEO] and ANNA not in left[shared]["message"].lower()
        job = failed.fetch(shared)
        assert job.args == ["klaviyo", [CLEO]] and ANNA not in failed.failure_text(job).lower()
        # A failed erasure keeps the address: it is how the vendor's deletion is retried.
        assert left[deletion]["contacts"] == [ANNA]
        assert redis_client.hget(sync.LAST.format("klaviyo"), ANNA) is None


def test_webhook_stores_forget_the_address_in_any_case_and_only_that_address() -> None:
    from hub.core.erasure import mentions

    found = mentions(["bob@x.com"])
    assert found.search('{"email": "BOB@X.COM"}') and found.search("mail Bob@x.com, please")
    assert not found.search("jimbob@x.com") and not found.search("bob@x.com.au") and not found.search("a.bob@x.com")

"""The timeline's compact stored form on a real Redis: `read` gives back what the earlier form
(a JSON object per entry, every member named) gave, for entries written either way, and says so
when a push's shape is no longer known instead of showing a wrong value."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from connectors.base import ContactUpdate
from hub.core import timeline
from tests.hub.test_console_sessions import signed_in
from tests.story import story

ANNA, CLEO = "anna@example.com", "cleo@example.com"
AT = 1796014824.254


@pytest.fixture
def contacts(redis_client):  # type: ignore[no-untyped-def]
    """Anna and Cleo exist (a timeline is written only while the contact does)."""
    for email in (ANNA, CLEO):
        redis_client.hset(timeline.CONTACT_PREFIX + email, "first_name", email.split("@")[0])
    return redis_client


def earlier_push(update: ContactUpdate, connector: str, version: int | None, at: float) -> dict[str, Any]:
    """A push entry as the earlier form stored it (written out here, not taken from the hub)."""
    before = update.previous_lists or {}
    fields = {n: "(another contact)" if isinstance(v, str) and "@" in v and v.lower() != update.email else v
              for n, v in update.fields.items()}
    return {"at": at, "kind": "push", "connector": connector, "mapping_version": version, "fields": fields,
            "lists": update.lists, "joined": {i: k for i, k in update.lists.items() if i not in before},
            "left": {i: k for i, k in before.items() if i not in update.lists},
            "consent": update.marketing_consent,
            "consent_changed": update.marketing_consent != update.previous_consent and update.marketing_consent is not None}


UPDATES = [
    # first push: every list joined, consent given, Cleo's own address and her referrer's
    ContactUpdate(email=CLEO, fields={"Email": CLEO, "FirstName": "Cleo", "Referred_By": "Anna@Example.com",
                                      "count": 2, "vip": False, "note": None},
                  lists={"701Mkt": "marketing", "701Txn": "transactional"}, marketing_consent=True,
                  previous_lists=None, previous_consent=None),
    # a later push: one list left, consent withdrawn, a value that merely reads like a marker
    ContactUpdate(email=CLEO, fields={"Email": CLEO, "FirstName": "Cleo", "Referred_By": "Anna@Example.com",
                                      "count": 3, "nick": "(another contact)", "alt": "CLEO@example.com"},
                  lists={"701Txn": "transactional"}, marketing_consent=False,
                  previous_lists={"701Mkt": "marketing", "701Txn": "transactional"}, previous_consent=True),
    # nothing changed but the fields; no lists, consent unknown
    ContactUpdate(email=CLEO, fields={"first_name": "Cleo"}, lists={}, marketing_consent=None,
                  previous_lists={}, previous_consent=None),
    # a list joined beside one kept
    ContactUpdate(email=CLEO, fields={"first_name": "Cleo"}, lists={"L1": "marketing", "L2": "marketing"},
                  marketing_consent=True, previous_lists={"L1": "marketing"}, previous_consent=True),
]


def test_a_push_reads_back_as_the_earlier_form_gave_it(contacts) -> None:  # type: ignore[no-untyped-def]
    for n, update in enumerate(UPDATES):
        timeline.pushed(contacts, "salesforce", [update], n)
    got = [{k: v for k, v in e.items() if k not in ("at", "cause")} for e in timeline.read(contacts, CLEO)][::-1]
    want = [{k: v for k, v in earlier_push(u, "salesforce", n, AT).items() if k != "at"} for n, u in enumerate(UPDATES)]
    assert got == want
    assert [list(e["fields"]) for e in got] == [list(u.fields) for u in UPDATES]    # in the order sent
    # what is stored: no address of another person, the contact's own address not repeated,
    # and the field names and lists kept once in the shared shapes
    stored = [raw.decode() for raw in contacts.lrange(timeline.TIMELINE.format(CLEO), 0, -1)]
    assert not any("anna" in s.lower() for s in stored)
    assert not any("anna" in raw.decode().lower() for raw in contacts.hvals(timeline.SHAPES))
    assert sum(CLEO in s for s in stored) == 0
    assert sum(len(s) for s in stored) < sum(len(json.dumps(w, separators=(",", ":"))) for w in want) / 2


def test_entries_in_the_earlier_form_read_as_before_beside_new_ones(contacts) -> None:  # type: ignore[no-untyped-def]
    old_event = {"at": AT - 10, "kind": "event", "event": "evt_1", "type": "friend.registered", "source": "api",
                 "occurred_at": "2026-11-17T07:48:43.766000Z", "as": "friend"}
    old_push = earlier_push(UPDATES[0], "klaviyo", 2, AT - 5)
    old_failed = {"at": AT - 4, "kind": "failed", "connector": "ometria", "status": 422, "code": "invalid"}
    contacts.rpush(timeline.TIMELINE.format(CLEO), *(json.dumps(e) for e in (old_event, old_push, old_failed)))
    timeline.pushed(contacts, "klaviyo", [UPDATES[1]], 3)
    timeline.failed(contacts, "ometria", [CLEO], None, None)
    newest_push, oldest_push = [e for e in timeline.read(contacts, CLEO) if e["kind"] == "push"]
    assert oldest_push == {**old_push, "cause": {"event": "evt_1", "type": "friend.registered"}}
    assert newest_push["cause"] == {"event": "evt_1", "type": "friend.registered"}   # across both forms
    assert newest_push["left"] == {"701Mkt": "marketing"} and newest_push["consent_changed"] is True
    kinds = [(e["kind"], e.get("status")) for e in timeline.read(contacts, CLEO)]
    assert kinds == [("failed", None), ("push", None), ("failed", 422), ("push", None), ("event", None)]
    assert timeline.read(contacts, CLEO)[2] == old_failed


def test_events_keep_their_time_as_sent(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    events = [{**story()[0], "occurred_at": "2026-11-20T10:00:00.5+01:00"}]
    assert app.test_client().post("/v1/events", json={"events": events},
                                  headers={"Authorization": "Bearer ingest-token"}).status_code == 202
    redis = app.extensions["services"].redis
    (entry,) = timeline.read(redis, ANNA)
    assert entry == {"at": entry["at"], "kind": "event", "event": "evt_001", "type": "referrer.enrolled", "source": "api",
                     "occurred_at": "2026-11-20T09:00:00.500000Z", "as": "referrer"}
    stored = json.loads(redis.lindex(timeline.TIMELINE.format(ANNA), 0))
    assert stored[5] == int(datetime(2026, 11, 20, 9, 0, 0, tzinfo=timezone.utc).timestamp()) * 10**6 + 500000
    # a time in another form is kept as its text
    assert timeline.expand(ANNA, [0, 1, "e", "t", "api", "2026-11-20T09:00:00Z", "c"], {})["occurred_at"] == "2026-11-20T09:00:00Z"


def test_a_shape_id_held_by_another_shape_keeps_the_shape_in_the_entry(contacts) -> None:  # type: ignore[no-untyped-def]
    update = UPDATES[0]
    shape, _ = timeline.field_shape(CLEO, update.fields)
    contacts.hset(timeline.SHAPES, timeline.shape_id(shape), json.dumps({"f": ["something", "else"]}))
    timeline.pushed(contacts, "emarsys", [update], 1)
    (push,) = timeline.read(contacts, CLEO)
    assert push["fields"] == earlier_push(update, "emarsys", 1, AT)["fields"]
    stored = json.loads(contacts.lindex(timeline.TIMELINE.format(CLEO), 0))
    assert stored[4] == shape and stored[6] == update.lists


def test_a_push_whose_shape_is_gone_says_so_rather_than_guess(contacts) -> None:  # type: ignore[no-untyped-def]
    timeline.pushed(contacts, "splio", [UPDATES[0]], 1)
    contacts.delete(timeline.SHAPES)
    (push,) = timeline.read(contacts, CLEO)
    assert push["fields"] == {} and push["lists"] == {} and push["joined"] == {}
    assert push["not_kept"] == ["fields", "lists"]
    assert push["consent"] is True and push["consent_changed"] is True and push["mapping_version"] == 1


def listed_pushes(html: str) -> list[str]:
    """The pushes the contact page lists under its drawing, newest first."""
    listed = html.split('<ol class="timeline" id="timeline">', 1)[1].split("</ol>", 1)[0]
    return [li for li in listed.split("<li ") if 'data-kind="push"' in li]


def test_the_contact_page_shows_a_push_in_either_form_and_labels_what_is_no_longer_known(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(KLAVIYO_API_KEY="pk_x", KLAVIYO_BASE_URL="http://127.0.0.1:9/klaviyo")
    client = app.test_client()
    assert client.post("/v1/events", json={"events": story()[:6]},
                       headers={"Authorization": "Bearer ingest-token"}).status_code == 202
    redis = app.extensions["services"].redis
    redis.rpush(timeline.TIMELINE.format(CLEO), json.dumps(earlier_push(UPDATES[0], "klaviyo", 2, AT)))
    timeline.pushed(redis, "klaviyo", [UPDATES[0]], 2)
    page = signed_in(app, "ops-token").get(f"/console/contacts/{CLEO}")
    assert page.status_code == 200
    pushes = listed_pushes(page.text)
    assert len(pushes) == 2 and "no longer known" not in page.text
    for li in pushes:      # the same words for either form
        assert "6 fields; joined list <code>701Mkt</code> (marketing), list <code>701Txn</code> (transactional)" in li
        assert "marketing consent given" in li and "<code>Referred_By</code> = (another contact)" in li
        assert f"<code>Email</code> = {CLEO}" in li and "<code>vip</code> = False" in li
    redis.delete(timeline.SHAPES)
    page = signed_in(app, "ops-token").get(f"/console/contacts/{CLEO}")
    new, old = listed_pushes(page.text)
    assert "the fields sent are no longer known" in new and "the lists joined and left are no longer known" in new
    assert "Fields sent" not in new and "0 fields" not in new and "joined list" not in new
    assert "6 fields" in old and "no longer known" not in old


def test_a_kind_this_version_does_not_know_is_shown_as_such_not_as_a_push() -> None:
    assert timeline.expand(CLEO, [7, 1796014824254, "klaviyo", 1], {}) == {"at": 1796014824.254, "kind": "7"}


def test_a_timeline_keeps_its_latest_entries_only(contacts, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Past the bound the oldest entries leave first; the latest stay (read newest first)."""
    monkeypatch.setattr(timeline, "KEEP", 3)
    for count in range(5):
        update = ContactUpdate(email=CLEO, fields={"count": count}, lists={}, marketing_consent=None,
                               previous_lists={}, previous_consent=None)
        timeline.pushed(contacts, "klaviyo", [update], 1)
    assert [entry["fields"]["count"] for entry in timeline.read(contacts, CLEO)] == [4, 3, 2]
    assert contacts.llen(timeline.TIMELINE.format(CLEO)) == 3


@pytest.mark.parametrize("text", ["2026-11-21T16:27:46.307000Z", "2026-11-21T16:27:46.000000Z", "1999-12-31T23:59:59.999999Z",
                                  "2026-11-21T16:27:46.3Z", "2026-11-21T16:27:46Z", "2026-11-21T16:27:46.307000+00:00",
                                  "2026-02-30T00:00:00.000000Z", "0999-01-01T00:00:00.000000Z", "not a time", ""])
def test_an_event_time_is_kept_as_micros_only_when_it_reads_back_the_same(text: str) -> None:
    """Checked against strptime/strftime with the ledger's format, written out here."""
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        micros = round((moment - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds() * 1e6)
        expected: Any = micros if moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") == text else text
    except ValueError:
        expected = text
    kept = timeline._occurred(text)
    assert kept == expected
    assert timeline._occurred_text(kept) == text

"""The console's stores on a real Redis: the contact index (used by the re-sync instead of a
SCAN), timelines, and the failed-sync index beside RQ's registry (derived, rebuildable, and in
agreement with `hub failed` / the API)."""
from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from connectors.base import ContactUpdate
from connectors.errors import AuthError, FatalVendorError, RetriableVendorError
from hub.core import failed, failindex, mappingstore, sync, timeline
from tests.conftest import INGEST_SECRET  # noqa: F401  (the shared fixtures' secret)
from tests.story import story

INGEST = {"Authorization": "Bearer ingest-token"}
PEOPLE = {"anna@example.com", "ben@example.com", "cleo@example.com", "dan@example.com", "eve@example.com"}


@pytest.fixture
def app(make_app):  # type: ignore[no-untyped-def]
    return make_app(KLAVIYO_API_KEY="pk_x", KLAVIYO_BASE_URL="http://127.0.0.1:9/klaviyo",
                    OMETRIA_API_KEY="om_x", OMETRIA_BASE_URL="http://127.0.0.1:9/ometria")


def post_story(app) -> None:  # type: ignore[no-untyped-def]
    assert app.test_client().post("/v1/events", json={"events": story()}, headers=INGEST).status_code == 202


def test_the_index_holds_every_contact_and_the_resync_walks_it_not_a_scan(app, redis_client) -> None:  # type: ignore[no-untyped-def]
    post_story(app)
    indexed = {e.decode() for e in redis_client.zrange(timeline.INDEX, 0, -1)}
    assert indexed == PEOPLE
    assert mappingstore.count_contacts(redis_client) == 5    # the first use marks the index built
    # a key written behind the ledger's back is not in the index, so a walk that finds it scanned
    redis_client.hset("hub:c:stray@example.com", "first_name", "Stray")
    assert set(mappingstore.known_contacts(redis_client)) == PEOPLE
    assert mappingstore.count_contacts(redis_client) == 5
    redis_client.delete("hub:dirty:klaviyo")
    assert mappingstore.mark_dirty(redis_client, "klaviyo") == 5
    assert {e.decode() for e in redis_client.zrange("hub:dirty:klaviyo", 0, -1)} == PEOPLE
    # most recently active first: Eve's and Anna's last events come last in the story
    total, rows = timeline.page(redis_client, 0, 2)
    assert total == 5 and len(rows) == 2


def test_a_database_from_before_the_index_is_indexed_once(app, redis_client) -> None:  # type: ignore[no-untyped-def]
    post_story(app)
    redis_client.delete(timeline.INDEX, timeline.BUILT)
    assert set(mappingstore.known_contacts(redis_client)) == PEOPLE
    assert redis_client.exists(timeline.BUILT)


def test_timeline_entries_and_erasure(app, redis_client) -> None:  # type: ignore[no-untyped-def]
    post_story(app)
    with app.app_context():
        update = ContactUpdate(email="cleo@example.com", fields={"referred_by": "anna@example.com", "first_name": "Cleo"},
                               lists={"L1": "marketing"}, marketing_consent=True, previous_lists={"L0": "transactional"},
                               previous_consent=None)
        timeline.pushed(redis_client, "klaviyo", [update], 3)
        sync.record_failure("ometria", ["cleo@example.com"], FatalVendorError("bad", status=422, code="invalid"))
        entries = timeline.read(redis_client, "cleo@example.com")
    assert [e["kind"] for e in entries[:2]] == ["failed", "push"]
    push = entries[1]
    assert push["joined"] == {"L1": "marketing"} and push["left"] == {"L0": "transactional"}
    assert push["mapping_version"] == 3 and push["consent_changed"] is True
    assert push["fields"] == {"referred_by": "(another contact)", "first_name": "Cleo"}
    assert push["cause"]["type"] == "friend.converted"          # Cleo's last event before the push
    assert {e["type"] for e in entries if e["kind"] == "event"} == {"friend.registered", "friend.converted"}
    erase = {"id": "erase-1", "type": "contact.erased", "occurred_at": "2026-11-22T10:00:00Z",
             "contact": {"email": "cleo@example.com"}}
    assert app.test_client().post("/v1/events", json={"events": [erase]}, headers=INGEST).status_code == 202
    assert not redis_client.exists("hub:tl:cleo@example.com")
    assert redis_client.zscore(timeline.INDEX, "cleo@example.com") is None
    with app.app_context():                       # nothing is recorded for an erased person
        timeline.pushed(redis_client, "klaviyo", [update], 3)
    assert not redis_client.exists("hub:tl:cleo@example.com")


def file_failures(app) -> list[str]:  # type: ignore[no-untyped-def]
    """Failed syncs of each class on two connectors, filed the way the sync files them."""
    ids = []
    with app.app_context():
        for n in range(7):
            ids.append(sync.record_failure("klaviyo", [f"k{n}@example.com"],
                                           FatalVendorError("email is invalid", status=400, code="invalid")))
        for n in range(3):
            ids.append(sync.record_failure("klaviyo", [f"t{n}@example.com"],
                                           RetriableVendorError("server error", status=503), attempts=9))
        ids.append(sync.record_failure("ometria", ["o@example.com", "k1@example.com"],
                                       AuthError("bad key", status=401, code="unauthorized")))
        ids.append(sync.record_failure("ometria", ["p@example.com"],
                                       FatalVendorError("no such list", code="bad_mapping")))
    return ids


def expected_groups(app) -> Counter[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with app.app_context():
        return Counter((i["connector"], failindex.classify(i)) for i in failed.list_failed())


def test_failed_index_groups_filters_and_pages_like_the_registry(app, redis_client) -> None:  # type: ignore[no-untyped-def]
    ids = file_failures(app)
    with app.app_context():
        assert failindex.reconcile(redis_client) == {"added": 12, "dropped": 0}
        groups = {(g["connector"], g["class"]): g["count"] for g in failindex.groups(redis_client, ["klaviyo", "ometria"])}
        assert groups == expected_groups(app) == {("klaviyo", "validation"): 7, ("klaviyo", "transient"): 3,
                                                  ("ometria", "configuration"): 2}
        # filters agree with hub failed / the API
        for connector, code in (("klaviyo", "invalid"), ("klaviyo", None), (None, "503"), ("ometria", "401")):
            total, found = failindex.query(redis_client, connector, None, code, None, 0, None)
            listed = [i["id"] for i in failed.list_failed(connector=connector, code=code)]
            assert total == len(listed) and sorted(found) == sorted(listed), (connector, code)
        total, found = failindex.query(redis_client, "klaviyo", "validation", "invalid", None, 0, None)
        assert total == 7
        # pages are disjoint and cover everything, newest first
        seen: list[str] = []
        for offset in range(0, 12, 5):
            total, page = failindex.query(redis_client, offset=offset, limit=5)
            seen += page
        assert total == 12 and sorted(seen) == sorted(ids)
        # the contact page's set
        assert sorted(failindex.of_contact(redis_client, "k1@example.com")) == sorted([ids[1], ids[10]])
        # a retry leaves the index, a discard too (at the next reconcile); a rebuild agrees
        failed.retry([ids[0]])
        failed.discard([ids[1]])
        assert failindex.reconcile(redis_client)["dropped"] == 1
        assert failindex.query(redis_client, "klaviyo", "validation", None, None, 0, None)[0] == 5
        before = failindex.groups(redis_client, ["klaviyo", "ometria"])
        assert failindex.rebuild(redis_client)["added"] == 10
        assert failindex.groups(redis_client, ["klaviyo", "ometria"]) == before
        # since: nothing failed in the future
        assert failindex.query(redis_client, since=9e9)[0] == 0


def test_erasure_clears_the_failed_index_of_the_person(app, redis_client) -> None:  # type: ignore[no-untyped-def]
    file_failures(app)
    with app.app_context():
        failindex.reconcile(redis_client)
        from hub.core.forget import forget

        forget(["k1@example.com"])
        failindex.reconcile(redis_client)
    from hub.core.ledger import contact_id

    assert not redis_client.exists(f"hub:fx:p:{contact_id('k1@example.com')}")
    assert contact_id("k1@example.com").encode() not in b"".join(redis_client.hvals(failindex.META))


def test_classes(app) -> None:  # type: ignore[no-untyped-def]
    def cls(**item: Any) -> str:
        return failindex.classify(item)
    assert cls(status=401, code=None) == "configuration"
    assert cls(status=None, code="mapping_error") == "configuration"
    assert cls(status=422, code="invalid", retriable=False) == "validation"
    assert cls(status=503, code=None, retriable=True) == "transient"
    assert cls(status=None, code="worker_error") == "transient"

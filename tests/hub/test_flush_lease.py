"""The flush lease: one writer per connector, a superseded flush makes no vendor call, and a push
a superseded flush completed is re-marked so a current flush writes last. Every exit path of a
flush leaves a job. Real Redis, the sandbox over real HTTP."""
from __future__ import annotations

from typing import Any

import pytest
import requests
from rq import Queue
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from hub.core import sync
from tests.story import event, story

INGEST = {"Authorization": "Bearer ingest-token"}


def post(client, events: list[dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/v1/events", json={"events": events}, headers=INGEST)
    assert response.status_code == 202, response.get_json()


def invited(sandbox_server, email: str) -> Any:  # type: ignore[no-untyped-def]
    held = requests.get(f"{sandbox_server.url}/_sandbox/klaviyo/contacts/{email}", timeout=5)
    return held.json()["fields"].get("referral_friends_invited") if held.ok else None


def vendor_calls(sandbox_server) -> int:  # type: ignore[no-untyped-def]
    return len(requests.get(f"{sandbox_server.url}/_sandbox/requests", params={"vendor": "klaviyo"}, timeout=5).json()["requests"])


def dirty(redis_client) -> set[str]:  # type: ignore[no-untyped-def]
    return {e.decode() for e in redis_client.zrange("hub:dirty:klaviyo", 0, -1)}


class Clock:
    """A monotonic clock the test moves (a lease trusts its own clock between renewals)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_flush_that_lost_its_lease_makes_no_vendor_call(hub_app, sandbox_server, redis_client) -> None:  # type: ignore[no-untyped-def]
    post(hub_app.test_client(), story())
    waiting = dirty(redis_client)
    with hub_app.app_context():
        old = sync.flush_lease("klaviyo")
        old.clock = clock = Clock()
        assert old.acquire()
        clock.now += 31                         # it stalled past its lease ...
        redis_client.delete(old.key)            # ... which expired
        new = sync.flush_lease("klaviyo")
        assert new.acquire() and new.fence() > old.fence()   # ... and a later flush took over
        with pytest.raises(sync.Superseded):
            sync.push("klaviyo", sync.build_connector("klaviyo", old), sorted(waiting), old)
    assert vendor_calls(sandbox_server) == 0
    assert dirty(redis_client) == waiting       # nothing recorded as pushed


def test_a_holder_asks_redis_only_once_a_quarter_of_its_lease_has_passed(hub_app, redis_client) -> None:  # type: ignore[no-untyped-def]
    """Within a quarter of the TTL after a renewal was sent, the lease cannot have expired, so the
    check makes no round trip (the key's TTL is left as it was); after that it renews in Redis,
    and a lease found lost is not trusted again."""
    with hub_app.app_context():
        lease = sync.flush_lease("klaviyo")      # 30 s (FLUSH_LEASE)
        lease.clock = clock = Clock()
        assert lease.acquire()
        redis_client.pexpire(lease.key, 20_000)
        clock.now += 7
        assert lease.check()
        assert redis_client.pttl(lease.key) <= 20_000       # not renewed: no round trip
        clock.now += 1                                      # 8 s: past a quarter of 30 s
        assert lease.check()
        assert redis_client.pttl(lease.key) > 20_000        # renewed in Redis
        redis_client.delete(lease.key)
        clock.now += 8
        assert not lease.check()
        assert not lease.check()                            # still lost: asked again, not trusted


def test_a_push_completed_by_a_superseded_flush_is_written_again(hub_app, sandbox_server, redis_client) -> None:  # type: ignore[no-untyped-def]
    """The stale-write race, step by step: flush A reads Anna at 2 invites and passes its lease
    check; while its call is in flight, A's lease runs out and flush B pushes 3 invites; then A's
    2 lands, last. A finds out when it settles, so Anna is pending again and the next flush
    sends 3, though B's fingerprint says the vendor has it."""
    client = hub_app.test_client()
    post(client, story())

    class InFlightWhenLost:
        """A's lease as its vendor call sees it: the first check passes, then the lease is lost
        and B runs before the call arrives."""

        def __init__(self, lease: Any) -> None:
            self.lease, self.calls = lease, 0

        def check(self) -> bool:
            held = self.lease.renew()
            self.calls += 1
            if self.calls == 1:
                redis_client.delete(self.lease.key)
                post(client, [event(90, "referral.invited", referrer={"email": "anna@example.com"})])
                assert sync.flush("klaviyo")["pushed"] >= 1
                assert invited(sandbox_server, "anna@example.com") == 3
            return held

    with hub_app.app_context():
        lease_a = sync.flush_lease("klaviyo")
        assert lease_a.acquire()
        connector = sync.build_connector("klaviyo", lease_a)
        connector.session.lease = InFlightWhenLost(lease_a)  # type: ignore[attr-defined]
        with pytest.raises(sync.Superseded):
            sync.push("klaviyo", connector, sorted(dirty(redis_client)), lease_a)
        assert invited(sandbox_server, "anna@example.com") == 2              # stale, for now
        assert "anna@example.com" in dirty(redis_client)
        assert redis_client.hexists("hub:suspect:klaviyo", "anna@example.com")
        sync.flush("klaviyo")
    assert invited(sandbox_server, "anna@example.com") == 3
    assert not dirty(redis_client) and not redis_client.hlen("hub:suspect:klaviyo")


def test_an_ops_retry_waits_for_the_flush_holding_the_lease(hub_app, redis_client) -> None:  # type: ignore[no-untyped-def]
    post(hub_app.test_client(), story())
    with hub_app.app_context():
        redis_client.zrem("hub:dirty:klaviyo", "anna@example.com")
        holder = sync.flush_lease("klaviyo")
        assert holder.acquire()
        assert sync.sync_contacts("klaviyo", ["anna@example.com"]) == {"deferred": "flushing", "contacts": 1}
    assert "anna@example.com" in dirty(redis_client)


def queued_flushes(redis_client) -> int:  # type: ignore[no-untyped-def]
    return Queue("sync-klaviyo", connection=redis_client, serializer=JSONSerializer).count


def test_a_fatal_answer_leaves_a_job_for_contacts_not_yet_due(hub_app, sandbox_server, redis_client) -> None:  # type: ignore[no-untyped-def]
    post(hub_app.test_client(), [event(1, "referral.invited", referrer={"email": "first@example.com"}),
                                 event(2, "referral.invited", referrer={"email": "later@example.com"})])
    redis_client.zadd("hub:dirty:klaviyo", {"later@example.com": 9e9}, xx=True)   # due far ahead
    Queue("sync-klaviyo", connection=redis_client, serializer=JSONSerializer).empty()
    redis_client.delete("hub:flushq:klaviyo")
    requests.post(f"{sandbox_server.url}/_sandbox/faults", json={"vendor": "klaviyo", "status": 400, "count": 1}, timeout=5)
    with hub_app.app_context():
        hub_app.config["HUB"]["FLUSH_BUDGET"] = 0.5
        assert "fatal" in sync.flush("klaviyo")
    assert dirty(redis_client) == {"later@example.com"}
    assert queued_flushes(redis_client) == 1


def test_a_fault_of_the_hub_backs_off_and_schedules_the_next_flush(hub_app, redis_client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    post(hub_app.test_client(), story())

    def broken(connector: str, client: Any, queued: Any = None) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(sync, "erase_pending", broken)
    with hub_app.app_context():
        with pytest.raises(RuntimeError):
            sync.flush("klaviyo")
        queue = Queue("sync-klaviyo", connection=redis_client, serializer=JSONSerializer)
        assert ScheduledJobRegistry(queue=queue).count == 1
        assert sync.backing_off_until("klaviyo")
        assert not redis_client.exists("hub:lease:flush:klaviyo")      # let go on the way out


def test_a_flush_that_finds_the_lease_taken_schedules_one_for_when_it_ends(hub_app, redis_client) -> None:  # type: ignore[no-untyped-def]
    post(hub_app.test_client(), story())
    with hub_app.app_context():
        holder = sync.flush_lease("klaviyo")
        assert holder.acquire()                  # a horse whose worker died, say
        first, second = sync.flush("klaviyo"), sync.flush("klaviyo")
        assert first["leased"] and second["leased"]
        assert 0 < first["retry_in"] <= hub_app.config["HUB"]["FLUSH_LEASE"] + 0.5
        queue = Queue("sync-klaviyo", connection=redis_client, serializer=JSONSerializer)
        assert ScheduledJobRegistry(queue=queue).count == 1
    assert dirty(redis_client)                   # untouched: the holder or that flush takes them


def test_settle_keeps_the_push_in_the_contact_hash_and_never_makes_an_erased_one_again(hub_app, redis_client) -> None:  # type: ignore[no-untyped-def]
    """What a push leaves (sync.settle): its entry in the contact's own hash, with when it landed;
    a contact erased while the vendor answered gets nothing (its hash is not created again); a
    contact touched since it was read keeps what landed without a fingerprint; a superseded
    flush's write is marked suspect with the lists it sent, merged with an earlier mark."""
    import json
    import time

    from hub.core import keys, pushstate

    lists = {"RfMkt1": "marketing", "RfTxn1": "transactional"}
    redis_client.hset(keys.contact("a@x.test"), "email", "a@x.test")
    redis_client.hset(keys.VERSIONS, "a@x.test", 3)
    with hub_app.app_context():
        lease = sync.flush_lease("klaviyo")
        assert lease.acquire()
        before = int(time.time())
        assert sync.settle("klaviyo", lease, {"a@x.test": 3, "gone@x.test": 1},
                           {"a@x.test": pushstate.written("0123456789abcdef", lists, True),
                            "gone@x.test": pushstate.written("fedcba9876543210", {}, None)})
        entry = pushstate.unpack(redis_client.hget(keys.contact("a@x.test"), "p:klaviyo"))
        assert entry is not None and before <= entry["at"] <= time.time()
        assert entry == {"fp": "0123456789abcdef", "at": entry["at"], "consent": True, "lists": lists}
        assert not redis_client.exists(keys.contact("gone@x.test"))

        redis_client.hincrby(keys.VERSIONS, "a@x.test", 1)      # touched since the flush read it
        assert sync.settle("klaviyo", lease, {"a@x.test": 3}, {"a@x.test": pushstate.written("1" * 16, {}, False)})
        entry = pushstate.unpack(redis_client.hget(keys.contact("a@x.test"), "p:klaviyo"))
        assert entry is not None and (entry["fp"], entry["consent"], entry["lists"]) == ("", False, {})

        lease.release()                                          # superseded
        redis_client.hset(keys.SUSPECT.format("klaviyo"), "a@x.test",
                          json.dumps({"fp": "superseded", "lists": {"Old1": "marketing"}, "consent": None}))
        assert not sync.settle("klaviyo", lease, {"a@x.test": 4},
                               {"a@x.test": pushstate.written("superseded", {"RfTxn1": "transactional"}, True)})
    assert json.loads(redis_client.hget(keys.SUSPECT.format("klaviyo"), "a@x.test")) == \
        {"fp": "superseded", "lists": {"RfTxn1": "transactional", "Old1": "marketing"}, "consent": True}
    assert "a@x.test" in dirty(redis_client) and redis_client.hget(keys.VERSIONS, "a@x.test") == b"5"

"""Adaptive coalescing (hub/core/coalesce.py) on a real Redis, with the clock passed in: a full batch
goes at once, a partial one waits while more contacts are on their way and the oldest still has
time before the freshness deadline, and a trickle is never held past it."""
from __future__ import annotations

import json
from typing import Any

import pytest

from hub.core import coalesce, pushstate
from hub.core.keys import LAST
from hub.core.ledger import dirty_key, key

NOW = 1_800_000_000.0


def dirty(r: Any, connector: str, contacts: dict[str, tuple[float, float]]) -> None:
    """email -> (first touch of its burst, due time), as the ledger leaves them."""
    for email, (since, due) in contacts.items():
        r.hset(key(email), ":since", since)
        r.zadd(dirty_key(connector), {email: due})


def test_a_full_batch_goes_at_once_even_while_more_arrive(redis_client: Any) -> None:
    dirty(redis_client, "emarsys", {f"p{i}@x.test": (NOW - 1.5, NOW - 0.1 + i / 100) for i in range(4)})
    dirty(redis_client, "emarsys", {"later@x.test": (NOW - 0.2, NOW + 1.0)})
    step = coalesce.take(redis_client, "emarsys", 3, deadline=3.0, now=NOW)
    assert step.batch == ["p0@x.test", "p1@x.test", "p2@x.test"] and step.wait == 0 and step.reason == "full"


def test_a_partial_batch_waits_while_more_arrive_and_the_oldest_has_time(redis_client: Any) -> None:
    dirty(redis_client, "salesforce", {"a@x.test": (NOW - 1.2, NOW - 0.2), "b@x.test": (NOW - 0.3, NOW + 0.7)})
    step = coalesce.take(redis_client, "salesforce", 100, deadline=3.0, now=NOW)
    assert step.batch == [] and step.reason == "filling"
    assert 0 < step.wait <= coalesce.STEP
    # The same contacts once the oldest's burst began 3 s ago: what is due goes.
    step = coalesce.take(redis_client, "salesforce", 100, deadline=1.2, now=NOW)
    assert step.batch == ["a@x.test"] and step.reason == "deadline"


def test_a_flush_the_deadline_forces_takes_contacts_still_in_their_window_where_flushes_cost(
        redis_client: Any) -> None:
    # Klaviyo pays an import job and its status read per flush: b goes now rather than force
    # another flush a moment later. Ometria pays per 100 records only: b waits for its window.
    for connector in ("klaviyo", "ometria"):
        dirty(redis_client, connector, {"a@x.test": (NOW - 3.5, NOW - 0.2), "b@x.test": (NOW - 0.3, NOW + 0.7),
                                        "c@x.test": (NOW - 0.1, NOW + 0.9)})
    assert coalesce.take(redis_client, "klaviyo", 2, deadline=3.0, now=NOW).batch == ["a@x.test", "b@x.test"]
    assert coalesce.take(redis_client, "ometria", 2, deadline=3.0, now=NOW).batch == ["a@x.test"]
    # A contact due beyond the deadline (a longer window) is not in this flush's reach.
    redis_client.zadd(dirty_key("klaviyo"), {"b@x.test": NOW + 5.0, "c@x.test": NOW + 6.0}, xx=True)
    assert coalesce.take(redis_client, "klaviyo", 2, deadline=3.0, now=NOW).batch == ["a@x.test"]


def test_a_wait_never_runs_past_the_deadline(redis_client: Any) -> None:
    dirty(redis_client, "emarsys", {"a@x.test": (NOW - 2.95, NOW - 1.0), "b@x.test": (NOW, NOW + 1.0)})
    step = coalesce.take(redis_client, "emarsys", 100, deadline=3.0, now=NOW)
    assert step.batch == [] and step.wait == pytest.approx(0.05)


def test_a_trickle_is_sent_when_nothing_else_is_coming(redis_client: Any) -> None:
    dirty(redis_client, "ometria", {"a@x.test": (NOW - 1.0, NOW - 0.1)})
    step = coalesce.take(redis_client, "ometria", 100, deadline=3.0, now=NOW)
    assert step.batch == ["a@x.test"] and step.reason == "trickle"


def test_no_deadline_sends_what_is_due_at_once(redis_client: Any) -> None:
    dirty(redis_client, "salesforce", {"a@x.test": (NOW - 1.0, NOW - 0.1), "b@x.test": (NOW, NOW + 1.0)})
    assert coalesce.take(redis_client, "salesforce", 200, deadline=0.0, now=NOW).batch == ["a@x.test"]


def test_nothing_due_waits_for_the_first_and_nothing_dirty_ends(redis_client: Any) -> None:
    assert coalesce.take(redis_client, "splio", 10, deadline=3.0, now=NOW) == coalesce.Take([])
    dirty(redis_client, "splio", {"a@x.test": (NOW, NOW + 0.4), "b@x.test": (NOW, NOW + 5.0)})
    step = coalesce.take(redis_client, "splio", 10, deadline=3.0, now=NOW)
    assert step.batch == [] and step.wait == pytest.approx(0.4)


def test_a_contact_erased_while_dirty_is_not_held_back(redis_client: Any) -> None:
    redis_client.zadd(dirty_key("splio"), {"gone@x.test": NOW - 0.1, "b@x.test": NOW + 1.0})
    assert coalesce.take(redis_client, "splio", 10, deadline=3.0, now=NOW).batch == ["gone@x.test"]


def pushed(r: Any, connector: str, email: str, at: float) -> None:
    """What a landed push leaves (hub.core.sync settle): what was written, and when."""
    r.hset(key(email), pushstate.field(connector), pushstate.entry("x", int(at), {}, None))


def arriving(r: Any) -> None:
    """A burst under way: a contact dirty but not yet due."""
    dirty(r, "splio", {"arriving@x.test": (NOW - 0.1, NOW + 2.4)})


def test_splio_holds_a_full_batch_of_new_contacts_until_their_deadline(redis_client: Any) -> None:
    # Splio updates one contact a call: creating these now would turn their next events into PATCHes.
    dirty(redis_client, "splio", {f"p{i}@x.test": (NOW - 1.5 - i / 2, NOW - 0.1) for i in range(3)})
    arriving(redis_client)
    step = coalesce.take(redis_client, "splio", 2, deadline=3.0, now=NOW)
    assert step.batch == [] and step.reason == "holding" and step.wait == pytest.approx(0.5)
    # Their bursts began 1.5, 2 and 2.5 s ago: a second later p1 and p2 have reached the 3 s deadline.
    step = coalesce.take(redis_client, "splio", 2, deadline=3.0, now=NOW + 1.0)
    assert sorted(step.batch) == ["p1@x.test", "p2@x.test"] and step.reason == "deadline"


def test_splio_fills_a_part_full_create_with_new_contacts_already_quiet(redis_client: Any) -> None:
    # "late" reached its deadline; "quiet" has not, but is due (quiet for its window) and new, so
    # it rides in the same bulk create; "known" would cost a PATCH of its own and stays held.
    dirty(redis_client, "splio", {"late@x.test": (NOW - 3.5, NOW - 0.1), "quiet@x.test": (NOW - 2.0, NOW - 0.2),
                                  "known@x.test": (NOW - 2.0, NOW - 0.3)})
    pushed(redis_client, "splio", "known@x.test", NOW - 1.0)
    arriving(redis_client)
    step = coalesce.take(redis_client, "splio", 10, deadline=3.0, now=NOW)
    assert sorted(step.batch) == ["late@x.test", "quiet@x.test"]


def test_splio_updates_a_contact_at_most_once_a_deadline(redis_client: Any) -> None:
    # Both were pushed before; "recent" 1 s ago, so its new change is held until 2 s from now.
    dirty(redis_client, "splio", {"recent@x.test": (NOW - 20, NOW - 0.1), "old@x.test": (NOW - 20, NOW - 0.1)})
    pushed(redis_client, "splio", "recent@x.test", NOW - 1.0)
    pushed(redis_client, "splio", "old@x.test", NOW - 30.0)
    arriving(redis_client)
    step = coalesce.take(redis_client, "splio", 10, deadline=3.0, now=NOW)
    assert step.batch == ["old@x.test"]
    redis_client.zrem(dirty_key("splio"), "old@x.test")
    step = coalesce.take(redis_client, "splio", 10, deadline=3.0, now=NOW)
    assert step.batch == [] and step.wait == pytest.approx(1.0)      # it looks again within a second
    assert coalesce.take(redis_client, "splio", 10, deadline=3.0, now=NOW + 2.0).batch == ["recent@x.test"]


def test_splio_sends_a_trickle_at_once(redis_client: Any) -> None:
    # No burst under way (nothing dirty but not yet due): nothing to gather by waiting.
    dirty(redis_client, "splio", {"new@x.test": (NOW - 1.6, NOW - 0.1)})
    assert coalesce.take(redis_client, "splio", 10, deadline=3.0, now=NOW).batch == ["new@x.test"]


def test_a_contact_pushed_during_its_burst_counts_from_that_push(redis_client: Any) -> None:
    # Its burst began 10 s ago but it was pushed 0.5 s ago: its new change may still wait for others.
    dirty(redis_client, "salesforce", {"a@x.test": (NOW - 10, NOW - 0.1), "b@x.test": (NOW - 0.2, NOW + 0.8)})
    pushed(redis_client, "salesforce", "a@x.test", NOW - 0.5)
    assert coalesce.take(redis_client, "salesforce", 100, deadline=3.0, now=NOW).reason == "filling"
    # Never pushed, the same contact is late already and goes.
    redis_client.hdel(key("a@x.test"), pushstate.field("salesforce"))
    assert coalesce.take(redis_client, "salesforce", 100, deadline=3.0, now=NOW).batch == ["a@x.test"]


def test_a_failed_try_is_not_a_push(redis_client: Any) -> None:
    dirty(redis_client, "salesforce", {"a@x.test": (NOW - 10, NOW - 0.1), "b@x.test": (NOW - 0.2, NOW + 0.8)})
    pushed(redis_client, "salesforce", "a@x.test", NOW - 20)
    redis_client.hset(LAST.format("salesforce"), "a@x.test", json.dumps({"at": NOW - 0.5, "ok": False}))
    # The last try failed, so its unsent change is still the one from 10 s ago: late, it goes.
    assert coalesce.take(redis_client, "salesforce", 100, deadline=3.0, now=NOW).batch == ["a@x.test"]


def test_other_vendors_are_not_held(redis_client: Any) -> None:
    dirty(redis_client, "ometria", {"a@x.test": (NOW - 0.5, NOW - 0.1)})
    pushed(redis_client, "ometria", "a@x.test", NOW - 1.0)
    assert coalesce.take(redis_client, "ometria", 100, deadline=3.0, now=NOW).batch == ["a@x.test"]


class Client:
    freshness_deadline = 4.5


def test_the_deadline_setting_per_connector_then_connector_then_hub_wide() -> None:
    base = {"FLUSH_WINDOW": 0.2}
    assert coalesce.deadline_for(base, "splio", object()) == coalesce.DEFAULT_DEADLINE
    assert coalesce.deadline_for({**base, "FRESHNESS_DEADLINE": "2"}, "splio", object()) == 2.0
    assert coalesce.deadline_for({**base, "FRESHNESS_DEADLINE": "2"}, "splio", Client()) == 4.5
    assert coalesce.deadline_for({**base, "FRESHNESS_DEADLINE_SPLIO": "1.5"}, "splio", Client()) == 1.5
    assert coalesce.deadline_for({"FLUSH_WINDOW": 0, "FRESHNESS_DEADLINE": "9"}, "splio", Client()) == 0.0
    with pytest.raises(ValueError, match="HUB_FRESHNESS_DEADLINE_SPLIO must be a number"):
        coalesce.deadline_for({**base, "FRESHNESS_DEADLINE_SPLIO": "soon"}, "splio", object())


def test_a_push_the_sync_settles_is_the_push_a_contact_counts_from(make_app, redis_client: Any) -> None:  # type: ignore[no-untyped-def]
    """What a real flush records when a push lands (hub.core.sync.settle) is what the coalescer
    reads as the contact's last push, so its next change counts from that push."""
    import time

    from hub.core import sync
    from hub.core.lease import Lease

    app = make_app()
    email = "a@x.test"
    redis_client.hset(key(email), mapping={"email": email, ":since": NOW - 10})
    with app.app_context():
        lease = Lease(redis_client, "flush:salesforce", 30)
        assert lease.acquire()
        before = time.time()
        assert sync.settle("salesforce", lease, {email: 0},
                           {email: pushstate.written("x", {}, None)})
        after = time.time()
    [(who, counted_from)] = coalesce.starts(redis_client, "salesforce", [email])
    assert who == email and counted_from is not None and int(before) <= counted_from <= after
    # a failed try after it leaves the change unsent: the contact counts from its burst again
    redis_client.hset(LAST.format("salesforce"), email, json.dumps({"at": after + 1, "ok": False}))
    assert coalesce.starts(redis_client, "salesforce", [email]) == [(email, NOW - 10)]

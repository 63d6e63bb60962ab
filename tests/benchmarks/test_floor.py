"""The deadline floor (benchmarks/floor.py) on a small arrival timeline worked out by hand."""
from __future__ import annotations

from typing import Any

from benchmarks import expected, floor
from benchmarks.runner import VENDORS, list_kinds

R, A, B = "r@bench.example", "fa@bench.example", "fb@bench.example"


def event(id_: str, kind: str, **parts: Any) -> dict[str, Any]:
    return {"id": id_, "type": kind, "occurred_at": f"2026-11-16T10:00:{len(id_):02d}.000Z", "programme": "bench",
            "referrer": {"email": R}, **parts}


ORDER = {"id": "o1", "total": "50.00", "currency": "GBP", "coupon_code": "R-A"}
# (arrival in seconds, event), in the order the hub accepted them
TIMELINE = [
    (0.0, event("e0", "referrer.enrolled", referrer={"email": R, "first_name": "Ann", "referrer_id": "R1",
                                                     "share_url": "https://shop.example/r/1"})),
    (1.0, event("e1", "referral.invited")),
    (2.0, event("e2", "referral.invited")),
    (2.5, event("e3", "friend.registered", friend={"email": A, "first_name": "Bo", "marketing_opt_in": True,
                                                   "promo_code": "R-A"})),
    (4.0, event("e4", "friend.registered", friend={"email": B, "first_name": "Cy", "marketing_opt_in": False,
                                                   "promo_code": "R-B"})),
    (5.0, event("e5", "referral.invited")),
    (7.0, event("e6", "friend.converted", friend={"email": A}, order=ORDER)),
    (8.0, event("e2", "referral.invited")),                                        # a client retry: same id
    (9.0, event("e6-again", "friend.converted", friend={"email": A}, order=ORDER)),  # the order again
]


def floors(deadline: float) -> dict[str, Any]:
    stream, arrivals = [e for _, e in TIMELINE], [t for t, _ in TIMELINE]
    plain = floor.compute(expected.expected_for(stream, VENDORS), list_kinds())
    return floor.deadline_floor(plain, stream, arrivals, {v: deadline for v in VENDORS})


def test_the_fewest_pushes_cover_each_change_within_the_deadline() -> None:
    # 0 opens a push due at 3 (takes 1, 2.5); 3.5 opens one due at 6.5; 7 a third.
    assert floor.groups([2.5, 0.0, 1.0, 3.5, 7.0], 3.0) == [(0.0, 3.0), (3.5, 6.5), (7.0, 10.0)]


def test_splio_pays_a_patch_for_each_push_after_the_create() -> None:
    # With a 3 s deadline, by hand: the referrer changes at 0, 1, 2, 2.5 | 4, 5, 7 (the retry at 8
    # and the order sent again at 9 change nothing): two pushes, a create and a PATCH. Friend A
    # changes at 2.5 (opts in: created with the marketing list) | 7 (converts: a PATCH and a
    # subscribe to the transactional list). Friend B once, at 4. The creates fall due at 3 (the
    # referrer's and A's) and 7 (B's): two bulk creates. Plus the login: 1 + 2 + 2 + 1 = 6.
    splio = floors(3.0)["splio"]
    assert splio["calls"] == {"POST authenticate": 1, "POST contacts/bulk": 2, "PATCH contacts": 2,
                              "POST contacts/lists/subscribe": 1}
    assert splio["total"] == 6


def test_bulk_vendors_pay_each_flush_the_deadline_forces() -> None:
    # All changes: flushes due at 3 (referrer, A opting in) and 7 (referrer, B, A converting).
    found = floors(3.0)
    assert found["ometria"]["flushes"] == 2 and found["ometria"]["total"] == 2            # 1 + 1 push
    # token; one PUT each flush; marketing list at the first, transactional at the second
    assert found["emarsys"]["total"] == 1 + 2 + 2
    # first flush: one import job (no customer), A's suppression read and its subscription;
    # second: A (now a customer) in a job of its own, the others in another. The jobs' status
    # reads are job polling: beside the floor, not in it.
    assert found["klaviyo"]["total"] == 3 + 2
    assert "GET bulk-import (job status)" not in found["klaviyo"]["calls"]
    assert found["salesforce"]["total"] == 1 + 2 + 2


def test_a_deadline_longer_than_the_burst_is_the_plain_floor() -> None:
    found = floors(10.0)
    assert found["splio"]["total"] == 2                 # the login and one bulk create of all three
    assert found["emarsys"]["total"] == 1 + 1 + 2
    assert all(found[v]["flushes"] == 1 for v in VENDORS if v != "splio")


def test_splio_updates_slip_when_its_budget_cannot_keep_the_deadline() -> None:
    # Splio's connector obeys 20 contact calls a second: one update every 0.05 s. Contacts x and y
    # change at 0, 0.02 and 0.04 with a 0.01 s deadline. Unbounded, each would be created at 0.01
    # and PATCHed at 0.03 and 0.05: four PATCHes. By hand with the budget: x is PATCHed at 0.03
    # (next call free at 0.08); y's PATCH due at 0.03 waits until 0.08 and so carries its 0.04
    # change too (free at 0.13); x's last change, due at 0.05, goes at 0.13. Three PATCHes.
    found = [floor.Change(email, at) for email in ("x", "y") for at in (0.0, 0.02, 0.04)]
    assert floor.splio_calls(found, 0.01) == {"POST authenticate": 1, "POST contacts/bulk": 1, "PATCH contacts": 3,
                                              "POST contacts/lists/subscribe": 0}


def test_job_polling_is_reported_beside_the_plain_floor_not_in_it() -> None:
    # The final state: R and B in one import job, A (a customer) in another; A's consent needs a
    # suppression read and a subscription. Each job's status read is polling, reported beside.
    stream = [e for _, e in TIMELINE]
    plain = floor.compute(expected.expected_for(stream, VENDORS), list_kinds())["vendors"]["klaviyo"]
    assert plain["calls"] == {"POST bulk-import": 2, "GET profiles (suppressions)": 1, "POST subscribe": 1}
    assert plain["total"] == 4
    assert plain["reads_beside"] == {"GET bulk-import (job status)": 2}

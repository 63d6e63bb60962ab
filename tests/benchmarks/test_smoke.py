"""A smoke run of the standard benchmark at R = 200: the whole stack as processes, correctness only.

No timing is asserted here: speed is what `make bench` reports, never a test that can flake.
"""
from __future__ import annotations

import pytest

from benchmarks import expected, workload
from benchmarks.runner import Options, VENDORS, run


def test_workload_is_seeded_and_shaped_as_benchmark_md_says() -> None:
    first, again = workload.build(200, seed=7), workload.build(200, seed=7)
    assert first.stream == again.stream
    assert first.story_events == 9 * 200
    ids = [e["id"] for e in first.stream]
    assert len(ids) > len(set(ids)), "client retries reuse event ids"
    again_ids = [i for i in ids if i.endswith("-again")]
    assert again_ids, "some conversions are reported again with a new id"
    assert any(e["order"]["currency"] == "EUR" for e in first.stream if e["type"] == "friend.converted")


def test_expected_state_ignores_duplicates_and_order() -> None:
    events = workload.build(30, seed=3).stream
    ordered = expected.model_of(events)
    shuffled = expected.model_of(list(reversed(events)) + events[:50])
    for email in ordered.people:
        assert ordered.state(email) == shuffled.state(email)
    referrer = ordered.state("ref000009@bench.example")
    assert (referrer["invites_sent"], referrer["friends_registered"], referrer["friends_converted"]) == (5, 2, 1)
    assert referrer["turnover_currency"] == "EUR"


def test_comparison_catches_a_wrong_count() -> None:
    events = workload.build(5, seed=1).stream
    want = expected.expected_for(events, ["splio"])
    held = {"splio": {e: {"fields": dict(r["fields"]), "lists": sorted(r["lists"]),
                          "marketing_consent": r["consent"] if r["consent"] else None, "deleted": False}
                      for e, r in want.vendors["splio"].items()}}
    assert expected.compare(want, held)["splio"]["mismatched"] == 0
    held["splio"]["ref000001@bench.example"]["fields"]["referral_nb_potential_referred"] = 6
    assert expected.compare(want, held)["splio"]["mismatched"] == 1


@pytest.mark.timeout(120)
def test_smoke_run_every_vendor_holds_the_expected_state() -> None:
    result = run(Options(referrers=200, single=False, freshness=False, drain_timeout=90))
    assert result["correctness"]["failed_syncs"] == 0
    for vendor in VENDORS:
        assert result["correctness"][vendor]["contacts"] == 600
        assert result["correctness"][vendor]["mismatched"] == 0, result["correctness"][vendor]["examples"]
    # The drain is read at the vendors once they all hold the final state: each has a last write.
    assert not result["drain"]["timed_out"], result["drain"]
    assert set(result["drain"]["per_vendor_s"]) == set(VENDORS)
    assert all(seconds > 0 for seconds in result["drain"]["per_vendor_s"].values()), result["drain"]

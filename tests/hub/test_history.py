"""The console's short history on a real Redis, with a clock the test controls: minute buckets and
their boundaries, expiry, backlog samples, freshness figures; and through a real push, the sweep,
and a scan that no bucket names a person."""
from __future__ import annotations

import math
import time

from hub.core import history, keys, pushstate, recent, sync
from hub.core.ledger import dirty_key, erase_key
from tests.story import story

INGEST = {"Authorization": "Bearer ingest-token"}
T0 = 1_800_000_000.0 - 1_800_000_000.0 % 60       # the start of a minute


def nearest_rank(figures: list[float], q: float) -> float:
    ordered = sorted(figures)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def test_a_figure_lands_in_the_minute_of_its_clock_and_the_boundary_belongs_to_the_next(redis_client) -> None:  # type: ignore[no-untyped-def]
    history.record_freshness(redis_client, "klaviyo", [4.0], T0 - 0.001)     # the last instant of a minute
    history.record_freshness(redis_client, "klaviyo", [7.0, 9.0], T0)        # the first of the next
    hour = history.last_hour(redis_client, ["klaviyo"], T0 + 30)["klaviyo"]
    assert hour["minutes"][-1] == T0 and hour["minutes"][-2] == T0 - 60 and len(hour["minutes"]) == 60
    assert hour["fresh_n"][-2:] == [1, 2]
    assert hour["fresh_max"][-2:] == [4.0, 9.0]
    assert hour["fresh_n"][:-2] == [0] * 58 and hour["fresh_p95"][:-2] == [None] * 58


def test_buckets_expire_after_two_hours_and_leave_the_chart_after_one(redis_client) -> None:  # type: ignore[no-untyped-def]
    history.record_freshness(redis_client, "klaviyo", [1.0], T0)
    history.sample_backlog(redis_client, ["klaviyo"], T0)
    ttl = redis_client.ttl(keys.HISTORY.format(int(T0 // 60)))
    assert 0 < ttl <= 2 * 3600
    # 59 minutes later the minute is the oldest shown; 60 minutes later it is gone from the hour
    assert history.last_hour(redis_client, ["klaviyo"], T0 + 59 * 60)["klaviyo"]["fresh_n"][0] == 1
    later = history.last_hour(redis_client, ["klaviyo"], T0 + 60 * 60)["klaviyo"]
    assert sum(later["fresh_n"]) == 0 and later["backlog"] == [None] * 60 and later["fresh_hour"]["p95"] is None


def test_the_backlog_sample_is_dirty_plus_erasures_and_a_second_sample_replaces_the_first(redis_client) -> None:  # type: ignore[no-untyped-def]
    redis_client.zadd(dirty_key("klaviyo"), {"a@example.com": 1, "b@example.com": 2, "c@example.com": 3})
    redis_client.zadd(erase_key("klaviyo"), {"d@example.com": 1})
    assert history.sample_backlog(redis_client, ["klaviyo", "ometria"], T0 + 5) == {"klaviyo": 4, "ometria": 0}
    redis_client.zrem(dirty_key("klaviyo"), "a@example.com")
    history.sample_backlog(redis_client, ["klaviyo", "ometria"], T0 + 50)   # same minute: the later reading
    history.sample_backlog(redis_client, ["klaviyo", "ometria"], T0 + 120)  # two minutes on
    hour = history.last_hour(redis_client, ["klaviyo", "ometria"], T0 + 150)
    assert hour["klaviyo"]["backlog"][-3:] == [3, None, 3]               # the minute between was not sampled
    assert hour["ometria"]["backlog"][-3:] == [0, None, 0]
    assert hour["klaviyo"]["backlog"][:-3] == [None] * 57


def test_freshness_percentiles_are_upper_bounds_the_figures_prove(redis_client) -> None:  # type: ignore[no-untyped-def]
    first, second = [0.4, 3.0, 4.5, 12.0, 40.0], [0.9, 1.5, 250.0, 2.2, 7.0, 7.5]
    history.record_freshness(redis_client, "ometria", first, T0 + 1)
    history.record_freshness(redis_client, "ometria", second, T0 + 2)       # two flushes in one minute
    history.record_freshness(redis_client, "ometria", [3000.0, 5000.0], T0 + 61)
    hour = history.last_hour(redis_client, ["ometria"], T0 + 90)["ometria"]
    figures = first + second
    assert hour["fresh_n"][-2:] == [len(figures), 2]
    assert hour["fresh_max"][-2] == max(figures)
    for q, name in ((0.5, "fresh_p50"), (0.95, "fresh_p95")):
        truth = nearest_rank(figures, q)
        bound = min([b for b in history.BOUNDS if b >= truth] + [max(figures)])
        assert truth <= hour[name][-2] <= bound, (q, truth, hour[name][-2])
    # past the last bound the maximum is the bound; below it, the bucket's bound
    assert hour["fresh_p95"][-1] == 5000.0 and hour["fresh_p50"][-1] == history.BOUNDS[-1] >= 3000.0
    whole = figures + [3000.0, 5000.0]
    assert hour["fresh_hour"]["n"] == len(whole) and hour["fresh_hour"]["max"] == 5000.0
    assert nearest_rank(whole, 0.5) <= hour["fresh_hour"]["p50"] <= 10


def test_calls_and_errors_come_by_minute(redis_client) -> None:  # type: ignore[no-untyped-def]
    pipe = redis_client.pipeline()
    for status, at in (("200", T0 - 30), ("200", T0 + 1), ("429", T0 + 2), ("error", T0 + 3), ("500", T0 - 3000)):
        recent.add_call(pipe, "splio", status, at)
    pipe.execute()
    hour = history.last_hour(redis_client, ["splio"], T0 + 10)["splio"]
    assert hour["calls"][-2:] == [1, 3] and hour["errors"][-2:] == [0, 2]
    assert hour["calls"][-51] == 1 and hour["errors"][-51] == 1       # 50 minutes earlier


def test_a_real_push_records_its_freshness_and_the_sweep_samples_the_backlog(hub_app) -> None:  # type: ignore[no-untyped-def]
    r = hub_app.extensions["redis"]
    before = time.time()
    assert hub_app.test_client().post("/v1/events", json={"events": story()}, headers=INGEST).status_code == 202
    with hub_app.app_context():
        waiting = r.zcard(dirty_key("klaviyo"))
        assert waiting > 0
        sync.sweep()                               # no worker runs here: the contacts still wait
        sampled = history.last_hour(r, ["klaviyo"], time.time())["klaviyo"]["backlog"]
        assert sampled[-1] == waiting or sampled[-2] == waiting   # the sample's minute may have just ended
        answer = sync.flush("klaviyo")
        after = time.time()
    assert answer["pushed"] == waiting
    hour = history.last_hour(r, ["klaviyo"], after)["klaviyo"]
    assert sum(hour["fresh_n"]) == waiting
    # each contact became dirty after `before` and landed before `after`
    assert 0 <= hour["fresh_hour"]["max"] <= after - before
    # aggregates only: no bucket names a person, in any field or value
    people = {e[part]["email"] for e in story() for part in ("referrer", "friend", "contact") if e.get(part)}
    for key in r.scan_iter(match=keys.HISTORY.format("*")):
        for name, value in r.hgetall(key).items():
            text = (name + b" " + value).decode()
            assert "@" not in text and not any(p.split("@")[0] in text for p in people), text


def test_a_contact_pushed_before_counts_its_freshness_from_its_last_outcome(redis_client) -> None:  # type: ignore[no-untyped-def]
    """A contact dirty again after a push is fresh from that push (kept with its fingerprint), or
    from a failed try after it, never from the start of a burst the push already covered."""
    import json

    redis_client.hset(keys.contact("a@x.test"), ":since", T0 - 10)
    redis_client.hset(keys.contact("b@x.test"), ":since", T0 - 10)
    assert history.dirty_since(redis_client, "klaviyo", ["a@x.test"]) == {"a@x.test": T0 - 10}
    for email in ("a@x.test", "b@x.test"):
        redis_client.hset(keys.contact(email), pushstate.field("klaviyo"), pushstate.entry("x", T0 - 4, {}, None))
    redis_client.hset(keys.LAST.format("klaviyo"), "b@x.test", json.dumps({"at": T0 - 2, "ok": False}))
    assert history.dirty_since(redis_client, "klaviyo", ["a@x.test", "b@x.test", "c@x.test"]) == \
        {"a@x.test": T0 - 4, "b@x.test": T0 - 2}

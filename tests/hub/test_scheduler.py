"""The hub's scheduler: RQ's CronScheduler under a lease, each run claimed once; the sweep it runs
first. Real Redis."""
from __future__ import annotations

import time

from rq import Queue
from rq.serializers import JSONSerializer

from hub.core import sync
from hub.jobs.scheduler import HubScheduler, Periodic, QUEUE, periodic_jobs


def queued(redis_client) -> list[str]:  # type: ignore[no-untyped-def]
    return [j.func_name for j in Queue(QUEUE, connection=redis_client, serializer=JSONSerializer).get_jobs()]


def test_the_sweep_is_a_periodic_job_of_the_configured_interval() -> None:
    assert Periodic("sweep", "hub.jobs.entry.sweep", interval_seconds=45, timeout=120) in periodic_jobs({"SWEEP_INTERVAL": 45})
    assert periodic_jobs({"SWEEP_INTERVAL": 0}) == []


def test_the_feeds_poll_follows_its_interval_and_zero_turns_it_off() -> None:
    feeds = {"SWEEP_INTERVAL": 0, "FEEDS_FILE": "feeds.json"}
    assert [(j.name, j.interval_seconds) for j in periodic_jobs({**feeds, "FEEDS_POLL_INTERVAL": 15})] == \
        [("feeds-poll", 15.0), ("feeds-exports", 60)]
    assert [j.name for j in periodic_jobs({**feeds, "FEEDS_POLL_INTERVAL": 0})] == ["feeds-exports"]
    assert [j.name for j in periodic_jobs({"SWEEP_INTERVAL": 0})] == []       # no feeds file: no feed jobs


def test_two_schedulers_enqueue_each_run_once(redis_client) -> None:  # type: ignore[no-untyped-def]
    jobs = periodic_jobs({"SWEEP_INTERVAL": 3600})
    first, second = HubScheduler(redis_client, jobs, 30), HubScheduler(redis_client, jobs, 30)
    first.register_birth()
    second.register_birth()
    assert [j.name for j in first.enqueue_jobs()] == [p.name for p in jobs]
    assert second.enqueue_jobs() == []                       # standing by: the lease is taken
    redis_client.delete("hub:lease:scheduler")               # the first stalls past its lease
    second.enqueue_jobs()                                    # leads now, but this run is claimed
    assert queued(redis_client) == [p.func for p in jobs]
    assert first.enqueue_jobs() == []                        # the old leader finds out it lost
    first.register_death()
    assert redis_client.exists("hub:lease:scheduler")        # only the holder lets go
    second.register_death()
    assert not redis_client.exists("hub:lease:scheduler")


def test_the_sweep_queues_a_flush_only_where_contacts_are_stranded(hub_app, redis_client) -> None:  # type: ignore[no-untyped-def]
    stale = time.time() - 120
    redis_client.zadd("hub:dirty:klaviyo", {"anna@example.com": stale})
    with hub_app.app_context():
        sync.pause("klaviyo", "maintenance")
        assert sync.sweep() == {}                            # paused: waits for resume
        redis_client.delete("hub:paused:klaviyo")
        holder = sync.flush_lease("klaviyo")
        assert holder.acquire()
        assert sync.sweep() == {}                            # a flush is at work
        holder.release()
        redis_client.set("hub:flushq:klaviyo", "1")          # a flag whose job was lost
        assert sync.sweep() == {"klaviyo": 1}
        assert sync.sweep() == {}                            # the flush it queued is pending
    assert Queue("sync-klaviyo", connection=redis_client, serializer=JSONSerializer).count == 1
    assert redis_client.hget("hub:m:sweeps", "klaviyo") == b"1"

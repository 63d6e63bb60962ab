"""`hub worker` stops its work horses: a TERM lets the flush in flight finish (warm), a second
TERM kills it (cold); either way no horse outlives the pool, and nothing is lost."""
from __future__ import annotations

import os
import signal

import pytest
from rq import Worker

from tests.e2e.stack import Stack, session_members
from tests.story import KLAVIYO, story

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


def matches(stack: Stack) -> bool:
    for email, want in KLAVIYO.items():
        held = stack.holds("klaviyo", email)
        if held is None or {k: held[k] for k in ("fields", "lists", "marketing_consent")} != want:
            return False
    return True


def in_flight(stack: Stack) -> None:
    """Post the story and return once a Klaviyo call is in flight (counted, held for the latency)."""
    before = stack.stats().get("klaviyo total", 0)
    assert stack.post(story(), f"story{before}").status_code == 202
    stack.wait_for(lambda: stack.stats().get("klaviyo total", 0) > before, what="a Klaviyo call in flight")


def test_term_finishes_the_flush_in_flight_then_exits(stack_factory) -> None:  # type: ignore[no-untyped-def]
    stack = stack_factory(latency=1.0)
    pool = stack.procs["worker"]
    in_flight(stack)
    os.kill(pool.pid, signal.SIGTERM)
    assert pool.wait(60) == 0
    assert session_members(pool.pid) == []          # no horse left behind
    assert matches(stack)                           # the flush in flight ran to the end


def warm_requested(redis_client) -> bool:  # type: ignore[no-untyped-def]
    return any(w.shutdown_requested_date for w in Worker.all(connection=redis_client)
               if "sync-klaviyo" in w.queue_names())


def test_a_second_term_kills_the_horse_and_a_restart_finishes_the_work(stack_factory, redis_client) -> None:  # type: ignore[no-untyped-def]
    stack = stack_factory(latency=1.0)
    pool = stack.procs["worker"]
    in_flight(stack)
    os.kill(pool.pid, signal.SIGTERM)
    # Sync point: the worker took the first TERM (RQ notes the warm shutdown in Redis); a second
    # signal sent before the pool handled the first would merge with it.
    stack.wait_for(lambda: warm_requested(redis_client), what="the warm shutdown to be under way")
    os.kill(pool.pid, signal.SIGTERM)
    pool.wait(60)
    assert session_members(pool.pid) == []
    # The flush needs several calls of a second each; the second TERM cut it after the first.
    assert not matches(stack), "the flush ran to the end: the second TERM did not stop it"
    stack.start_worker()
    stack.wait_for(lambda: matches(stack), timeout=90, what="the story to land after the restart")

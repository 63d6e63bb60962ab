"""The shared limiter on a real Redis: a minute's budget is paced (a tenth at once, then evenly
spaced) instead of spent in a burst followed by a wait of most of a minute; small budgets and
per-second limits keep the plain sliding window."""
from __future__ import annotations

from typing import Any

from connectors.ratelimit import RateLimiter, pacing


def test_pacing_of_a_minute_budget() -> None:
    spacing, tolerance = pacing(145, 60.0)
    assert spacing == 60.0 / (145 - 14) and tolerance == spacing * 13
    assert pacing(10, 1.0) == (0.0, 0.0)          # per-second limits are not paced
    assert pacing(60, 60.0) == (0.0, 0.0)         # nor budgets too small to spread


def test_a_paced_budget_waits_one_spacing_after_its_burst(redis_client: Any) -> None:
    limiter = RateLimiter(redis_client, "test:pace")
    limits = ((100, 60.0),)                        # 10 at once, then one every 60/90 s
    assert [limiter.acquire("bulk", limits) for _ in range(10)] == [0.0] * 10
    wait = limiter.acquire("bulk", limits)
    assert 0 < wait <= 60.0 / 90


def test_the_sliding_window_still_caps_an_unpaced_budget(redis_client: Any) -> None:
    limiter = RateLimiter(redis_client, "test:pace")
    limits = ((5, 60.0),)
    assert [limiter.acquire("gdpr", limits) for _ in range(5)] == [0.0] * 5
    assert 50 < limiter.acquire("gdpr", limits) <= 60


def test_a_refused_call_takes_no_slot_in_any_limit(redis_client: Any) -> None:
    """All or none: a call the minute's pacing refuses leaves the per-second window untouched."""
    limiter = RateLimiter(redis_client, "test:pace")
    limits = ((20, 1.0), (100, 60.0))
    for _ in range(10):
        assert limiter.acquire("both", limits) == 0
    assert limiter.acquire("both", limits) > 0
    assert redis_client.zcard("test:pace:both:20/1.0") == 10

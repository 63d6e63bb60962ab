"""`hub endpoints replay` as a real process: a progress line per step, and a Ctrl-C whose summary
names the time to continue from, so the second run queues only the rest. A step never splits the
messages accepted in the same millisecond, so the events are posted a request each: hundreds of
steps, and the stop (tests/hub/test_progress.py explains the one-page pipe) lands mid-work."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from hub.core.feed import TIMES
from tests.feed.conftest import create, post_story
from tests.hub.test_progress import Command, env_for, number, steps


def invitations(count: int) -> list[dict[str, Any]]:
    return [{"id": f"inv-{i}", "type": "referral.invited", "occurred_at": "2026-11-21T10:00:00Z",
             "referrer": {"email": f"ref{i:04d}@replay.example"}, "friend": {"email": f"friend{i:04d}@mail.example"}}
            for i in range(count)]


def test_replay_shows_progress_and_an_interrupted_replay_continues_from_the_time_it_names(
        client, receivers, driver, feed_app, redis_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    redis = feed_app.extensions["redis"]
    endpoint = create(client, receivers().url)
    events = invitations(600)
    for start in range(0, 600, 2):      # a request each: 300 distinct acceptance times, so 300 steps at least
        post_story(client, events[start:start + 2])
    driver.until(lambda: redis.zcard(TIMES) >= 1200, what="the messages built")
    total = redis.zcard(TIMES)
    env = env_for(redis_url, HUB_SECRET_KEY=feed_app.config["HUB"]["SECRET_KEY"])

    first = Command(["endpoints", "replay", endpoint["id"], "--since", "2000-01-01T00:00:00Z", "--batch", "2"],
                    env, tmp_path)
    first.steps_then_interrupt(5)
    code, stdout = first.finish()
    assert code == 130 and stdout == "", first.lines[-3:]
    match = re.match(r"replay: stopped; ([\d,]+) messages done, ([\d,]+) not done\. To queue the rest, replay again "
                     r"from (\S+) \(--since (\S+)\)$", first.lines[-1])
    assert match, first.lines[-3:]
    done, left, since = number(match.group(1)), number(match.group(2)), match.group(4)
    assert 5 <= done < total and done + left == total
    assert number(steps(first.lines)[-1].group("done")) == done

    second = subprocess.run([sys.executable, "-m", "hub", "endpoints", "replay", endpoint["id"], "--since", since,
                             "--batch", "100"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert json.loads(second.stdout)["queued"] == left, "the second run queues exactly the rest"
    progress = steps(second.stderr.splitlines())
    assert number(progress[-1].group("total")) == left and len(progress) >= 2

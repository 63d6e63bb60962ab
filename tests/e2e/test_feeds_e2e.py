"""A referral activity file of 100,000 rows over the sandbox's SFTP server, through two pollers,
the ledger and the workers, to all five platforms; bad rows in the report; a re-drop changes nothing."""
from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from hub.core.keys import PUSHED_FIELD
from hub.core.processes import free_port
from sandbox import sftp as sandbox_sftp
from tests.e2e.test_all_vendors_e2e import NUMBERS, connectors
from tests.feeds.data import Expected, activity, report
from tests.feeds.servers import client_key

pytestmark = pytest.mark.e2e
ROWS = 100_000
SAMPLE = 25


def feed_setup(tmp: Path) -> tuple[list[str], Path, dict[str, Any]]:
    """The sandbox's SFTP options, the served folder, and the feeds file's entry for it."""
    root, port = tmp / "sftp-root", free_port()
    (root / "inbound").mkdir(parents=True)
    host_key = sandbox_sftp.load_host_key(tmp / "sftp-host-key")
    key_path, public = client_key(tmp)
    (tmp / "authorized_keys").write_text(public + "\n")
    args = ["--sftp-port", str(port), "--sftp-root", str(root), "--sftp-host-key", str(tmp / "sftp-host-key"),
            "--sftp-authorized-keys", str(tmp / "authorized_keys")]
    server = {"host": "127.0.0.1", "port": port, "user": sandbox_sftp.USER, "key_file": str(key_path),
              "host_key": sandbox_sftp.public_line(host_key)}
    return args, root, {"name": "activity", "sftp": server, "folder": "/inbound", "mapping": "referral-activity"}


def poll_together(stack: Any, count: int = 2) -> list[dict[str, Any]]:
    """`hub feeds poll activity` in `count` processes at once; each one's JSON summary."""
    procs = [subprocess.Popen([sys.executable, "-m", "hub", "feeds", "poll", "activity"], env=stack.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(count)]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr.decode()[-2000:]
        out.append(json.loads(stdout))
    return out


def vendor_numbers(held: dict[str, Any] | None, vendor: str) -> list[Any] | None:
    if held is None:
        return None
    values = [held["fields"].get(f) for f in NUMBERS[vendor]]
    if any(v is None for v in values):
        return None
    return [int(values[0]), int(values[1]), int(values[2]), Decimal(str(values[3])).quantize(Decimal("0.01"))]


def want(expected: Expected, email: str) -> list[Any]:
    invites, registered, converted, turnover = expected.referrers[email]
    return [invites, registered, converted, turnover.quantize(Decimal("0.01"))]


def sample_lands(stack: Any, expected: Expected, sample: list[str]) -> bool:
    return all(vendor_numbers(stack.holds(vendor, email), vendor) == want(expected, email)
               for vendor in NUMBERS for email in sample)


def totals_land(stack: Any, expected: Expected) -> bool:
    """Every platform's sums over all referrers equal the file's."""
    wanted = [sum(want(expected, e)[i] for e in expected.referrers) for i in range(4)]
    for vendor in NUMBERS:
        held = requests.get(f"{stack.sandbox}/_sandbox/{vendor}/contacts", timeout=30).json()
        rows = [vendor_numbers(held.get(email), vendor) for email in expected.referrers]
        if any(row is None for row in rows):
            return False
        if [sum(row[i] for row in rows) for i in range(4)] != wanted:  # type: ignore[index]
            return False
    return True


@pytest.mark.timeout(600)
def test_a_large_activity_file_reaches_every_platform_exactly_once(stack_factory, redis_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    args, root, feed = feed_setup(tmp_path)
    feeds_file = tmp_path / "feeds.json"
    feeds_file.write_text(json.dumps({"feeds": [feed]}))
    inbound = root / "inbound"
    # 200 referrers with 4 friends each: enough people to spread the rows, few enough that the
    # platforms' sync is not what the test waits on
    expected = activity(inbound / "activity-1.csv", ROWS, referrers=200, friends_each=4)
    small = activity(inbound / "activity-2.csv", 2000, seed=99, referrers=50, prefix="other")
    # the test runs every poll itself: the scheduler's periodic poll is off, or it could take a file first
    stack = stack_factory(connectors=connectors(), env={"HUB_FEEDS_FILE": str(feeds_file), "HUB_FEEDS_POLL_INTERVAL": "0"},
                          sandbox_args=args)

    summaries = poll_together(stack)
    files = sorted((f["file"], f["outcome"]) for s in summaries for f in s["files"])
    assert files == [("activity-1.csv", "processed"), ("activity-2.csv", "processed")]   # each file once
    big = next(f for s in summaries for f in s["files"] if f["file"] == "activity-1.csv")
    assert (big["rows"], big["errors"]) == (ROWS, len(expected.bad))
    assert big["accepted"] + big["duplicates"] == expected.good

    merged = Expected(referrers={**expected.referrers, **small.referrers})      # disjoint people
    assert report(inbound / "processed" / "activity-1.csv.errors.csv") == {n: [c] for n, c in expected.bad.items()}

    sample = random.Random(3).sample(sorted(merged.referrers), SAMPLE)
    stack.wait_for(lambda: sample_lands(stack, merged, sample), timeout=300, what="the sample of referrers at all five platforms")
    stack.wait_for(lambda: totals_land(stack, merged), timeout=300, what="every platform's totals")

    # the same file again: skipped whole by its hash; the same rows in another order: all duplicates
    def ledger_state(email: str) -> dict[bytes, bytes]:
        """The contact's state as the ledger keeps it, without what the sync last pushed to each
        platform (`p:<connector>`: a late push may still land while the file is read again)."""
        pushed = PUSHED_FIELD.format("").encode()
        return {k: v for k, v in redis_client.hgetall(f"hub:c:{email}").items() if not k.startswith(pushed)}

    before = {email: ledger_state(email) for email in merged.referrers}
    (inbound / "processed" / "activity-1.csv").rename(inbound / "activity-1-again.csv")
    with open(inbound / "activity-1-again.csv", newline="") as handle:
        lines = list(csv.reader(handle))
    shuffled = [lines[0]] + random.Random(5).sample(lines[1:], 5000)
    with open(inbound / "activity-3.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(shuffled)
    again = {f["file"]: f for s in poll_together(stack) for f in s["files"]}
    assert again["activity-1-again.csv"]["outcome"] == "already_imported"
    assert again["activity-3.csv"]["accepted"] == 0
    assert {email: ledger_state(email) for email in merged.referrers} == before
    metrics = requests.get(f"{stack.hub}/metrics", timeout=10).text
    for what, value in (("rows", ROWS + 2000 + 5000), ("files_processed", 3), ("files_skipped", 1)):
        assert f'hub_feed_total{{feed="activity",what="{what}"}} {float(value)}' in metrics
    assert totals_land(stack, merged) and sample_lands(stack, merged, sample)


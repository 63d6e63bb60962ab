"""`hub feeds poll` and `hub feeds export` as real processes: a progress line per step on stderr
(not a terminal), the JSON summary alone on stdout."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from tests.feeds.conftest import activity_feed
from tests.feeds.data import activity
from tests.feeds.test_exports import export_spec
from tests.hub.test_progress import env_for, number, steps


def hub(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_a_large_import_and_an_export_of_every_referrer_report_their_progress(
        sandbox_sftp: Any, feeds_file: Callable[..., str], redis_client: Any, redis_url: str, tmp_path: Path) -> None:
    feed = activity_feed(sandbox_sftp, batch=100)
    path = feeds_file([feed], [export_spec(sandbox_sftp)])
    expected = activity(sandbox_sftp.root / "inbound" / "big.csv", 3000)
    size = (sandbox_sftp.root / "inbound" / "big.csv").stat().st_size
    env = env_for(redis_url, HUB_FEEDS_FILE=path)

    polled = hub(["feeds", "poll", "activity"], env, tmp_path)
    assert polled.returncode == 0, polled.stderr[-2000:]
    [summary] = json.loads(polled.stdout)["files"]
    assert summary["rows"] == 3000 and summary["errors"] == len(expected.bad)
    lines = polled.stderr.splitlines()
    assert lines[0] == f"import big.csv: {size:,} bytes to do"
    progress = steps(lines)
    assert 29 <= len(progress) <= 30, "a line per batch of 100 rows (rows refused while read fill no batch)"
    done = [number(m.group("done")) for m in progress]
    assert done == sorted(done) and done[-1] == size and number(progress[-1].group("total")) == size
    rows = [number(re.search(r", ([\d,]+) rows$", m.string).group(1)) for m in progress]
    assert rows == sorted(set(rows)) and rows[0] >= 100 and rows[-1] == 3000
    assert lines[-1].startswith(f"import big.csv: done, {size:,} bytes in ")

    referrers = redis_client.keys("hub:c:ref*@shop.example")
    exported = hub(["feeds", "export", "stats"], env, tmp_path)
    assert exported.returncode == 0, exported.stderr[-2000:]
    manifest = json.loads(exported.stdout)
    assert manifest["rows"] == len(referrers)
    progress = steps(exported.stderr.splitlines())
    contacts = number(progress[-1].group("total"))
    assert number(progress[-1].group("done")) == contacts and contacts > len(referrers)
    assert len(progress) == -(-contacts // 500), "a line per 500 contacts read"

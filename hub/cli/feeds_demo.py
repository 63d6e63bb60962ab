"""The demo's feed: a small referral activity file imported through the sandbox's SFTP server."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Mapping

from hub.core.processes import free_port

FILE = """referrer,friend,event_type,order_id,total,currency,date,friend_opt_in,promo_code
ben@example.com,fay@example.com,invited,,,,2026-11-21T11:00:00Z,,
ben@example.com,fay@example.com,registered,,,,2026-11-21T11:05:00Z,true,BEN-11
ben@example.com,fay@example.com,converted,ord_3,45.00,GBP,2026-11-21T11:30:00Z,,
ben@example.com,fay@example.com,converted,ord_3,45.00,GBP,2026-11-21T11:30:00Z,,
ben@example.com,gus@example,registered,,,,2026-11-21T11:40:00Z,false,
"""


def prepare(data: Path) -> tuple[list[str], dict[str, str]]:
    """The sandbox's SFTP options and the hub's environment for the demo feed (password login)."""
    from sandbox.sftp import PASSWORD, USER, load_host_key, public_line

    root, port = data / "sftp", free_port()
    (root / "inbound").mkdir(parents=True, exist_ok=True)
    (root / "inbound" / "activity-20261121.csv").write_text(FILE)
    key = load_host_key(data / "sftp-host-key")
    feeds = {"feeds": [{"name": "demo-activity", "folder": "/inbound", "pattern": "activity-*.csv",
                        "mapping": "referral-activity",
                        "sftp": {"host": "127.0.0.1", "port": port, "user": USER, "host_key": public_line(key),
                                 "password_env": "HUB_DEMO_SFTP_PASSWORD"}}]}
    (data / "feeds.json").write_text(json.dumps(feeds, indent=2))
    args = ["--sftp-port", str(port), "--sftp-root", str(root), "--sftp-host-key", str(data / "sftp-host-key")]
    return args, {"HUB_FEEDS_FILE": str(data / "feeds.json"), "HUB_DEMO_SFTP_PASSWORD": PASSWORD}


def run_import(env: Mapping[str, str], data: Path) -> None:
    """`hub feeds poll demo-activity`, and what it did."""
    done = subprocess.run([sys.executable, "-m", "hub", "feeds", "poll", "demo-activity"], env=dict(env),
                          capture_output=True, text=True, timeout=120)
    if done.returncode:
        print(f"\nFeed import failed: {done.stderr.strip()[-500:]}")
        return
    for summary in json.loads(done.stdout)["files"]:
        report = f" (report: {data / 'sftp' / summary['report'].lstrip('/')})" if summary.get("report") else ""
        print(f"\nImported {summary['file']} over SFTP: {summary['rows']} rows, {summary['accepted']} applied, "
              f"{summary['duplicates']} duplicate, {summary['errors']} bad{report}")

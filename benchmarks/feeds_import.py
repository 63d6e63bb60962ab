"""`python -m benchmarks.feeds_import --rows N`: import one referral activity file of N rows over
the sandbox's SFTP server, timed, with the poller's peak memory (`/usr/bin/time -v`).

The hub's Redis is HUB_REDIS_URL (its database is flushed first) with all five connectors enabled
and no worker running, so the figure is the import alone: SFTP, parsing, validation, the ledger.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from hub.core.processes import free_port, start, stop, wait_http
from sandbox import DEMO_SETTINGS
from sandbox.sftp import PASSWORD, USER, load_host_key, public_line

HEADER = "referrer,friend,event_type,order_id,total,currency,date,friend_opt_in,promo_code\r\n"


def write_file(path: Path, rows: int, referrers: int, seed: int = 1) -> None:
    """Registrations and conversions (one order each, some repeated), 1 row in 500 bad."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(HEADER)
        for n in range(rows):
            r = rng.randrange(referrers)
            friend = f"f{r}.{rng.randrange(50)}@mail.example"
            day = f"2026-11-{1 + n % 28:02d}T{n % 24:02d}:00:00Z"
            if n % 500 == 499:
                handle.write(f"r{r}@shop.example,{friend},converted,o{n},12;50,GBP,{day},,\r\n")
            elif n % 4 == 0:
                handle.write(f"r{r}@shop.example,{friend},registered,,,,{day},true,P{r}\r\n")
            else:
                handle.write(f"r{r}@shop.example,{friend},converted,o{n % (rows - rows // 20)},"
                             f"{rng.randrange(1000, 20000) / 100:.2f},GBP,{day},,\r\n")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.feeds_import", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--referrers", type=int, default=20_000)
    args = parser.parse_args()
    url = os.environ.get("HUB_REDIS_URL")
    if not url:
        sys.exit("set HUB_REDIS_URL to a Redis database this run may flush")
    redis.Redis.from_url(url).flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="feeds-bench-"))
    (tmp / "root" / "inbound").mkdir(parents=True)
    began = time.perf_counter()
    write_file(tmp / "root" / "inbound" / "activity.csv", args.rows, args.referrers)
    size = (tmp / "root" / "inbound" / "activity.csv").stat().st_size
    print(f"wrote {args.rows} rows ({size / 1e6:.1f} MB) in {time.perf_counter() - began:.1f} s")
    port, http = free_port(), free_port()
    feeds = {"feeds": [{"name": "bench", "folder": "/inbound", "mapping": "referral-activity",
                        "sftp": {"host": "127.0.0.1", "port": port, "user": USER, "password_env": "BENCH_SFTP_PASSWORD",
                                 "host_key": public_line(load_host_key(tmp / "host_key"))}}]}
    (tmp / "feeds.json").write_text(json.dumps(feeds))
    env = {**os.environ, "HUB_FEEDS_FILE": str(tmp / "feeds.json"), "BENCH_SFTP_PASSWORD": PASSWORD}
    for vendor, settings in DEMO_SETTINGS.items():
        env.update({f"HUB_{vendor.upper()}_{k.upper()}": v for k, v in settings.items()})
        env[f"HUB_{vendor.upper()}_BASE_URL"] = f"http://127.0.0.1:{http}/{vendor}"
    sandbox = start("sandbox", ["sandbox", "--port", str(http), "--sftp-port", str(port), "--sftp-root",
                                str(tmp / "root"), "--sftp-host-key", str(tmp / "host_key")], env, tmp)
    try:
        wait_http(f"http://127.0.0.1:{http}/_sandbox/stats")
        began = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "hub", "feeds", "poll", "bench"],
                              env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - began
    finally:
        stop([sandbox])
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    (summary,) = json.loads(done.stdout)["files"]
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))  # type: ignore[union-attr]
    print(json.dumps(summary, indent=2))
    print(f"{summary['rows']} rows in {seconds:.1f} s: {summary['rows'] / seconds:,.0f} rows/s; "
          f"peak memory (max RSS) {peak / 1024:.0f} MiB")


if __name__ == "__main__":
    main()

"""What durable ingest (HUB_INGEST_MIN_REPLICAS=1: Redis WAIT before each 202) costs.

A primary and a replica (redis-server processes on loopback, AOF everysec), the hub's app in this
process, and the benchmark workload posted in batches of 50, first with the setting off, then on
(fresh namespaces, so neither run sees the other's events as duplicates). Prints events/s and the
per-request latency (p50, p99) of each, and Redis's memory per contact at the end. `python -m benchmarks.durable_cost [referrers]`
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from hub import create_app
from hub.core.auth import sign

from .workload import build

SECRET = "whsec_YmVuY2htYXJrLXNlY3JldC1mb3ItcmVmZXJyYWwtc3luYy1odWI="


def run(referrers: int) -> dict[str, dict[str, float]]:
    """Also the primary's used_memory at the end, per contact held (events, dedupe keys and log included)."""
    from tests.e2e.stack import RedisSet

    out = {}
    redis_set = RedisSet(Path(tempfile.mkdtemp(prefix="rsh-durable-")))
    try:
        for label, replicas in (("off", "0"), ("on", "1")):
            app = create_app({"REDIS_URL": redis_set.url, "INGEST_SECRETS": SECRET, "INGEST_MIN_REPLICAS": replicas,
                              "KLAVIYO_API_KEY": "pk_bench", "DATA_DIR": tempfile.mkdtemp()})
            client = app.test_client()
            stream = build(referrers, ns=f"d{label}").stream
            took = []
            started = time.perf_counter()
            for i in range(0, len(stream), 50):
                body = json.dumps({"events": stream[i:i + 50]}).encode()
                stamp = str(int(time.time()))
                headers = {"webhook-id": f"b{i}", "webhook-timestamp": stamp, "content-type": "application/json",
                           "webhook-signature": sign(SECRET, f"b{i}", stamp, body)}
                t0 = time.perf_counter()
                answer = client.post("/v1/events", data=body, headers=headers)
                took.append(time.perf_counter() - t0)
                assert answer.status_code == 202, answer.get_data(as_text=True)
            elapsed = time.perf_counter() - started
            ordered = sorted(took)
            out[label] = {"events_per_s": round(len(stream) / elapsed), "p50_ms": round(statistics.median(took) * 1000, 2),
                          "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 2), "requests": len(took)}
        info = redis_set.primary().info("memory")
        people = 2 * len(build(referrers).emails)
        out["memory"] = {"used_memory_bytes": int(info["used_memory"]), "contacts": people,
                         "bytes_per_contact": round(int(info["used_memory"]) / people)}
    finally:
        redis_set.stop()
    return out


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 1000), indent=1))

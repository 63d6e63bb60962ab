"""Two hosts against one, on this machine: ingest throughput with one HTTP server and with two,
and the time to drain the backlog with one worker pool and with two (each pool with a folder of
its own). The servers, pools, sandbox (30 ms a call, published limits), a Redis primary with a
replica and three Sentinels, and the senders all share this machine's cores, so on a small box
the figures show contention, not scale. `python -m benchmarks.hosts [referrers]` (default 1000).

Each run: a fresh stack; every connector paused; the workload posted in batches of 50 by four
senders spread over the HTTP servers (events/s); then the connectors resumed and the time until
no contact is left to push (drain).
"""
from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from .workload import build

VENDORS = ("klaviyo", "emarsys", "salesforce", "ometria", "splio")


def one_run(referrers: int, hosts: int) -> dict[str, Any]:
    from sandbox import DEMO_SETTINGS
    from tests.conftest import signed_headers
    from tests.e2e.stack import RedisSet, Stack

    from hub.core.store import connect

    folder = Path(tempfile.mkdtemp(prefix=f"rsh-hosts{hosts}-"))
    redis_set = RedisSet(folder / "redis")
    stack = None
    try:
        connectors = {v: {k.upper(): s for k, s in DEMO_SETTINGS[v].items()} for v in VENDORS}
        stack = Stack(redis_set.url, folder, connectors=connectors, latency=0.03,
                      env={"HUB_INGEST_MIN_REPLICAS": "0", "HUB_LOG_LEVEL": "WARNING"})
        hubs = [stack.hub] + [stack.start_hub(f"hub-{n}") for n in range(1, hosts)]
        for n in range(1, hosts):
            stack.start_worker(f"worker-{n}", folder=folder / f"host-{n}")
        for vendor in VENDORS:
            assert stack.api("POST", f"/v1/connectors/{vendor}/pause", {"reason": "benchmark"}, token="ops-token").ok
        stream = build(referrers, ns=f"h{hosts}").stream
        batches = [stream[i:i + 50] for i in range(0, len(stream), 50)]

        def send(k: int) -> None:
            session = requests.Session()
            for i, batch in enumerate(batches[k::4]):
                body = json.dumps({"events": batch}).encode()
                answer = session.post(f"{hubs[k % hosts]}/v1/events", data=body, timeout=30,
                                      headers=signed_headers(body, msg_id=f"s{k}-{i}"))
                assert answer.status_code == 202, answer.text

        started = time.perf_counter()
        threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ingest = time.perf_counter() - started
        client = connect(redis_set.url)
        started = time.perf_counter()
        for vendor in VENDORS:
            assert stack.api("POST", f"/v1/connectors/{vendor}/resume", token="ops-token").ok
        stack.wait_for(lambda: not any(client.zcard(f"hub:dirty:{v}") for v in VENDORS), timeout=900,
                       what="the backlog to drain")
        drain = time.perf_counter() - started
        return {"hosts": hosts, "events": len(stream), "ingest_events_per_s": round(len(stream) / ingest),
                "drain_s": round(drain, 1), "contacts_per_vendor": len(build(referrers, ns="x").emails)}
    finally:
        if stack:
            stack.stop()
        redis_set.stop()


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    print(json.dumps([one_run(count, 1), one_run(count, 2)], indent=1))

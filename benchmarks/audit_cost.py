"""What one anti-entropy audit costs per vendor: vendor calls, contacts compared, and whether it
had to stop, for 100 pushed contacts, at the default rate share and at the whole limit.

    HUB_REDIS_URL=redis://127.0.0.1:6379/<N> python -m benchmarks.audit_cost

Runs the sandbox in this process over real HTTP and FLUSHES the given Redis database.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import redis
import requests
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from werkzeug.serving import WSGIRequestHandler, make_server

CONTACTS = 100
VENDORS = ("klaviyo", "emarsys", "salesforce", "splio")


class Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def stack(url: str) -> tuple[Any, str]:
    """The hub app with every vendor against a sandbox served from a thread."""
    from hub import create_app
    from sandbox import DEMO_SETTINGS, create_sandbox

    server = make_server("127.0.0.1", 0, create_sandbox(), threaded=True, request_handler=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sandbox = f"http://127.0.0.1:{server.server_port}"
    config: dict[str, Any] = {"REDIS_URL": url, "FLUSH_WINDOW": 0, "INGEST_TOKENS": "bench"}
    for vendor, settings in DEMO_SETTINGS.items():
        config[f"{vendor.upper()}_BASE_URL"] = f"{sandbox}/{vendor}"
        config.update({f"{vendor.upper()}_{k.upper()}": v for k, v in settings.items()})
    return create_app(config), sandbox


def main() -> None:
    from hub.core import audit
    from hub.core.queue import get_queues

    url = os.environ["HUB_REDIS_URL"]
    r = redis.Redis.from_url(url)
    r.flushdb()
    logging.disable(logging.CRITICAL)
    app, sandbox = stack(url)
    events = [{"id": f"e{i}", "type": "referral.invited", "occurred_at": "2026-11-21T10:00:00Z",
               "referrer": {"email": f"ref{i}@example.com", "first_name": "R", "referrer_id": f"r{i}"}}
              for i in range(CONTACTS)]
    answer = app.test_client().post("/v1/events", json={"events": events}, headers={"Authorization": "Bearer bench"})
    assert answer.status_code == 202, answer.json
    with app.app_context():
        for name in get_queues().connectors:
            SimpleWorker([get_queues().get(name)], connection=r, serializer=JSONSerializer).work(burst=True)
        print(f"{'share':>5}  {'vendor':<10}  {'checked':>7}  {'calls':>5}  {'seconds':>7}  stopped")
        for share in (float(app.config["HUB"]["AUDIT_SHARE"]), 1.0):
            app.config["HUB"]["AUDIT_SHARE"] = share
            for vendor in VENDORS:
                r.delete(*r.keys("hub:rl:*"), "hub:rl:none")    # each vendor starts with a fresh budget
                before = requests.get(f"{sandbox}/_sandbox/stats", timeout=5).json().get(f"{vendor} total", 0)
                started = time.perf_counter()
                report = audit.audit(vendor, CONTACTS)
                seconds = time.perf_counter() - started
                calls = requests.get(f"{sandbox}/_sandbox/stats", timeout=5).json().get(f"{vendor} total", 0) - before
                print(f"{share:>5}  {vendor:<10}  {report['checked']:>7}  {calls:>5}  {seconds:>7.2f}  "
                      f"{report['stopped'] or '-'}")


if __name__ == "__main__":
    main()

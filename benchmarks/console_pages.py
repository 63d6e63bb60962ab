"""Server time of the console's pages with many failed syncs and many contacts in Redis.

    HUB_REDIS_URL=redis://127.0.0.1:6379/<N> python -m benchmarks.console_pages \\
        [--contacts 100000] [--failed 10000] [--repeat 20]

Fills the given Redis database (it FLUSHES it first) through the hub's own paths: contacts by
events through the ledger (which also keeps the contact index and timelines), failed syncs filed
as the sync files them (RQ failed jobs), spread over two connectors and three error classes.
Then it times each page in this process (the Flask app, no network): median and 95th percentile
over --repeat loads, plus the first failed-syncs load, which brings the index up to date with
every failure filed since it last looked.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import time
from typing import Any

import redis

BATCH = 500


def app_for(url: str) -> Any:
    from hub import create_app

    config = {"REDIS_URL": url, "FLUSH_WINDOW": 0, "INGEST_TOKENS": "bench", "OPS_TOKENS": "bench-ops",
              "ADMIN_TOKENS": "bench-admin", "ERASURE_KEY": "console-benchmark-key-0123456789",
              "KLAVIYO_API_KEY": "pk_bench", "KLAVIYO_BASE_URL": "http://127.0.0.1:9/klaviyo",
              "OMETRIA_API_KEY": "om_bench", "OMETRIA_BASE_URL": "http://127.0.0.1:9/ometria"}
    app = create_app(config)
    logging.getLogger("hub").setLevel(logging.ERROR)
    app.logger.setLevel(logging.ERROR)
    return app


def fill_contacts(app: Any, count: int) -> float:
    from hub.core.ledger import get_ledger
    from hub.core.schemas import load_events

    started = time.perf_counter()
    with app.app_context():
        connectors = app.extensions["queues"].connectors
        for start in range(0, count, BATCH):
            raw = [{"id": f"bench-{n}", "type": "referrer.enrolled", "occurred_at": "2026-11-20T10:00:00Z",
                    "referrer": {"email": f"person{n}@example.com", "first_name": "P"}}
                   for n in range(start, min(start + BATCH, count))]
            events, errors = load_events(raw)
            assert not errors, errors[:1]
            get_ledger().apply_each(events, connectors, "bench")
    return time.perf_counter() - started


def fill_failed(app: Any, count: int, threads: int = 8) -> float:
    """File `count` failed syncs through hub.core.sync.record_failure, from several threads (each
    filing is a dozen Redis round trips; the threads only overlap the waiting)."""
    from concurrent.futures import ThreadPoolExecutor

    from connectors.errors import AuthError, FatalVendorError, RetriableVendorError
    from hub.core import sync

    kinds = [("klaviyo", lambda: FatalVendorError("email is invalid", status=400, code="invalid")),
             ("klaviyo", lambda: RetriableVendorError("server error", status=503)),
             ("ometria", lambda: FatalVendorError("no such list", status=422, code="unknown_list")),
             ("ometria", lambda: AuthError("bad key", status=401, code="unauthorized"))]

    def file(part: range) -> None:
        with app.app_context():
            for n in part:
                connector, error = kinds[n % len(kinds)]
                sync.record_failure(connector, [f"person{n % 100_000}@example.com"], error())

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(file, [range(i, count, threads) for i in range(threads)]))
    return time.perf_counter() - started


def signed_in(app: Any) -> Any:
    client = app.test_client()
    page = client.get("/console/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert client.post("/console/sign-in", data={"token": "bench-ops", "csrf": csrf}).status_code == 302
    return client


def timed(client: Any, path: str, repeat: int) -> dict[str, Any]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    times.sort()
    return {"page": path, "median_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 1), "bytes": len(answer.data)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.console_pages", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--failed", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    url = os.environ.get("HUB_REDIS_URL")
    if not url:
        raise SystemExit("set HUB_REDIS_URL to a database this benchmark may flush")
    redis.Redis.from_url(url).flushdb()
    app = app_for(url)
    fill = {"contacts_s": round(fill_contacts(app, args.contacts), 1), "failed_s": round(fill_failed(app, args.failed), 1)}
    client = signed_in(app)
    started = time.perf_counter()
    assert client.get("/console/failed").status_code == 200
    first = round((time.perf_counter() - started) * 1000, 1)
    pages = [timed(client, path, args.repeat) for path in (
        "/console/overview", "/console/failed", "/console/failed?connector=ometria&class=configuration",
        "/console/failed?code=503&offset=1000", "/console/contacts/person7@example.com",
        "/console/contacts?offset=50000", "/console/webhooks")]
    r = redis.Redis.from_url(url)
    result = {"contacts": int(r.zcard("hub:contacts")), "failed_syncs": args.failed, "fill": fill,
              "first_failed_page_ms (index catch-up)": first, "pages": pages, "repeat": args.repeat}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""`hub serve` and `hub worker` as separate services on the data folder's embedded Redis:
restarting one never disturbs the other, and neither stops the server when it exits."""
from __future__ import annotations

import json
import os
from pathlib import Path

import requests

from hub.core import processes
from hub.core.store import Embedded
from tests.conftest import INGEST_SECRET, ROOT, signed_headers


def post(hub: str, n: int) -> requests.Response:
    event = {"id": f"evt_svc_{n}", "type": "referrer.enrolled", "occurred_at": "2026-11-21T10:00:00Z",
             "referrer": {"email": f"svc{n}@example.com", "first_name": f"Svc{n}"}}
    body = json.dumps(event).encode()
    return requests.post(f"{hub}/v1/events", data=body, headers=signed_headers(body, msg_id=f"m{n}"), timeout=10)


def test_serve_and_worker_restart_independently(tmp_path: Path, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    data = Embedded.of(tmp_path / "var")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update({"HUB_ENV_FILE": "none", "HUB_DATA_DIR": str(data.data_dir), "HUB_INGEST_SECRETS": INGEST_SECRET,
                "HUB_FLUSH_WINDOW": "0.1", "HUB_KLAVIYO_API_KEY": "pk_sandbox_demo",
                "HUB_KLAVIYO_BASE_URL": f"{sandbox_server.url}/klaviyo", "PYTHONPATH": str(ROOT)})
    port = processes.free_port()
    hub = f"http://127.0.0.1:{port}"
    procs = {}

    def start(name: str, *args: str) -> None:
        procs[name] = processes.start(f"{name}-{len(procs)}", args, env, tmp_path, cwd=tmp_path)

    def landed(n: int) -> bool:
        answer = requests.get(f"{sandbox_server.url}/_sandbox/klaviyo/contacts/svc{n}@example.com", timeout=5)
        return answer.ok

    def wait(check, what: str) -> None:  # type: ignore[no-untyped-def]
        import time
        deadline = time.monotonic() + 120
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}; logs in {tmp_path}"
            time.sleep(0.2)

    try:
        start("serve", "serve", "--port", str(port), "--workers", "1")
        start("worker", "worker")
        processes.wait_http(f"{hub}/readyz", 120)
        assert post(hub, 1).status_code == 202
        wait(lambda: landed(1), "the first event at Klaviyo")

        # Restart serve: the worker and the Redis carry on.
        worker_pid = procs["worker"].pid
        processes.stop([procs.pop("serve")])
        assert data.running() and procs["worker"].poll() is None
        start("serve", "serve", "--port", str(port), "--workers", "1")
        processes.wait_http(f"{hub}/readyz", 120)
        assert post(hub, 2).status_code == 202
        wait(lambda: landed(2), "an event after the serve restart")
        assert procs["worker"].pid == worker_pid and procs["worker"].poll() is None

        # Restart the worker: serve stays ready and keeps accepting; nothing is lost.
        processes.stop([procs.pop("worker")])
        assert data.running()
        assert requests.get(f"{hub}/readyz", timeout=5).status_code == 200
        assert post(hub, 3).status_code == 202
        start("worker", "worker")
        assert requests.get(f"{hub}/readyz", timeout=5).status_code == 200
        wait(lambda: landed(3), "the event sent while no worker ran")

        # Neither stops the server on exit: it belongs to the folder until `hub redis stop`.
        processes.stop(procs.values())
        assert data.running()
    finally:
        processes.stop(procs.values())
        data.stop()

"""The single-event baseline (benchmarks/bare.py) as the benchmark runs it: a real gunicorn process
started through the hub's own runner, answering 202 to the benchmark's signed requests."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import requests

from benchmarks.runner import ROOT, Sender
from hub.core import processes
from hub.core.processes import free_port


def test_the_bare_endpoint_reads_the_body_and_answers_202_on_the_hubs_server_settings(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "bare.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bare", "--port", str(port), "--workers", "2",
                                 "--threads", "3"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        sender = Sender(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while True:
            try:
                took = sender.post({"id": "evt_1", "type": "referral.invited"})   # raises unless 202
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert took > 0
        big = requests.post(f"http://127.0.0.1:{port}/v1/events", data=b"x" * 200_000, timeout=10)
        assert big.status_code == 202 and big.json() == {}
        assert requests.get(f"http://127.0.0.1:{port}/v1/events", timeout=10).status_code == 405
        # gunicorn was started by hub.cli.Gunicorn.run, the function `hub serve` uses, with these settings
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        listening = next(line for line in lines if line.get("msg") == "listening")
        assert (listening["workers"], listening["threads"]) == (2, 3)
        assert listening["url"] == f"http://127.0.0.1:{port}"
    finally:
        processes.stop([proc])
    assert proc.returncode is not None

"""The README's quick start pasted into a shell as written, then the worker stopped and restarted.

The folder it runs in looks like a fresh clone to the hub (no .env, no var/): `dev` is a link to
the project's, which uses the project's virtualenv and leaves every path to the caller's folder.
The shell has no HUB_ variable, and the embedded Redis is the one the quick start starts.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

from hub.core.store import Embedded, alive
from tests.conftest import ROOT
from tests.docs import sh_blocks

VENDORS = ("klaviyo", "emarsys", "salesforce", "ometria", "splio")


def shell_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HUB_") and k != "REFERRAL_HUB_HOME"}


def dotenv(folder: Path) -> dict[str, str]:
    lines = (folder / ".env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def wait_for(check: Callable[[], Any], what: str, logs: Path, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; log:\n{logs.read_text()[-3000:]}")


def logged(log: Path, pattern: str) -> Callable[[], re.Match[str] | None]:
    return lambda: re.search(pattern, log.read_text()) if log.exists() else None


def held_everywhere(sandbox: str, email: str) -> bool:
    for vendor in VENDORS:
        answer = requests.get(f"{sandbox}/_sandbox/{vendor}/contacts/{email}", timeout=5)
        if not answer.ok or answer.json()["deleted"]:
            return False
    return True


def ready(hub: str) -> int:
    try:
        return requests.get(f"{hub}/readyz", timeout=5).status_code
    except requests.RequestException:
        return 0


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
def test_the_quick_start_as_written_survives_a_worker_restart(tmp_path: Path) -> None:
    [block] = sh_blocks("README.md", "## Quick start")
    (tmp_path / "dev").symlink_to(ROOT / "dev")
    env = shell_env()
    up_pid, worker = 0, None
    try:
        done = subprocess.run(["bash", "-eo", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)
        log = tmp_path / "hub.log"
        up_pid = int(wait_for(logged(log, r"hub up \(pid (\d+)\)"), "hub up's pid", log).group(1))
        assert done.returncode == 0, done.stdout + done.stderr + log.read_text()[-3000:]

        # It accepted a signed event, and the person is at all five vendors in the sandbox.
        assert re.search(r"^202 \{\"accepted\":1,\"duplicates\":0\}$", done.stdout, re.M), done.stdout
        assert "synced to every enabled connector: anna@example.com, cleo@example.com" in done.stdout
        settings = dotenv(tmp_path)
        hub, sandbox = settings["HUB_URL"], settings["HUB_SANDBOX_URL"]
        for vendor in VENDORS:
            held = requests.get(f"{sandbox}/_sandbox/{vendor}/contacts/cleo@example.com", timeout=5).json()
            assert held["marketing_consent"] is True, vendor
            assert re.search(rf"^  {vendor} +marketing consent opted in", done.stdout, re.M), vendor
        shown = json.loads(done.stdout[done.stdout.index("{\n"):])           # hub contacts show, printed last
        assert shown["email"] == "anna@example.com" and shown["state"]["friends_registered"] == 1
        assert set(shown["connectors"]) == set(VENDORS)

        # SIGTERM to the worker pool: the hub stays ready and keeps accepting events.
        worker_pid = int(logged(log, r"worker started \(pid (\d+)\)")().group(1))  # type: ignore[union-attr]
        os.kill(worker_pid, signal.SIGTERM)
        wait_for(logged(log, r"worker exited with"), "hub up to see the worker go", log)
        assert ready(hub) == 200
        event = {"id": "evt_qs_2", "type": "friend.registered", "occurred_at": "2026-11-21T10:05:00Z",
                 "referrer": {"email": "anna@example.com"},
                 "friend": {"email": "dan@example.com", "first_name": "Dan", "marketing_opt_in": True}}
        sent = subprocess.run(["./dev", "hub", "send", "-"], cwd=tmp_path, env=env, input=json.dumps(event),
                              capture_output=True, text=True, timeout=120)
        assert sent.stdout.startswith("202 "), sent.stdout + sent.stderr
        assert not held_everywhere(sandbox, "dan@example.com")            # nothing syncs without a worker

        # A new worker joins the same embedded Redis; nothing that was accepted is lost.
        worker_log = tmp_path / "worker.log"
        with open(worker_log, "w") as out:
            worker = subprocess.Popen(["./dev", "hub", "worker"], cwd=tmp_path, env=env, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        assert ready(hub) == 200
        wait_for(lambda: held_everywhere(sandbox, "dan@example.com"), "Dan at all five vendors", worker_log)
        assert ready(hub) == 200
        anna = requests.get(f"{hub}/v1/contacts/anna@example.com",
                            headers={"Authorization": f"Bearer {settings['HUB_OPS_TOKENS']}"}, timeout=5).json()
        assert anna["state"]["friends_registered"] == 2
        wait_for(lambda: all(requests.get(f"{sandbox}/_sandbox/{v}/contacts/anna@example.com", timeout=5).ok
                             for v in VENDORS), "Anna at all five vendors", worker_log)

        # Stopping: the worker, then hub up, which stops the Redis it started once nobody uses it.
        os.killpg(worker.pid, signal.SIGTERM)
        assert worker.wait(120) == 0, worker_log.read_text()[-3000:]
        os.kill(up_pid, signal.SIGTERM)
        wait_for(lambda: not alive(up_pid) or None, "hub up to stop", log)
        assert "embedded Redis stopped" in log.read_text()
        assert not Embedded.of(tmp_path / "var").running()
    finally:
        stop_all(up_pid, worker)
        Embedded.of(tmp_path / "var").stop()


def stop_all(up_pid: int, worker: subprocess.Popen[bytes] | None) -> None:
    """Whatever a failed run left: the worker's group, then hub up (which stops what it started)."""
    if worker is not None and worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(30)
    if up_pid and alive(up_pid):
        os.kill(up_pid, signal.SIGTERM)
        deadline = time.monotonic() + 120
        while alive(up_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive(up_pid):
            os.kill(up_pid, signal.SIGKILL)

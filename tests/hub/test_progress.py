"""Long commands as real processes against the test Redis: their progress lines when stderr is not
a terminal, a Ctrl-C (SIGINT) at a known point that stops cleanly and says what was done, and a
second run that does the rest and nothing twice.

Synchronisation, not timing: the command's stderr is a pipe of one page (4 KiB). A command writes a
line per step and blocks once the pipe is full, so after the test has read N lines the command
cannot be more than a page of lines ahead. With several hundred steps the SIGINT always lands
mid-work, whatever the machine's speed.
"""
from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any, Iterator

import pytest
from rq import Queue, SimpleWorker
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from tests.conftest import ROOT

CONTACTS = 3000
STEP = re.compile(r"^(?P<label>[\w .-]+): (?P<done>[\d,]+)/(?P<total>[\d,]+) (?P<unit>[a-z ]+) \((?P<pct>\d+)%\), "
                  r"(?P<rate>[\d,]+)/s")


def env_for(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_") and k != "REFERRAL_HUB_HOME"}
    return {**env, "PYTHONPATH": str(ROOT), "HUB_ENV_FILE": "none", "HUB_REDIS_URL": redis_url,
            "HUB_SPLIO_API_KEY": "splio_sandbox_demo", "HUB_SPLIO_BASE_URL": "http://127.0.0.1:9/splio", **extra}


class Command:
    """`python -m hub ARGS` with stderr on a one-page pipe, read a line at a time."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        read_end, write_end = os.pipe()
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
        self.process = subprocess.Popen([sys.executable, "-m", "hub", *args], env=env, cwd=cwd, stderr=write_end,
                                        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        os.close(write_end)
        self.stderr = os.fdopen(read_end, "r")
        self.lines: list[str] = []

    def read_lines(self) -> Iterator[str]:
        for line in self.stderr:
            self.lines.append(line.rstrip("\n"))
            yield self.lines[-1]

    def steps_then_interrupt(self, steps: int) -> None:
        """Read until the `steps`-th progress line, then send SIGINT."""
        seen = 0
        for line in self.read_lines():
            if STEP.match(line):
                seen += 1
                if seen == steps:
                    self.process.send_signal(signal.SIGINT)
                    return
        raise AssertionError(f"the command ended before {steps} progress lines: {self.lines}")

    def finish(self) -> tuple[int, str]:
        for _ in self.read_lines():
            pass
        self.stderr.close()
        stdout = self.process.stdout.read() if self.process.stdout else ""
        if self.process.stdout:
            self.process.stdout.close()
        return self.process.wait(timeout=120), stdout


def steps(lines: list[str]) -> list[re.Match[str]]:
    return [m for m in map(STEP.match, lines) if m]


def number(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.fixture
def app(make_app):  # type: ignore[no-untyped-def]
    return make_app(SPLIO_API_KEY="splio_sandbox_demo", SPLIO_BASE_URL="http://127.0.0.1:9/splio")


def enrol(app: Any, count: int) -> list[str]:
    """`count` referrers through the event API; their pending syncs cleared, as after a drain."""
    emails = [f"ref{i:05d}@progress.example" for i in range(count)]
    client = app.test_client()
    for start in range(0, count, 500):
        events = [{"id": f"enrol-{e}", "type": "referrer.enrolled", "occurred_at": "2026-11-21T10:00:00Z",
                   "referrer": {"email": e}} for e in emails[start:start + 500]]
        answer = client.post("/v1/events", json={"events": events}, headers={"Authorization": "Bearer ingest-token"})
        assert answer.status_code == 202, answer.json
    app.extensions["redis"].delete("hub:dirty:splio")
    return emails


def versions(redis: Any, emails: list[str]) -> dict[str, int]:
    return {e: int(v or 0) for e, v in zip(emails, redis.hmget("hub:ver", emails))}


def test_resync_all_shows_progress_stops_on_ctrl_c_and_a_second_run_does_only_the_rest(
        app, redis_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    redis = app.extensions["redis"]
    emails = enrol(app, CONTACTS)
    before = versions(redis, emails)
    env = env_for(redis_url)

    first = Command(["contacts", "resync", "--all", "--batch", "10"], env, tmp_path)
    first.steps_then_interrupt(5)
    code, stdout = first.finish()
    assert code == 130, first.lines
    assert "Traceback" not in "\n".join(first.lines)
    assert first.lines[0] == f"resync: {CONTACTS:,} contacts to do"
    summary = first.lines[-1]
    match = re.match(r"resync: stopped; ([\d,]+) contacts done, ([\d,]+) not done\. Run the same command again", summary)
    assert match, first.lines[-3:]
    done, left = number(match.group(1)), number(match.group(2))
    assert 0 < done < CONTACTS and done + left == CONTACTS
    assert steps(first.lines)[-1].group("done") == match.group(1), "the summary agrees with the last step"
    assert redis.zcard("hub:dirty:splio") == done, "exactly the contacts reported done are marked"
    assert stdout == ""

    second = subprocess.run([sys.executable, "-m", "hub", "contacts", "resync", "--all", "--batch", "10"], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    lines = second.stderr.splitlines()
    assert number(steps(lines)[0].group("done")) > done, "the second run starts where the first stopped"
    assert lines[-1].startswith(f"resync: done, {CONTACTS:,} contacts")
    assert f"{CONTACTS} contacts marked for re-sync on splio" in second.stdout
    assert redis.zcard("hub:dirty:splio") == CONTACTS
    after = versions(redis, emails)
    assert all(after[e] == before[e] + 1 for e in emails), "every contact re-synced once, none twice"


def fail_jobs(app: Any, count: int) -> Queue:
    """`count` jobs that really failed on the splio queue (a worker ran them; they raised)."""
    from hub.core.queue import get_queues

    with app.app_context():
        queue = get_queues().get("splio")
    for i in range(count):
        queue.enqueue("json.loads", f"not json {i}", result_ttl=60, failure_ttl=3600)
    SimpleWorker([queue], connection=app.extensions["redis"], serializer=JSONSerializer).work(burst=True)
    assert FailedJobRegistry(queue=queue).count == count
    return queue


def test_failed_retry_shows_progress_and_an_interrupted_run_is_finished_by_the_next(
        app, redis_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    total = 300
    queue = fail_jobs(app, total)
    registry = FailedJobRegistry(queue=queue)
    env = env_for(redis_url)

    first = Command(["failed", "retry", "--all", "--batch", "1"], env, tmp_path)
    first.steps_then_interrupt(5)
    code, stdout = first.finish()
    assert code == 130, first.lines
    match = re.match(r"retry: stopped; ([\d,]+) failed syncs done, ([\d,]+) not done\. Run the same command again",
                     first.lines[-1])
    assert match, first.lines[-3:]
    done = number(match.group(1))
    assert 5 <= done < total and done + number(match.group(2)) == total
    assert registry.count == total - done and queue.count == done, "retried exactly the ones reported"
    assert "retried" not in stdout

    second = subprocess.run([sys.executable, "-m", "hub", "failed", "retry", "--all", "--batch", "50"], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.startswith(f"retried {total - done} failed sync(s)")
    progress = steps(second.stderr.splitlines())
    assert [number(m.group("done")) for m in progress][-1] == total - done
    assert len(progress) == -(-(total - done) // 50), "a line per step of 50"
    assert registry.count == 0 and queue.count == total


def test_the_plain_line_has_done_total_rate_and_time_left() -> None:
    from hub.core.progress import Lines, Progress

    now = [0.0]
    out: list[str] = []
    sink = Lines()
    sink.write = out.append  # type: ignore[method-assign]
    progress = Progress("export stats", None, "contacts", [sink], clock=lambda: now[0])
    progress.start(1000)
    now[0] = 2.0
    progress.step(250)
    now[0] = 4.0
    progress.step(250, note="2 files")
    assert out == ["export stats: 1,000 contacts to do",
                   "export stats: 250/1,000 contacts (25%), 125/s, ~6s left",
                   "export stats: 500/1,000 contacts (50%), 125/s, ~4s left, 2 files"]


# -- the same work over the API: POST /v1/jobs, GET /v1/jobs/<id> ------------------------------

OPS = {"Authorization": "Bearer ops-token"}


def run_periodic(app: Any) -> None:
    """What the worker pool's periodic worker does with the queued job, here in this process."""
    with app.app_context():
        queue = Queue("hub-periodic", connection=app.extensions["redis"], serializer=JSONSerializer)
        SimpleWorker([queue], connection=app.extensions["redis"], serializer=JSONSerializer).work(burst=True)


def test_a_resync_job_started_over_the_api_reports_done_of_total(app) -> None:  # type: ignore[no-untyped-def]
    redis = app.extensions["redis"]
    emails = enrol(app, 1200)
    client = app.test_client()
    started = client.post("/v1/jobs", json={"kind": "resync"}, headers=OPS)
    assert started.status_code == 202, started.json
    job = started.json
    assert started.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert (job["kind"], job["state"], job["done"], job["total"]) == ("resync", "queued", 0, None)
    assert redis.ttl(f"hub:job:{job['id']}") > 0, "the record expires"
    run_periodic(app)
    seen = client.get(f"/v1/jobs/{job['id']}", headers=OPS).json
    assert (seen["state"], seen["done"], seen["total"], seen["unit"]) == ("done", 1200, 1200, "contacts")
    assert seen["result"]["contacts"] == 1200 and seen["finished_at"]
    assert redis.zcard("hub:dirty:splio") == len(emails)
    assert [j["id"] for j in client.get("/v1/jobs", headers=OPS).json["jobs"]] == [job["id"]]


def test_a_cancelled_job_stops_and_a_retry_job_counts_what_it_requeued(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    enrol(app, 50)
    job = client.post("/v1/jobs", json={"kind": "resync"}, headers=OPS).json
    cancel = client.post(f"/v1/jobs/{job['id']}/cancel", headers=OPS)
    assert cancel.status_code == 202 and cancel.json["cancel_requested"] is True
    run_periodic(app)
    seen = client.get(f"/v1/jobs/{job['id']}", headers=OPS).json
    assert (seen["state"], seen["done"]) == ("cancelled", 0)
    assert app.extensions["redis"].zcard("hub:dirty:splio") == 0, "a job cancelled before it ran did nothing"

    queue = fail_jobs(app, 30)
    retry = client.post("/v1/jobs", json={"kind": "failed_retry", "connector": "splio"}, headers=OPS).json
    assert (retry["state"], retry["total"]) == ("queued", None)
    run_periodic(app)
    seen = client.get(f"/v1/jobs/{retry['id']}", headers=OPS).json
    assert (seen["state"], seen["done"], seen["total"], seen["result"]) == ("done", 30, 30, {"retried": 30})
    assert FailedJobRegistry(queue=queue).count == 0


def opened(value: bytes) -> bytes:
    """A value as stored, and inflated too when it is zlib data (RQ compresses a job's call)."""
    try:
        return value + zlib.decompress(value)
    except zlib.error:
        return value


def test_a_job_selected_by_contact_stores_no_email_address(app) -> None:  # type: ignore[no-untyped-def]
    """Jobs are no new store of personal data: the selection becomes failed-sync ids at once."""
    redis = app.extensions["redis"]
    email = "Private.Person@Example.com"
    job = app.test_client().post("/v1/jobs", json={"kind": "failed_retry", "contact": email}, headers=OPS).json
    run_periodic(app)
    values = []
    for key in redis.scan_iter("*"):
        kind = redis.type(key)
        values += list(redis.hgetall(key).values()) if kind == b"hash" else [redis.get(key) or b""] \
            if kind == b"string" else []
    dump = b"".join(opened(v) for v in values)
    assert job["id"].encode() in dump and b"retried" in dump and b"hub.jobs.entry.run_task" in dump, "the record and RQ's job"
    assert b'"contact"' not in dump
    assert email.lower().encode() not in dump.lower()


def test_job_requests_are_checked_before_anything_starts(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    bad = client.post("/v1/jobs", json={"kind": "reindex"}, headers=OPS)
    assert bad.status_code == 422 and bad.json["error"]["details"][0]["field"] == "kind"
    bad = client.post("/v1/jobs", json={"kind": "resync", "connectors": "splio"}, headers=OPS)
    assert bad.status_code == 422 and bad.json["error"]["details"][0]["field"] == "connectors"
    assert client.post("/v1/jobs", json={"kind": "resync", "connectors": ["klaviyo"]}, headers=OPS).status_code == 404
    assert client.post("/v1/jobs", json={"kind": "failed_retry"}, headers=OPS).status_code == 422
    assert client.post("/v1/jobs", json={"kind": "replay", "endpoint": "ep_x"}, headers=OPS).status_code == 403
    admin = {"Authorization": "Bearer admin-token"}
    assert client.post("/v1/jobs", json={"kind": "replay", "endpoint": "ep_x", "since": "2026-01-01T00:00:00Z"},
                       headers=admin).status_code == 404
    assert client.post("/v1/jobs", json={"kind": "resync"}).status_code == 401
    assert client.get("/v1/jobs/job_nope", headers=OPS).status_code == 404
    assert app.extensions["redis"].zcard("hub:jobs") == 0, "no job was recorded"
